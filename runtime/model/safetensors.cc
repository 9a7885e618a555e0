#include "runtime/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace ts {
namespace {

using nlohmann::json;

bool DTypeFromName(std::string_view s, DType* out) {
  if (s == "F32") {
    *out = DType::kF32;
  } else if (s == "F16") {
    *out = DType::kF16;
  } else if (s == "BF16") {
    *out = DType::kBF16;
  } else {
    return false;
  }
  return true;
}

// A non-negative JSON integer as uint64; false otherwise.
bool AsU64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

Status ParseEntry(const std::string& key, const json& v, uint64_t data_size,
                  const std::string& name, SafetensorsEntry* e) {
  const std::string what = absl::StrCat(name, ": tensor '", key, "'");
  if (!v.is_object()) return BadInput(what, ": expected an object");
  e->name = key;

  auto dtype = v.find("dtype");
  if (dtype == v.end() || !dtype->is_string()) {
    return BadInput(what, ": field 'dtype': missing or not a string");
  }
  const std::string& dtype_name = dtype->get_ref<const std::string&>();
  if (!DTypeFromName(dtype_name, &e->dtype)) {
    return BadInput(what, ": field 'dtype': unsupported dtype '", dtype_name,
                    "' (expected F32, F16 or BF16)");
  }

  auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array() || shape->size() > 8) {
    return BadInput(what, ": field 'shape': missing or not an array of at most 8 dimensions");
  }
  uint64_t elements = 1;
  for (const json& d : *shape) {
    uint64_t dim = 0;
    if (!AsU64(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
      return BadInput(what, ": field 'shape': dimension ", d.dump(),
                      " is not a non-negative integer");
    }
    if (__builtin_mul_overflow(elements, dim, &elements)) {
      return BadInput(what, ": field 'shape': element count overflows");
    }
    e->shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  const uint64_t elem_bytes = static_cast<uint64_t>(GetDTypeInfo(e->dtype).block_bytes);
  if (__builtin_mul_overflow(elements, elem_bytes, &nbytes)) {
    return BadInput(what, ": field 'shape': byte size overflows");
  }

  auto offsets = v.find("data_offsets");
  uint64_t begin = 0;
  uint64_t end = 0;
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 ||
      !AsU64((*offsets)[0], &begin) || !AsU64((*offsets)[1], &end)) {
    return BadInput(what, ": field 'data_offsets': expected [begin, end] non-negative integers");
  }
  if (begin > end || end > data_size) {
    return BadInput(what, ": field 'data_offsets': [", begin, ", ", end,
                    "] is not a range within the ", data_size, " data bytes");
  }
  if (end - begin != nbytes) {
    return BadInput(what, ": field 'data_offsets': [", begin, ", ", end, "] holds ", end - begin,
                    " bytes but shape and dtype need ", nbytes);
  }
  e->offset = begin;  // made absolute by the caller
  e->nbytes = nbytes;
  return absl::OkStatus();
}

Status ParseHeaderJson(const json& header, uint64_t data_size, const std::string& name,
                       SafetensorsHeader* out) {
  if (!header.is_object()) return BadInput(name, ": header: expected a JSON object");
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return BadInput(name, ": header '__metadata__': expected an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          return BadInput(name, ": header '__metadata__': value of '", mk, "' is not a string");
        }
        out->metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    TS_RETURN_IF_ERROR(ParseEntry(key, value, data_size, name, &e));
    out->tensors.push_back(std::move(e));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<SafetensorsHeader> ParseSafetensors(const uint8_t* data, size_t size,
                                             const std::string& name) {
  if (size < 8) {
    return BadInput(name, ": header length: file is ", size, " bytes, shorter than 8");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8) {
    return BadInput(name, ": header length ", header_len, " exceeds the ", size - 8,
                    " bytes after it");
  }
  SafetensorsHeader out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = size - out.data_offset;
  const char* text = reinterpret_cast<const char*>(data + 8);
  // nlohmann::json parses and destroys iteratively (no recursion on deep nesting); with
  // allow_exceptions = false a syntax error yields a discarded value instead of throwing.
  const json header = json::parse(text, text + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return BadInput(name, ": header: invalid JSON");
  try {
    TS_RETURN_IF_ERROR(ParseHeaderJson(header, data_size, name, &out));
  } catch (const std::exception& e) {  // a type error we failed to rule out above
    return BadInput(name, ": header: ", e.what());
  }

  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
            });
  uint64_t prev_end = 0;
  const SafetensorsEntry* prev = nullptr;
  for (SafetensorsEntry& e : out.tensors) {
    if (e.offset < prev_end) {
      return BadInput(name, ": tensor '", e.name, "': field 'data_offsets': begins at ", e.offset,
                      " inside tensor '", prev->name, "' (ends at ", prev_end, ")");
    }
    prev_end = e.offset + e.nbytes;
    prev = &e;
    e.offset += out.data_offset;
  }
  return out;
}

}  // namespace ts
