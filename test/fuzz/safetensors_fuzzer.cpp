//===- safetensors_fuzzer.cpp - libFuzzer target for the reader -----------===//
//
// Feeds arbitrary bytes to SafeTensorsFile::parse, the entry point behind
// open(). Besides the sanitizers' checks it enforces the reader's contract:
// a rejected input gets a one-line message naming the file, and an accepted
// one only hands out tensors whose bytes lie inside the input, match their
// dtype and shape, and bind by name.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/SafeTensors.h"

#include <cstdio>
#include <cstdlib>

using namespace moec::safetensors;

static void check(bool condition, const char *what) {
  if (!condition) {
    std::fprintf(stderr, "safetensors fuzzer: contract broken: %s\n", what);
    std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::unique_ptr<SafeTensorsFile> file =
      SafeTensorsFile::parse("fuzz.safetensors", data, size, error);
  if (!file) {
    check(error.rfind("fuzz.safetensors: ", 0) == 0,
          "error does not start with the file name");
    check(error.find('\n') == std::string::npos, "error spans lines");
    return 0;
  }
  unsigned sum = 0;
  for (const TensorInfo &tensor : file->tensors()) {
    check(tensor.data >= data && tensor.size <= size_t(data + size - tensor.data),
          "tensor outside the input");
    size_t elements = 1;
    for (int64_t dim : tensor.shape)
      elements *= size_t(dim);
    check(elements * dtypeSize(tensor.dtype) == tensor.size,
          "size does not match dtype and shape");
    // Reads every byte so that AddressSanitizer sees any that lie outside.
    for (size_t i = 0; i < tensor.size; ++i)
      sum += tensor.data[i];
    check(bindTensor(*file, tensor.name, {tensor.dtype}, tensor.shape, error) ==
              &tensor,
          "a tensor does not bind as itself");
  }
  return int(sum & 0);
}
