//===- moec-safetensors.cpp - Inspect and check safetensors files ---------===//
//
//   moec-safetensors FILE                      lists tensors and metadata
//   moec-safetensors FILE --expect NAME:DTYPES:SHAPE ...
//                                              checks tensors as a model would
//
// FILE may be a sharded checkpoint's index (ending in .json). DTYPES is one
// dtype or a comma list (F32,BF16); SHAPE is d0xd1x... and empty for a
// scalar. Bad input gets the reader's one-line error on stderr
// and exit status 1.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/SafeTensors.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace moec::safetensors;

namespace {

const char *usage =
    "usage: moec-safetensors FILE [--expect NAME:DTYPES:SHAPE]...\n"
    "\n"
    "Validates a .safetensors file, or a sharded checkpoint's index\n"
    "(FILE ending in .json, e.g. model.safetensors.index.json) and its\n"
    "shards. Without --expect, lists its tensors\n"
    "(name, dtype, shape) and metadata. Each --expect checks that tensor\n"
    "NAME exists with one of DTYPES (e.g. F32 or F32,BF16) and shape SHAPE\n"
    "(e.g. 8x128; empty for a scalar), as a compiled model binds its\n"
    "parameters. Errors are one line; the exit status is then 1.\n";

struct Expectation {
  std::string name;
  std::vector<DType> dtypes;
  std::vector<int64_t> shape;
};

[[noreturn]] void exitWithError(const std::string &message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(1);
}

/// Parses NAME:DTYPES:SHAPE from the right, so NAME may hold colons.
Expectation parseExpectation(const std::string &text) {
  auto bad = [&](const std::string &why) {
    exitWithError("moec-safetensors: --expect " + quoteName(text) + ": " +
                  why);
  };
  size_t shapeColon = text.rfind(':');
  size_t dtypeColon = shapeColon == std::string::npos || shapeColon == 0
                          ? std::string::npos
                          : text.rfind(':', shapeColon - 1);
  if (dtypeColon == std::string::npos)
    bad("expected NAME:DTYPES:SHAPE");
  Expectation expectation;
  expectation.name = text.substr(0, dtypeColon);
  std::string dtypes = text.substr(dtypeColon + 1, shapeColon - dtypeColon - 1);
  for (size_t start = 0;;) {
    size_t comma = dtypes.find(',', start);
    std::string dtype = dtypes.substr(start, comma - start);
    std::optional<DType> parsed = parseDType(dtype);
    if (!parsed)
      bad("unknown dtype " + quoteName(dtype));
    expectation.dtypes.push_back(*parsed);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  std::string shape = text.substr(shapeColon + 1);
  for (size_t start = 0; !shape.empty();) {
    size_t x = shape.find('x', start);
    std::string dim = shape.substr(start, x - start);
    if (dim.empty() || dim.size() > 18 ||
        dim.find_first_not_of("0123456789") != std::string::npos)
      bad("bad dimension " + quoteName(dim) + " in the shape");
    expectation.shape.push_back(std::stoll(dim));
    if (x == std::string::npos)
      break;
    start = x + 1;
  }
  return expectation;
}

} // namespace

int main(int argc, char **argv) {
  std::string path;
  std::vector<Expectation> expectations;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (arg == "--expect") {
      if (i + 1 == argc)
        exitWithError("moec-safetensors: --expect needs NAME:DTYPES:SHAPE");
      expectations.push_back(parseExpectation(argv[++i]));
    } else if (arg.rfind("--expect=", 0) == 0) {
      expectations.push_back(parseExpectation(arg.substr(9)));
    } else if (arg.size() > 1 && arg[0] == '-') {
      exitWithError("moec-safetensors: unknown option " + quoteName(arg) +
                    " (see --help)");
    } else if (path.empty()) {
      path = arg;
    } else {
      exitWithError("moec-safetensors: more than one file given (see --help)");
    }
  }
  if (path.empty())
    exitWithError("moec-safetensors: no file given (see --help)");

  std::string error;
  std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path, error);
  if (!checkpoint)
    exitWithError(error);

  if (expectations.empty()) {
    for (const auto &[key, value] : checkpoint->metadata())
      std::printf("metadata %s %s\n", quoteName(key).c_str(),
                  quoteName(value).c_str());
    for (const auto &[name, entry] : checkpoint->tensors()) {
      const TensorInfo &tensor = *entry.second;
      std::printf("tensor %s %s %s\n", quoteName(name).c_str(),
                  std::string(dtypeName(tensor.dtype)).c_str(),
                  formatShape(tensor.shape).c_str());
    }
    return 0;
  }
  for (const Expectation &expectation : expectations)
    if (!bindTensor(*checkpoint, expectation.name, expectation.dtypes,
                    expectation.shape, error))
      exitWithError(error);
  return 0;
}
