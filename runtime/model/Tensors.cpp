//===- Tensors.cpp - host tensors for compiled models ---------------------===//

#include "runtime/model/Tensors.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

using namespace moec::runtime;
namespace st = moec::safetensors;

size_t moec::runtime::elementSize(ElementType type) {
  return type == ElementType::BF16 ? 2 : 4;
}

MemRefDescriptor::MemRefDescriptor(void *data,
                                   const std::vector<int64_t> &shape)
    : MemRefDescriptor(shape.size()) {
  std::memcpy(&words[0], &data, sizeof(void *));
  std::memcpy(&words[1], &data, sizeof(void *));
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    words[3 + i] = shape[i];
    words[3 + shape.size() + i] = stride;
    stride *= shape[i];
  }
}

void *MemRefDescriptor::allocated() const {
  void *p;
  std::memcpy(&p, &words[0], sizeof(void *));
  return p;
}

void *MemRefDescriptor::aligned() const {
  void *p;
  std::memcpy(&p, &words[1], sizeof(void *));
  return p;
}

HostTensor::HostTensor(ElementType type, std::vector<int64_t> shape)
    : elementType(type), dims(std::move(shape)) {
  size_t bytes = static_cast<size_t>(numElements()) * elementSize(type);
  // 64-byte alignment suits every vector load the compiled code issues.
  size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  buffer.reset(std::aligned_alloc(64, rounded), std::free);
  aligned = buffer.get();
}

ResultPack::ResultPack(const std::vector<unsigned> &ranks) : ranks(ranks) {
  size_t size = 0;
  for (unsigned rank : ranks) {
    offsets.push_back(size);
    size += 3 + 2 * rank;
  }
  words.assign(size, 0);
}

HostTensor HostTensor::adoptResult(const MemRefDescriptor &result,
                                   ElementType type) {
  HostTensor tensor;
  tensor.elementType = type;
  for (unsigned i = 0; i < result.rank(); ++i)
    tensor.dims.push_back(result.size(i));
  tensor.buffer.reset(result.allocated(), arenaFree);
  tensor.aligned = static_cast<char *>(result.aligned()) +
                   result.offset() * elementSize(type);
  return tensor;
}

HostTensor HostTensor::view(ElementType type, std::vector<int64_t> shape,
                            const void *data) {
  HostTensor tensor;
  tensor.elementType = type;
  tensor.dims = std::move(shape);
  // The compiled code never writes to its parameters.
  tensor.aligned = const_cast<void *>(data);
  return tensor;
}

int64_t HostTensor::numElements() const {
  return std::accumulate(dims.begin(), dims.end(), int64_t(1),
                         std::multiplies<int64_t>());
}

/// bf16 -> f32 is exact: the bf16 bits are the high half of the f32.
static float bf16ToF32(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

/// f32 -> bf16, rounding to nearest even (NaNs stay NaNs).
static uint16_t f32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

void HostTensor::fill(int64_t index, const st::TensorInfo &tensor) {
  int64_t count = 1;
  for (int64_t d : tensor.shape)
    count *= d;
  auto *out = static_cast<uint8_t *>(aligned) +
              static_cast<size_t>(index * count) * elementSize(elementType);
  bool fromBF16 = tensor.dtype == st::DType::BF16;
  for (int64_t i = 0; i < count; ++i) {
    // The file's bytes may be unaligned: memcpy each element.
    float value;
    if (fromBF16) {
      uint16_t bits;
      std::memcpy(&bits, tensor.data + 2 * i, 2);
      value = bf16ToF32(bits);
    } else {
      std::memcpy(&value, tensor.data + 4 * i, 4);
    }
    if (elementType == ElementType::BF16) {
      if (fromBF16) {
        std::memcpy(out + 2 * i, tensor.data + 2 * i, 2);
      } else {
        uint16_t bits = f32ToBF16(value);
        std::memcpy(out + 2 * i, &bits, 2);
      }
    } else {
      std::memcpy(out + 4 * i, &value, 4);
    }
  }
}

//===----------------------------------------------------------------------===//
// Tokens and .npy files
//===----------------------------------------------------------------------===//

namespace {

/// A parsed .npy header: dtype descriptor, shape, and where the data starts.
struct NpyHeader {
  std::string descr;
  bool fortranOrder = false;
  std::vector<int64_t> shape;
  size_t dataOffset = 0;
};

bool parseNpyHeader(const std::string &path, const std::string &bytes,
                    NpyHeader &header, std::string &error) {
  auto bad = [&](const std::string &why) {
    error = path + ": not a valid .npy file: " + why;
    return false;
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return bad("missing the \\x93NUMPY magic");
  unsigned major = static_cast<uint8_t>(bytes[6]);
  size_t lengthBytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3 || bytes.size() < 8 + lengthBytes)
    return bad("unsupported version " + std::to_string(major));
  size_t length = 0;
  for (size_t i = 0; i < lengthBytes; ++i)
    length |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i]))
              << (8 * i);
  header.dataOffset = 8 + lengthBytes + length;
  if (header.dataOffset > bytes.size())
    return bad("header longer than the file");
  std::string dict = bytes.substr(8 + lengthBytes, length);

  auto field = [&](const std::string &key) -> std::string {
    size_t at = dict.find("'" + key + "'");
    if (at == std::string::npos)
      return "";
    at = dict.find(':', at);
    return at == std::string::npos ? "" : dict.substr(at + 1);
  };
  std::string descr = field("descr");
  size_t q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos)
    return bad("no 'descr'");
  header.descr = descr.substr(q1 + 1, q2 - q1 - 1);
  std::string fortran = field("fortran_order");
  header.fortranOrder = fortran.find("True") < fortran.find_first_of(",}");
  std::string shape = field("shape");
  size_t open = shape.find('('), close = shape.find(')');
  if (open == std::string::npos || close == std::string::npos)
    return bad("no 'shape'");
  std::stringstream dims(shape.substr(open + 1, close - open - 1));
  std::string dim;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(" ") == std::string::npos)
      continue;
    char *end = nullptr;
    long long v = std::strtoll(dim.c_str(), &end, 10);
    if (v < 0 ||
        (*end && std::string(end).find_first_not_of(" ") != std::string::npos))
      return bad("bad shape '" + shape.substr(open, close - open + 1) + "'");
    header.shape.push_back(v);
  }
  return true;
}

bool readFile(const std::string &path, std::string &bytes, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  bytes = ss.str();
  return true;
}

} // namespace

HostTensor moec::runtime::readTokens(const std::string &spec, int64_t vocab,
                                     std::string &error) {
  std::vector<int64_t> ids, shape;
  bool isNpy = spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0;
  if (!isNpy) {
    std::stringstream list(spec);
    std::string item;
    while (std::getline(list, item, ',')) {
      char *end = nullptr;
      long long v = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end) {
        error = "--tokens: '" + item +
                "' is not an integer (expected a comma list like 1,5,9 or "
                "a .npy file)";
        return HostTensor(ElementType::I32, {0, 0});
      }
      ids.push_back(v);
    }
    shape = {1, static_cast<int64_t>(ids.size())};
  } else {
    std::string bytes;
    NpyHeader header;
    if (!readFile(spec, bytes, error) ||
        !parseNpyHeader(spec, bytes, header, error))
      return HostTensor(ElementType::I32, {0, 0});
    size_t width = header.descr == "<i4" ? 4 : header.descr == "<i8" ? 8 : 0;
    if (!width) {
      error = spec +
              ": token ids must be int32 or int64 ('<i4' or '<i8'), "
              "got '" +
              header.descr + "'";
      return HostTensor(ElementType::I32, {0, 0});
    }
    if (header.shape.size() == 1)
      shape = {1, header.shape[0]};
    else if (header.shape.size() == 2)
      shape = header.shape;
    else {
      error = spec + ": token ids must have shape [T] or [B, T]";
      return HostTensor(ElementType::I32, {0, 0});
    }
    size_t count = static_cast<size_t>(shape[0] * shape[1]);
    if (bytes.size() - header.dataOffset < count * width) {
      error = spec + ": truncated: " + std::to_string(count) +
              " token ids need " + std::to_string(count * width) + " bytes";
      return HostTensor(ElementType::I32, {0, 0});
    }
    for (size_t i = 0; i < count; ++i) {
      int64_t v = 0;
      if (width == 4) {
        int32_t v32;
        std::memcpy(&v32, bytes.data() + header.dataOffset + 4 * i, 4);
        v = v32;
      } else {
        std::memcpy(&v, bytes.data() + header.dataOffset + 8 * i, 8);
      }
      ids.push_back(v);
    }
    // np.save writes a transposed or Fortran-ordered [B, T] array column by
    // column: bring it to row order.
    if (header.fortranOrder && header.shape.size() == 2) {
      std::vector<int64_t> rows(ids.size());
      for (int64_t b = 0; b < shape[0]; ++b)
        for (int64_t t = 0; t < shape[1]; ++t)
          rows[b * shape[1] + t] = ids[t * shape[0] + b];
      ids = std::move(rows);
    }
  }
  if (ids.empty()) {
    error = "--tokens: no token ids given";
    return HostTensor(ElementType::I32, {0, 0});
  }
  HostTensor tokens(ElementType::I32, shape);
  auto *out = static_cast<int32_t *>(tokens.data());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      error = "--tokens: token id " + std::to_string(ids[i]) + " at position " +
              std::to_string(i) + " is out of range [0, " +
              std::to_string(vocab) + ")";
      return tokens;
    }
    out[i] = static_cast<int32_t>(ids[i]);
  }
  return tokens;
}

bool moec::runtime::writeNpy(const std::string &path, const HostTensor &tensor,
                             std::string &error) {
  std::string shape = "(";
  for (int64_t d : tensor.shape())
    shape += std::to_string(d) + ", ";
  if (tensor.shape().size() > 1)
    shape.resize(shape.size() - 2);
  else if (tensor.shape().size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string dict =
      std::string("{'descr': '") +
      (tensor.type() == ElementType::I32 ? "<i4" : "<f4") +
      "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts at a multiple of 64 bytes, ending in '\n'.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string header = "\x93NUMPY";
  header += '\x01';
  header += '\x00';
  header += static_cast<char>(dict.size() & 0xff);
  header += static_cast<char>(dict.size() >> 8);
  std::ofstream out(path, std::ios::binary);
  if (!out) {
    error = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  out << header << dict;
  out.write(static_cast<const char *>(tensor.data()),
            static_cast<std::streamsize>(tensor.numElements() * 4));
  if (!out) {
    error = path + ": write failed: " + std::strerror(errno);
    return false;
  }
  return true;
}
