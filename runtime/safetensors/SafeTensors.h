//===- SafeTensors.h - Validating safetensors reader ------------*- C++ -*-===//
//
// Reads `.safetensors` weight files (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON mapping tensor
// names to {dtype, shape, data_offsets}, then the byte buffer the offsets
// index. The file is mapped read-only and everything is validated when it is
// opened, so a SafeTensorsFile that exists is safe to index: every tensor's
// bytes lie inside the buffer, match its dtype and shape, and overlap no
// other tensor's bytes.
//
// Errors are one line, start with the file's name and name the tensor or key
// at fault, e.g.
//   w.safetensors: tensor 'gate.weight' has shape [8, 64], expected [8, 128]
//
// Plain C++17 (no LLVM or MLIR) so that compiled models can link it.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SAFETENSORS_SAFETENSORS_H
#define MOEC_RUNTIME_SAFETENSORS_SAFETENSORS_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moec::safetensors {

/// The element types of the safetensors format. The reader knows them all
/// (to validate sizes); what a model accepts is up to the binder's caller.
enum class DType : uint8_t {
  Bool,
  U8,
  I8,
  F8E4M3,
  F8E5M2,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  I64,
  U64,
  F64,
};

/// The format's spelling of `dtype` ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtypeName(DType dtype);
/// Bytes per element.
size_t dtypeSize(DType dtype);
/// Parses the format's spelling; nullopt for an unknown name.
std::optional<DType> parseDType(std::string_view name);

/// One tensor of a validated file. `data` points into the mapping and may be
/// unaligned (the format does not align tensors): read it with memcpy.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  /// Offset of the first byte from the start of the byte buffer.
  size_t offset;
  const uint8_t *data;
  size_t size;
};

class SafeTensorsFile {
public:
  /// Maps and validates the file at `path`. On failure returns null and sets
  /// `error` to a one-line message that starts with `path`.
  static std::unique_ptr<SafeTensorsFile> open(const std::string &path,
                                               std::string &error);

  /// Validates `size` bytes at `bytes`, which must outlive the result (it
  /// borrows them). `name` stands for the file in messages. This is the
  /// entry point behind open(), and the one the fuzzer drives.
  static std::unique_ptr<SafeTensorsFile>
  parse(std::string name, const uint8_t *bytes, size_t size,
        std::string &error);

  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile &) = delete;
  SafeTensorsFile &operator=(const SafeTensorsFile &) = delete;

  /// The path (or name) given to open() or parse().
  const std::string &name() const { return fileName; }
  /// All tensors, sorted by name.
  const std::vector<TensorInfo> &tensors() const { return tensorList; }
  /// The optional `__metadata__` string map, sorted by key.
  const std::vector<std::pair<std::string, std::string>> &metadata() const {
    return metadataList;
  }
  /// The tensor called `name`, or null.
  const TensorInfo *find(std::string_view name) const;

private:
  SafeTensorsFile(std::string name) : fileName(std::move(name)) {}

  std::string fileName;
  std::vector<TensorInfo> tensorList;
  std::vector<std::pair<std::string, std::string>> metadataList;
  // The mapping that owns the bytes when the file was opened by path.
  void *mapping = nullptr;
  size_t mappingSize = 0;
};

/// Looks up `name` in `file` and checks that its dtype is one of `dtypes` and
/// its shape is `shape`. Returns the tensor, or null with a one-line `error`
/// naming the file and the tensor.
const TensorInfo *bindTensor(const SafeTensorsFile &file, std::string_view name,
                             const std::vector<DType> &dtypes,
                             const std::vector<int64_t> &shape,
                             std::string &error);

/// The weights of a model: one .safetensors file, or the shards that a
/// sharded checkpoint's index (`model.safetensors.index.json`, whose
/// `weight_map` maps each tensor to a shard beside the index) lists. Opening
/// validates the index, every shard, and that each mapped tensor is in its
/// shard.
class Checkpoint {
public:
  /// Opens `path`: an index when it ends in ".json", else a single file.
  static std::unique_ptr<Checkpoint> open(const std::string &path,
                                          std::string &error);

  const std::string &name() const { return pathName; }
  /// The tensor called `name` and the file holding it, or {null, null}.
  std::pair<const SafeTensorsFile *, const TensorInfo *>
  find(std::string_view name) const;
  /// Every tensor by name, with its file.
  const std::map<std::string,
                 std::pair<const SafeTensorsFile *, const TensorInfo *>,
                 std::less<>> &
  tensors() const {
    return byName;
  }
  /// The single file's metadata; empty for an index.
  const std::vector<std::pair<std::string, std::string>> &metadata() const;

private:
  std::string pathName;
  std::vector<std::unique_ptr<SafeTensorsFile>> files;
  std::map<std::string, std::pair<const SafeTensorsFile *, const TensorInfo *>,
           std::less<>>
      byName;
  bool isIndex = false;
};

/// bindTensor for a checkpoint: a missing tensor is reported against the
/// checkpoint, a mismatch against the file that holds it.
const TensorInfo *bindTensor(const Checkpoint &checkpoint,
                             std::string_view name,
                             const std::vector<DType> &dtypes,
                             const std::vector<int64_t> &shape,
                             std::string &error);

/// Formats a shape as the messages do: "[8, 128]", "[]" for a scalar.
std::string formatShape(const std::vector<int64_t> &shape);

/// Quotes a tensor name or key for a message, in single quotes, with control
/// characters written as \xNN so that a message stays on one line whatever
/// the file holds.
std::string quoteName(std::string_view name);

} // namespace moec::safetensors

#endif // MOEC_RUNTIME_SAFETENSORS_SAFETENSORS_H
