//===- SafeTensors.cpp - Validating safetensors reader --------------------===//
//
// Validation follows the format's specification: an 8-byte little-endian
// header length, a JSON object header starting with '{' (trailing spaces are
// allowed padding), entries {dtype, shape, data_offsets} relative to the byte
// buffer after the header, and an optional `__metadata__` map of strings.
// Holes in the byte buffer are tolerated (as most writers' padding is);
// overlapping tensors are not.
//
// The JSON is parsed without exceptions so that no input can escape as an
// uncaught exception: every accessor below is guarded by a type check.
//
//===----------------------------------------------------------------------===//

#include "runtime/safetensors/SafeTensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace moec::safetensors;
using json = nlohmann::json;

namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};

// Indexed by DType; the names are the format's.
constexpr DTypeEntry dtypeTable[] = {
    {DType::Bool, "BOOL", 1},      {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},          {DType::F8E4M3, "F8_E4M3", 1},
    {DType::F8E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},        {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},      {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},        {DType::F32, "F32", 4},
    {DType::I64, "I64", 8},        {DType::U64, "U64", 8},
    {DType::F64, "F64", 8},
};

// Larger headers are refused before any parsing (the reference
// implementation's limit): a corrupt length must not cost gigabytes.
constexpr uint64_t maxHeaderSize = 100'000'000;

constexpr std::string_view metadataKey = "__metadata__";

/// Reads a non-negative JSON integer that fits in int64_t.
std::optional<int64_t> getNonNegative(const json &value) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > uint64_t(std::numeric_limits<int64_t>::max()))
      return std::nullopt;
    return int64_t(v);
  }
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0)
      return std::nullopt;
    return v;
  }
  return std::nullopt;
}

/// Describes a JSON value that was not what we wanted, briefly: numbers as
/// written, anything else by its type (a dump could be huge).
std::string describe(const json &value) {
  if (value.is_number())
    return value.dump();
  return std::string("a ") + value.type_name();
}

/// Finds where a header that json::parse rejected goes wrong.
struct ErrorFinder : nlohmann::json_sax<json> {
  size_t position = 0;
  std::string message;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t &) override { return true; }
  bool string(string_t &) override { return true; }
  bool binary(binary_t &) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t &) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string &,
                   const nlohmann::detail::exception &ex) override {
    position = pos;
    // "[json.exception.parse_error.101] parse error at line 1, column 3:
    // syntax error while parsing object key - invalid string: ...; last
    // read: '...'; expected ...": keep what went wrong, not the bytes read
    // (they may be anything).
    message = ex.what();
    size_t start = message.find(" - ");
    message = start == std::string::npos ? "syntax error"
                                         : message.substr(start + 3);
    message = message.substr(0, message.find("; last read"));
    return false;
  }
};

/// Records the first duplicate key while json::parse builds the header (the
/// DOM keeps only the last value of a repeated key, hiding the repetition).
class DuplicateFinder {
public:
  bool operator()(int, json::parse_event_t event, json &parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
      objects.emplace_back();
      break;
    case json::parse_event_t::object_end:
      objects.pop_back();
      break;
    case json::parse_event_t::key: {
      Object &top = objects.back();
      top.lastKey = parsed.get<std::string>();
      if (!top.keys.insert(top.lastKey).second && message.empty())
        message = describeDuplicate();
      break;
    }
    default:
      break;
    }
    return true;
  }

  /// Empty when every key was unique.
  std::string message;

private:
  struct Object {
    std::set<std::string> keys;
    std::string lastKey;
  };

  std::string describeDuplicate() const {
    const std::string &key = objects.back().lastKey;
    if (objects.size() == 1)
      return "header has two entries for " + quoteName(key);
    if (objects.size() == 2) {
      const std::string &parent = objects.front().lastKey;
      return (parent == metadataKey ? std::string(metadataKey)
                                    : "tensor " + quoteName(parent)) +
             " has duplicate key " + quoteName(key);
    }
    return "header has duplicate key " + quoteName(key);
  }

  // One per open object; a vector (not the recursion of the parser) so that
  // deep nesting costs memory, not stack.
  std::vector<Object> objects;
};

} // namespace

std::string_view moec::safetensors::dtypeName(DType dtype) {
  return dtypeTable[size_t(dtype)].name;
}

size_t moec::safetensors::dtypeSize(DType dtype) {
  return dtypeTable[size_t(dtype)].size;
}

std::optional<DType> moec::safetensors::parseDType(std::string_view name) {
  for (const DTypeEntry &entry : dtypeTable)
    if (entry.name == name)
      return entry.dtype;
  return std::nullopt;
}

std::string moec::safetensors::formatShape(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

std::string moec::safetensors::quoteName(std::string_view name) {
  static const char hex[] = "0123456789abcdef";
  std::string text = "'";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      text += "\\x";
      text += hex[c >> 4];
      text += hex[c & 15];
    } else {
      text += char(c);
    }
  }
  return text + "'";
}

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

SafeTensorsFile::~SafeTensorsFile() {
  if (mapping)
    ::munmap(mapping, mappingSize);
}

const TensorInfo *SafeTensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(
      tensorList.begin(), tensorList.end(), name,
      [](const TensorInfo &t, std::string_view n) { return t.name < n; });
  if (it == tensorList.end() || it->name != name)
    return nullptr;
  return &*it;
}

std::unique_ptr<SafeTensorsFile>
SafeTensorsFile::open(const std::string &path, std::string &error) {
  auto fail = [&](const std::string &why) {
    error = path + ": " + why;
    return nullptr;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(std::string("cannot open file: ") + std::strerror(errno));
  struct stat status;
  if (::fstat(fd, &status) != 0) {
    int err = errno;
    ::close(fd);
    return fail(std::string("cannot stat file: ") + std::strerror(err));
  }
  // Only a regular file has a size to check offsets against (and can be
  // mapped); a directory opens fine but would fail later, less clearly.
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    return fail(S_ISDIR(status.st_mode) ? "is a directory"
                                        : "is not a regular file");
  }
  size_t size = size_t(status.st_size);
  void *mapping = nullptr;
  if (size > 0) {
    mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return fail(std::string("cannot map file: ") + std::strerror(err));
    }
  }
  // The mapping outlives the descriptor.
  ::close(fd);
  auto file = parse(path, static_cast<const uint8_t *>(mapping), size, error);
  if (!file) {
    if (mapping)
      ::munmap(mapping, size);
    return nullptr;
  }
  file->mapping = mapping;
  file->mappingSize = size;
  return file;
}

std::unique_ptr<SafeTensorsFile>
SafeTensorsFile::parse(std::string name, const uint8_t *bytes, size_t size,
                       std::string &error) {
  std::unique_ptr<SafeTensorsFile> file(new SafeTensorsFile(std::move(name)));
  auto fail = [&](const std::string &why) {
    error = file->fileName + ": " + why;
    return nullptr;
  };

  if (size == 0)
    return fail("file is empty");
  if (size < 8)
    return fail("file is " + std::to_string(size) +
                " bytes, too short for the 8-byte header length");
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | bytes[i];
  if (headerSize > maxHeaderSize)
    return fail("header length " + std::to_string(headerSize) +
                " exceeds the limit of " + std::to_string(maxHeaderSize) +
                " bytes");
  if (headerSize > size - 8)
    return fail("header length " + std::to_string(headerSize) +
                " runs past the end of the file (" + std::to_string(size) +
                " bytes)");
  const char *header = reinterpret_cast<const char *>(bytes + 8);
  if (headerSize == 0 || header[0] != '{')
    return fail("header is not a JSON object (it does not start with '{')");

  DuplicateFinder duplicates;
  json root = json::parse(header, header + headerSize, std::ref(duplicates),
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    ErrorFinder finder;
    json::sax_parse(header, header + headerSize, &finder);
    return fail("header is not valid JSON at byte " +
                std::to_string(finder.position) + " of the header: " +
                finder.message);
  }
  if (!duplicates.message.empty())
    return fail(duplicates.message);
  if (!root.is_object())
    return fail("header is not a JSON object");

  const uint8_t *buffer = bytes + 8 + headerSize;
  size_t bufferSize = size - 8 - headerSize;
  // std::map order: entries are checked, and reported, by name.
  for (const auto &[key, entry] : root.items()) {
    if (key == metadataKey) {
      if (!entry.is_object())
        return fail(std::string(metadataKey) + " is not an object");
      for (const auto &[metaKey, value] : entry.items()) {
        if (!value.is_string())
          return fail(std::string(metadataKey) + " value " +
                      quoteName(metaKey) + " is not a string");
        file->metadataList.emplace_back(metaKey, value.get<std::string>());
      }
      continue;
    }

    std::string tensor = "tensor " + quoteName(key);
    if (!entry.is_object())
      return fail(tensor + " is not an object");

    auto dtypeIt = entry.find("dtype");
    if (dtypeIt == entry.end())
      return fail(tensor + " has no dtype");
    if (!dtypeIt->is_string())
      return fail(tensor + " has a dtype that is not a string");
    std::string dtypeText = dtypeIt->get<std::string>();
    std::optional<DType> dtype = parseDType(dtypeText);
    if (!dtype)
      return fail(tensor + " has unknown dtype " + quoteName(dtypeText));

    auto shapeIt = entry.find("shape");
    if (shapeIt == entry.end())
      return fail(tensor + " has no shape");
    if (!shapeIt->is_array())
      return fail(tensor + " has a shape that is not an array");
    std::vector<int64_t> shape;
    // Counted in elements, then bytes, refusing anything that overflows.
    uint64_t numBytes = dtypeSize(*dtype);
    bool overflow = false;
    for (const json &dim : *shapeIt) {
      std::optional<int64_t> value = getNonNegative(dim);
      if (!value && dim.is_number_unsigned())
        return fail(tensor + " has dimension " + describe(dim) +
                    " in its shape, too large to address");
      if (!value)
        return fail(tensor + " has " + describe(dim) +
                    " in its shape where a non-negative integer belongs");
      shape.push_back(*value);
      if (*value != 0 && numBytes > std::numeric_limits<uint64_t>::max() /
                                        uint64_t(*value))
        overflow = true;
      else
        numBytes *= uint64_t(*value);
    }
    // A zero dimension makes the tensor empty whatever the others say.
    if (std::find(shape.begin(), shape.end(), 0) != shape.end())
      numBytes = 0;
    else if (overflow)
      return fail(tensor + " has shape " + formatShape(shape) +
                  ", too large to address");

    auto offsetsIt = entry.find("data_offsets");
    if (offsetsIt == entry.end())
      return fail(tensor + " has no data_offsets");
    std::optional<int64_t> begin, end;
    if (offsetsIt->is_array() && offsetsIt->size() == 2) {
      begin = getNonNegative((*offsetsIt)[0]);
      end = getNonNegative((*offsetsIt)[1]);
    }
    if (!begin || !end)
      return fail(tensor +
                  " has data_offsets that are not two non-negative integers");
    std::string offsets =
        "data_offsets [" + std::to_string(*begin) + ", " +
        std::to_string(*end) + "]";
    if (*begin > *end)
      return fail(tensor + " has " + offsets + " that end before they begin");
    if (uint64_t(*end) > bufferSize)
      return fail(tensor + " has " + offsets +
                  " past the end of the data (" + std::to_string(bufferSize) +
                  " bytes)");
    uint64_t actualBytes = uint64_t(*end - *begin);
    if (actualBytes != numBytes)
      return fail(tensor + " has " + std::to_string(actualBytes) +
                  " bytes of data, but " + std::string(dtypeName(*dtype)) +
                  " " + formatShape(shape) + " needs " +
                  std::to_string(numBytes));

    file->tensorList.push_back({key, *dtype, std::move(shape), size_t(*begin),
                                buffer + *begin, size_t(actualBytes)});
  }

  // Overlaps: among the non-empty tensors in order of their first byte, one
  // that begins before an earlier one ends overlaps it.
  std::vector<const TensorInfo *> byOffset;
  for (const TensorInfo &t : file->tensorList)
    if (t.size > 0)
      byOffset.push_back(&t);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const TensorInfo *a, const TensorInfo *b) {
              return a->offset < b->offset ||
                     (a->offset == b->offset && a->name < b->name);
            });
  const TensorInfo *reach = nullptr;
  for (const TensorInfo *t : byOffset) {
    if (reach && t->offset < reach->offset + reach->size)
      return fail("tensors " + quoteName(reach->name) + " and " +
                  quoteName(t->name) + " overlap at bytes [" +
                  std::to_string(t->offset) + ", " +
                  std::to_string(std::min(reach->offset + reach->size,
                                          t->offset + t->size)) +
                  ") of the data");
    if (!reach || t->offset + t->size > reach->offset + reach->size)
      reach = t;
  }
  return file;
}

//===----------------------------------------------------------------------===//
// Binding
//===----------------------------------------------------------------------===//

const TensorInfo *moec::safetensors::bindTensor(
    const SafeTensorsFile &file, std::string_view name,
    const std::vector<DType> &dtypes, const std::vector<int64_t> &shape,
    std::string &error) {
  const TensorInfo *tensor = file.find(name);
  std::string prefix = file.name() + ": ";
  if (!tensor) {
    error = prefix + "missing tensor " + quoteName(name);
    return nullptr;
  }
  if (std::find(dtypes.begin(), dtypes.end(), tensor->dtype) == dtypes.end()) {
    std::string expected;
    for (size_t i = 0; i < dtypes.size(); ++i) {
      if (i)
        expected += i + 1 == dtypes.size() ? " or " : ", ";
      expected += dtypeName(dtypes[i]);
    }
    error = prefix + "tensor " + quoteName(name) + " has dtype " +
            std::string(dtypeName(tensor->dtype)) + ", expected " + expected;
    return nullptr;
  }
  if (tensor->shape != shape) {
    error = prefix + "tensor " + quoteName(name) + " has shape " +
            formatShape(tensor->shape) + ", expected " + formatShape(shape);
    return nullptr;
  }
  return tensor;
}

//===----------------------------------------------------------------------===//
// Checkpoint
//===----------------------------------------------------------------------===//

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string &path,
                                             std::string &error) {
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->pathName = path;
  auto fail = [&](const std::string &why) {
    error = path + ": " + why;
    return nullptr;
  };
  auto addFile = [&](std::unique_ptr<SafeTensorsFile> file) {
    checkpoint->files.push_back(std::move(file));
    return checkpoint->files.back().get();
  };

  bool isIndex = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  if (!isIndex) {
    std::unique_ptr<SafeTensorsFile> file = SafeTensorsFile::open(path, error);
    if (!file)
      return nullptr;
    const SafeTensorsFile *owner = addFile(std::move(file));
    for (const TensorInfo &tensor : owner->tensors())
      checkpoint->byName.emplace(tensor.name, std::make_pair(owner, &tensor));
    return checkpoint;
  }
  checkpoint->isIndex = true;

  struct stat status;
  if (::stat(path.c_str(), &status) != 0)
    return fail(std::string("cannot open file: ") + std::strerror(errno));
  if (!S_ISREG(status.st_mode))
    return fail(S_ISDIR(status.st_mode) ? "is a directory"
                                        : "is not a regular file");
  if (uint64_t(status.st_size) > maxHeaderSize)
    return fail("index is larger than " + std::to_string(maxHeaderSize) +
                " bytes");
  std::ifstream stream(path, std::ios::binary);
  if (!stream)
    return fail(std::string("cannot open file: ") + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(stream)),
                   std::istreambuf_iterator<char>());
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    ErrorFinder finder;
    json::sax_parse(text, &finder);
    return fail("index is not valid JSON at byte " +
                std::to_string(finder.position) + ": " + finder.message);
  }
  if (!root.is_object())
    return fail("index is not a JSON object");
  auto mapIt = root.find("weight_map");
  if (mapIt == root.end())
    return fail("index has no weight_map");
  if (!mapIt->is_object())
    return fail("index has a weight_map that is not an object");

  // Shards are named relative to the index and must lie beside it.
  size_t slash = path.rfind('/');
  std::string directory = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::map<std::string, const SafeTensorsFile *> shards;
  for (const auto &[tensorName, shard] : mapIt->items()) {
    std::string tensor = "tensor " + quoteName(tensorName);
    if (!shard.is_string())
      return fail("weight_map maps " + tensor + " to a " + shard.type_name() +
                  ", not a file name");
    std::string shardName = shard.get<std::string>();
    if (shardName.empty() || shardName.find('/') != std::string::npos)
      return fail("weight_map maps " + tensor + " to " + quoteName(shardName) +
                  ", not a file beside the index");
    const SafeTensorsFile *&file = shards[shardName];
    if (!file) {
      std::unique_ptr<SafeTensorsFile> opened =
          SafeTensorsFile::open(directory + shardName, error);
      if (!opened)
        return nullptr;
      file = addFile(std::move(opened));
    }
    const TensorInfo *info = file->find(tensorName);
    if (!info)
      return fail("weight_map maps " + tensor + " to " +
                  quoteName(shardName) + ", which does not hold it");
    checkpoint->byName.emplace(tensorName, std::make_pair(file, info));
  }
  return checkpoint;
}

std::pair<const SafeTensorsFile *, const TensorInfo *>
Checkpoint::find(std::string_view name) const {
  auto it = byName.find(name);
  if (it == byName.end())
    return {nullptr, nullptr};
  return it->second;
}

const std::vector<std::pair<std::string, std::string>> &
Checkpoint::metadata() const {
  static const std::vector<std::pair<std::string, std::string>> none;
  return isIndex || files.empty() ? none : files.front()->metadata();
}

const TensorInfo *moec::safetensors::bindTensor(
    const Checkpoint &checkpoint, std::string_view name,
    const std::vector<DType> &dtypes, const std::vector<int64_t> &shape,
    std::string &error) {
  const SafeTensorsFile *file = checkpoint.find(name).first;
  if (!file) {
    error = checkpoint.name() + ": missing tensor " + quoteName(name);
    return nullptr;
  }
  return bindTensor(*file, name, dtypes, shape, error);
}
