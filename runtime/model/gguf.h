// GGUF (versions 2 and 3, little-endian) parsed from bytes in memory: header, metadata key/values,
// tensor directory. Nothing is trusted: every count, length, size and offset is checked against
// the bytes that remain before anything is allocated or read, so a malformed file becomes a
// one-line BadInput naming the file and the field, never a crash or a huge allocation.
//
// Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv x { string key, u32 type, value }      string = u64 len + bytes;
//                                                 array = u32 elem type, u64 count, elements
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
//   padding to general.alignment (default 32), then tensor data; offsets are relative to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"

namespace ts {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

const char* GgufTypeName(GgufType t);

// One metadata value. Scalars use one of int_value (all integer types and bool; uint64 values
// above INT64_MAX are rejected at parse time), float_value or str. Arrays (of scalars or strings;
// nested arrays are rejected) keep their elements in ints, floats or strings by element kind.
struct GgufValue {
  GgufType type = GgufType::kUint8;
  GgufType elem_type = GgufType::kUint8;  // when type == kArray
  int64_t int_value = 0;
  double float_value = 0.0;
  std::string str;
  uint64_t array_size = 0;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool IsInteger() const;  // any integer type (not bool)
  bool IsFloat() const { return type == GgufType::kFloat32 || type == GgufType::kFloat64; }
};

struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  DType dtype = DType::kF32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous dimension
  uint64_t offset = 0;      // absolute offset in the file
  uint64_t nbytes = 0;
};

struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute offset of the tensor data section
  std::map<std::string, GgufValue> kv;
  std::vector<std::string> kv_order;  // keys in file order
  std::vector<GgufTensor> tensors;    // in file order

  const GgufValue* Find(const std::string& key) const;
};

// The ggml type id -> DType for the supported tensor types; nullopt otherwise.
std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type);

// Parses `size` bytes at `data`; `name` (the file path) prefixes every error.
StatusOr<GgufFile> ParseGguf(const uint8_t* data, size_t size, const std::string& name);

}  // namespace ts
