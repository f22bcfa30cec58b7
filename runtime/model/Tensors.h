//===- Tensors.h - host tensors for compiled models -------------*- C++ -*-===//
//
// Owning host buffers, the memref descriptors that MLIR's C interface takes
// them as, and the .npy / token-list I/O of the model command line.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_MODEL_TENSORS_H
#define MOEC_RUNTIME_MODEL_TENSORS_H

#include "runtime/safetensors/SafeTensors.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moec::runtime {

enum class ElementType { F32, BF16, I32 };

/// Bytes per element.
size_t elementSize(ElementType type);

/// Returns a buffer that compiled code allocated (runtime/model/Arena.cpp).
void arenaFree(void *block);

/// A ranked memref descriptor as MLIR lays it out for the C interface:
/// allocated pointer, aligned pointer, offset, sizes[rank], strides[rank].
class MemRefDescriptor {
public:
  explicit MemRefDescriptor(unsigned rank) : words(3 + 2 * rank, 0) {}
  MemRefDescriptor(void *data, const std::vector<int64_t> &shape);
  /// A copy of the descriptor of rank `rank` stored at `words`.
  MemRefDescriptor(const int64_t *words, unsigned rank)
      : words(words, words + 3 + 2 * rank) {}

  void *data() { return words.data(); }
  unsigned rank() const { return (words.size() - 3) / 2; }
  void *allocated() const;
  void *aligned() const;
  int64_t offset() const { return words[2]; }
  int64_t size(unsigned i) const { return words[3 + i]; }

private:
  std::vector<int64_t> words;
};

/// The results of a function with several results, as MLIR's C interface
/// returns them: one struct holding each result's descriptor in turn (all
/// fields are 8 bytes, so the struct is the descriptors back to back).
class ResultPack {
public:
  explicit ResultPack(const std::vector<unsigned> &ranks);
  void *data() { return words.data(); }
  MemRefDescriptor result(unsigned i) const {
    return MemRefDescriptor(words.data() + offsets[i], ranks[i]);
  }

private:
  std::vector<unsigned> ranks;
  std::vector<size_t> offsets;
  std::vector<int64_t> words;
};

/// A dense, row-major host tensor that owns its buffer.
class HostTensor {
public:
  HostTensor(ElementType type, std::vector<int64_t> shape);
  /// Takes ownership of a buffer a compiled function returned (from the
  /// arena).
  static HostTensor adoptResult(const MemRefDescriptor &result,
                                ElementType type);
  /// A read-only view of `data`, which must outlive the tensor (weights
  /// used in place in a mapped file).
  static HostTensor view(ElementType type, std::vector<int64_t> shape,
                         const void *data);

  ElementType type() const { return elementType; }
  const std::vector<int64_t> &shape() const { return dims; }
  int64_t numElements() const;
  void *data() { return aligned; }
  const void *data() const { return aligned; }

  /// Copies `tensor` (F32 or BF16, of this tensor's shape minus the leading
  /// dimension when `index` selects a slice of it) into slice `index`,
  /// converting to this tensor's element type.
  void fill(int64_t index, const safetensors::TensorInfo &tensor);

  MemRefDescriptor descriptor() { return MemRefDescriptor(aligned, dims); }

private:
  HostTensor() = default;

  ElementType elementType = ElementType::F32;
  std::vector<int64_t> dims;
  std::shared_ptr<void> buffer; // freed with the right deallocator
  void *aligned = nullptr;
};

/// Reads token ids from a comma list ("1,5,9": one sequence) or an int32 /
/// int64 .npy of shape [T] or [B, T], as an I32 [B, T] tensor. Checks every
/// id against [0, vocab). On failure sets `error` to a one-line message.
HostTensor readTokens(const std::string &spec, int64_t vocab,
                      std::string &error);

/// Writes an F32 or I32 tensor as a .npy file.
bool writeNpy(const std::string &path, const HostTensor &tensor,
              std::string &error);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_MODEL_TENSORS_H
