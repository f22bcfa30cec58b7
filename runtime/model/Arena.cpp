//===- Arena.cpp - the buffers of compiled models -------------------------===//
//
// moec compiles models with moe-to-cpu-pipeline's `runtime-alloc`, so every
// buffer the compiled code allocates comes from here. A forward pass
// allocates the same sizes on every call (for a given batch and length), so
// freed blocks are kept by size and handed out again: after the first pass
// the arena holds the pass's peak working set and later passes neither call
// the system allocator nor fault fresh pages in. Results handed to the
// caller are released through arenaFree.
//
//===----------------------------------------------------------------------===//

#include "runtime/model/Tensors.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

class Arena {
public:
  void *allocate(size_t size) {
    // Round to a cache line so that near sizes share blocks.
    size = (std::max<size_t>(size, 1) + 63) / 64 * 64;
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<void *> &cached = free[size];
    void *block;
    if (!cached.empty()) {
      block = cached.back();
      cached.pop_back();
    } else {
      block = std::aligned_alloc(64, size);
      if (!block)
        return nullptr;
    }
    live[block] = size;
    return block;
  }

  void release(void *block) {
    if (!block)
      return;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = live.find(block);
    if (it == live.end()) {
      // Not ours (cannot happen for compiled code): hand it to the system.
      std::free(block);
      return;
    }
    free[it->second].push_back(block);
    live.erase(it);
  }

private:
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void *>> free;
  std::unordered_map<void *, size_t> live;
};

Arena &arena() {
  // Never destroyed: compiled code may free buffers during static teardown.
  static Arena *instance = new Arena();
  return *instance;
}

} // namespace

void moec::runtime::arenaFree(void *block) { arena().release(block); }

// The allocation functions of MLIR's finalize-memref-to-llvm with
// `use-generic-functions`.
extern "C" void *_mlir_memref_to_llvm_alloc(size_t size) {
  return arena().allocate(size);
}

extern "C" void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment,
                                                    size_t size) {
  // Blocks are 64-byte aligned; larger alignments get room to align in.
  return arena().allocate(alignment <= 64 ? size : size + alignment);
}

extern "C" void _mlir_memref_to_llvm_free(void *block) {
  arena().release(block);
}
