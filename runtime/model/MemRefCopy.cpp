//===- MemRefCopy.cpp - memref.copy between strided buffers ---------------===//
//
// The LLVM lowering of memref.copy calls `memrefCopy` when it cannot prove
// both buffers contiguous (a dynamic size with a dynamic offset, as when the
// routing statistics of each layer are packed into one vector). MLIR's
// runner library has one; compiled models get theirs from the runtime, with
// the same C ABI, so that they link no part of LLVM.
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

/// The ranked descriptor behind an unranked memref: allocated and aligned
/// pointers, offset, then `rank` sizes and `rank` strides (in elements).
struct StridedDescriptor {
  char *allocated;
  char *aligned;
  int64_t offset;
  int64_t sizesAndStrides[];
};

struct UnrankedDescriptor {
  int64_t rank;
  StridedDescriptor *descriptor;
};

} // namespace

extern "C" void memrefCopy(int64_t elementSize, UnrankedDescriptor *source,
                           UnrankedDescriptor *target) {
  int64_t rank = source->rank;
  const StridedDescriptor &src = *source->descriptor,
                          &dst = *target->descriptor;
  const int64_t *sizes = src.sizesAndStrides;
  const int64_t *srcStrides = src.sizesAndStrides + rank;
  const int64_t *dstStrides = dst.sizesAndStrides + rank;
  for (int64_t d = 0; d < rank; ++d)
    if (sizes[d] == 0)
      return;
  const char *from = src.aligned + src.offset * elementSize;
  char *to = dst.aligned + dst.offset * elementSize;
  // Runs along the innermost dimension are one memcpy when both are dense.
  int64_t inner = rank ? sizes[rank - 1] : 1;
  bool dense =
      rank == 0 || (srcStrides[rank - 1] == 1 && dstStrides[rank - 1] == 1);
  int64_t runs = rank ? rank - 1 : 0;
  std::vector<int64_t> index(runs, 0);
  for (;;) {
    int64_t srcAt = 0, dstAt = 0;
    for (int64_t d = 0; d < runs; ++d) {
      srcAt += index[d] * srcStrides[d];
      dstAt += index[d] * dstStrides[d];
    }
    if (dense) {
      std::memcpy(to + dstAt * elementSize, from + srcAt * elementSize,
                  inner * elementSize);
    } else {
      for (int64_t i = 0; i < inner; ++i)
        std::memcpy(to + (dstAt + i * dstStrides[rank - 1]) * elementSize,
                    from + (srcAt + i * srcStrides[rank - 1]) * elementSize,
                    elementSize);
    }
    // The next index of the outer dimensions, last fastest.
    int64_t d = runs - 1;
    while (d >= 0 && ++index[d] == sizes[d])
      index[d--] = 0;
    if (d < 0)
      return;
  }
}
