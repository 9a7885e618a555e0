#include "runtime/model/gguf.h"

#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ts {
namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Bytes of a scalar of type t; 0 for string/array (variable size).
size_t ScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool ValidType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

// Little-endian cursor over untrusted bytes. Every read is bounds-checked; `what` names the
// field for the error message.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Status Truncated(absl::string_view what, size_t need) const {
    return BadInput(name_, ": ", what, ": truncated at offset ", pos_, " (need ", need, " bytes, ",
                    remaining(), " left)");
  }

  template <typename T>
  Status Read(T* out, absl::string_view what) {
    if (remaining() < sizeof(T)) return Truncated(what, sizeof(T));
    std::memcpy(out, data_ + pos_, sizeof(T));  // host is little-endian (x86-64, aarch64)
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  Status ReadString(std::string* out, absl::string_view what) {
    uint64_t len = 0;
    TS_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return BadInput(name_, ": ", what, ": string length ", len, " at offset ", pos_ - 8,
                      " exceeds the ", remaining(), " bytes left in the file");
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return absl::OkStatus();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

// Reads one scalar of type t (not string/array) as an integer or a float.
Status ReadScalar(Reader& r, GgufType t, int64_t* i, double* f, absl::string_view what,
                  const std::string& name) {
  switch (t) {
    case GgufType::kUint8: {
      uint8_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kInt8: {
      int8_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kBool: {
      uint8_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      if (v > 1) return BadInput(name, ": ", what, ": bool value ", int{v}, " is not 0 or 1");
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kUint16: {
      uint16_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kInt16: {
      int16_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kUint32: {
      uint32_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kInt32: {
      int32_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kUint64: {
      uint64_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return BadInput(name, ": ", what, ": uint64 value ", v, " is too large");
      }
      *i = static_cast<int64_t>(v);
      return absl::OkStatus();
    }
    case GgufType::kInt64: {
      int64_t v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *i = v;
      return absl::OkStatus();
    }
    case GgufType::kFloat32: {
      float v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *f = v;
      return absl::OkStatus();
    }
    case GgufType::kFloat64: {
      double v;
      TS_RETURN_IF_ERROR(r.Read(&v, what));
      *f = v;
      return absl::OkStatus();
    }
    case GgufType::kString:
    case GgufType::kArray:
      break;
  }
  return BadInput(name, ": ", what, ": not a scalar type");
}

Status ReadArray(Reader& r, GgufValue* v, const std::string& what, const std::string& name) {
  uint32_t elem = 0;
  TS_RETURN_IF_ERROR(r.Read(&elem, what));
  if (!ValidType(elem)) {
    return BadInput(name, ": ", what, ": unknown array element type ", elem);
  }
  v->elem_type = static_cast<GgufType>(elem);
  if (v->elem_type == GgufType::kArray) {
    return BadInput(name, ": ", what, ": nested arrays are not supported");
  }
  uint64_t count = 0;
  TS_RETURN_IF_ERROR(r.Read(&count, what));
  // Bound the count by what the remaining bytes can hold before reserving anything.
  const size_t min_elem = v->elem_type == GgufType::kString ? 8 : ScalarBytes(v->elem_type);
  if (count > r.remaining() / min_elem) {
    return BadInput(name, ": ", what, ": array of ", count, " ", GgufTypeName(v->elem_type),
                    " exceeds the ", r.remaining(), " bytes left in the file");
  }
  v->array_size = count;
  const size_t n = static_cast<size_t>(count);
  if (v->elem_type == GgufType::kString) {
    v->strings.resize(n);
    for (size_t k = 0; k < n; ++k) {
      TS_RETURN_IF_ERROR(r.ReadString(&v->strings[k], what));
    }
  } else if (v->elem_type == GgufType::kFloat32 || v->elem_type == GgufType::kFloat64) {
    v->floats.resize(n);
    for (size_t k = 0; k < n; ++k) {
      int64_t unused = 0;
      TS_RETURN_IF_ERROR(ReadScalar(r, v->elem_type, &unused, &v->floats[k], what, name));
    }
  } else {
    v->ints.resize(n);
    for (size_t k = 0; k < n; ++k) {
      double unused = 0;
      TS_RETURN_IF_ERROR(ReadScalar(r, v->elem_type, &v->ints[k], &unused, what, name));
    }
  }
  return absl::OkStatus();
}

Status ReadValue(Reader& r, GgufValue* v, const std::string& what, const std::string& name) {
  uint32_t type = 0;
  TS_RETURN_IF_ERROR(r.Read(&type, what));
  if (!ValidType(type)) return BadInput(name, ": ", what, ": unknown value type ", type);
  v->type = static_cast<GgufType>(type);
  if (v->type == GgufType::kString) return r.ReadString(&v->str, what);
  if (v->type == GgufType::kArray) return ReadArray(r, v, what, name);
  return ReadScalar(r, v->type, &v->int_value, &v->float_value, what, name);
}

// a * b into *out; false on overflow.
bool MulOk(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool AddOk(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

Status ReadTensorInfo(Reader& r, size_t index, GgufTensor* t, const std::string& name) {
  const std::string at = absl::StrCat("tensor info #", index);
  TS_RETURN_IF_ERROR(r.ReadString(&t->name, at + " name"));
  const std::string what = absl::StrCat("tensor '", t->name, "'");
  uint32_t n_dims = 0;
  TS_RETURN_IF_ERROR(r.Read(&n_dims, what + " n_dims"));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return BadInput(name, ": ", what, ": n_dims ", n_dims, " is not in [1, ", kMaxDims, "]");
  }
  t->ne.resize(n_dims);
  uint64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    TS_RETURN_IF_ERROR(r.Read(&ne, what + " dims"));
    if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        !MulOk(elements, ne, &elements) ||
        elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return BadInput(name, ": ", what, ": element count overflows at dim ", d, " (ne ", ne, ")");
    }
    t->ne[d] = static_cast<int64_t>(ne);
  }
  TS_RETURN_IF_ERROR(r.Read(&t->ggml_type, what + " type"));
  const std::optional<DType> dtype = DTypeFromGgmlType(t->ggml_type);
  if (!dtype) {
    return BadInput(name, ": ", what, ": unsupported ggml type id ", t->ggml_type,
                    " (supported: f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k)");
  }
  t->dtype = *dtype;
  TS_RETURN_IF_ERROR(r.Read(&t->offset, what + " offset"));

  const DTypeInfo info = GetDTypeInfo(t->dtype);
  const uint64_t ne0 = static_cast<uint64_t>(t->ne[0]);
  if (ne0 % static_cast<uint64_t>(info.block_elems) != 0) {
    return BadInput(name, ": ", what, ": row length ", ne0, " is not a multiple of the ",
                    std::string(info.name), " block size ", info.block_elems);
  }
  uint64_t nbytes = 0;
  if (!MulOk(ne0 / info.block_elems, info.block_bytes, &nbytes)) {
    return BadInput(name, ": ", what, ": byte size overflows");
  }
  for (uint32_t d = 1; d < n_dims; ++d) {
    if (!MulOk(nbytes, static_cast<uint64_t>(t->ne[d]), &nbytes)) {
      return BadInput(name, ": ", what, ": byte size overflows");
    }
  }
  t->nbytes = nbytes;
  return absl::OkStatus();
}

Status ReadKv(Reader& r, GgufFile* file, size_t index, const std::string& name) {
  std::string key;
  TS_RETURN_IF_ERROR(r.ReadString(&key, absl::StrCat("metadata key #", index)));
  const std::string what = absl::StrCat("metadata '", key, "'");
  GgufValue value;
  TS_RETURN_IF_ERROR(ReadValue(r, &value, what, name));
  if (file->kv.count(key) != 0) return BadInput(name, ": ", what, ": duplicate key");
  file->kv_order.push_back(key);
  file->kv.emplace(std::move(key), std::move(value));
  return absl::OkStatus();
}

}  // namespace

const char* GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "?";
}

bool GgufValue::IsInteger() const {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF16;
    case 2:
      return DType::kQ4_0;
    case 3:
      return DType::kQ4_1;
    case 8:
      return DType::kQ8_0;
    case 12:
      return DType::kQ4_K;
    case 13:
      return DType::kQ5_K;
    case 14:
      return DType::kQ6_K;
    case 30:
      return DType::kBF16;
    default:
      return std::nullopt;
  }
}

StatusOr<GgufFile> ParseGguf(const uint8_t* data, size_t size, const std::string& name) {
  Reader r(data, size, name);
  char magic[4];
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
    return BadInput(name, ": not a GGUF file (magic is not 'GGUF')");
  }
  TS_RETURN_IF_ERROR(r.Read(&magic, "header magic"));
  GgufFile file;
  TS_RETURN_IF_ERROR(r.Read(&file.version, "header version"));
  if (file.version != 2 && file.version != 3) {
    if ((file.version & 0xFFFF) == 0 && file.version != 0) {
      return BadInput(name, ": header version: big-endian GGUF files are not supported");
    }
    return BadInput(name, ": header version: GGUF version ", file.version,
                    " is not supported (expected 2 or 3)");
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  TS_RETURN_IF_ERROR(r.Read(&n_tensors, "header tensor count"));
  TS_RETURN_IF_ERROR(r.Read(&n_kv, "header metadata count"));
  // Each key/value takes at least 13 bytes (8 key length, 4 type, 1 value), each tensor info at
  // least 28 (8 name length, 4 n_dims, 8 dim, 4 type, 8 offset): bound counts before looping.
  if (n_kv > r.remaining() / 13) {
    return BadInput(name, ": header metadata count ", n_kv, " exceeds what the ", r.remaining(),
                    " bytes left in the file can hold");
  }
  for (uint64_t k = 0; k < n_kv; ++k) {
    TS_RETURN_IF_ERROR(ReadKv(r, &file, static_cast<size_t>(k), name));
  }
  if (n_tensors > r.remaining() / 28) {
    return BadInput(name, ": header tensor count ", n_tensors, " exceeds what the ", r.remaining(),
                    " bytes left in the file can hold");
  }

  if (const GgufValue* a = file.Find("general.alignment")) {
    if (!a->IsInteger() || a->int_value <= 0 || (a->int_value & (a->int_value - 1)) != 0 ||
        a->int_value > (1 << 30)) {
      return BadInput(name, ": metadata 'general.alignment': expected a power of two integer, got ",
                      a->IsInteger() ? absl::StrCat(a->int_value) : GgufTypeName(a->type));
    }
    file.alignment = static_cast<uint64_t>(a->int_value);
  }

  file.tensors.resize(static_cast<size_t>(n_tensors));
  std::map<std::string_view, size_t> seen;
  for (size_t k = 0; k < file.tensors.size(); ++k) {
    TS_RETURN_IF_ERROR(ReadTensorInfo(r, k, &file.tensors[k], name));
    if (!seen.emplace(file.tensors[k].name, k).second) {
      return BadInput(name, ": tensor '", file.tensors[k].name, "': duplicate tensor name");
    }
  }

  // The data section starts at the next multiple of the alignment (alignment <= 2^30 and
  // pos <= size, so this cannot overflow).
  const uint64_t pos = r.pos();
  file.data_offset = (pos + file.alignment - 1) / file.alignment * file.alignment;
  for (GgufTensor& t : file.tensors) {
    if (t.offset % file.alignment != 0) {
      return BadInput(name, ": tensor '", t.name, "': data offset ", t.offset,
                      " is not a multiple of the alignment ", file.alignment);
    }
    uint64_t begin = 0;
    uint64_t end = 0;
    if (!AddOk(file.data_offset, t.offset, &begin) || !AddOk(begin, t.nbytes, &end) || end > size) {
      return BadInput(name, ": tensor '", t.name, "': data offset ", t.offset, " + size ", t.nbytes,
                      " exceeds file size ", size, " (data section at ", file.data_offset, ")");
    }
    t.offset = begin;
  }
  return file;
}

}  // namespace ts
