// safetensors files (https://github.com/huggingface/safetensors) parsed from bytes in memory:
//   u64 little-endian N | N bytes of JSON header | data
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (relative
// to the start of the data) plus an optional "__metadata__" map of strings. Checked: the header
// fits the file and is a JSON object; dtype is F32, F16 or BF16; every dimension is a
// non-negative integer and their product times the element size (overflow-checked) equals
// end - begin; offsets lie within the data and tensors do not overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"

namespace ts {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty = scalar
  uint64_t offset = 0;         // absolute offset in the file
  uint64_t nbytes = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + header length
};

// Parses `size` bytes at `data`; `name` (the file path) prefixes every error.
StatusOr<SafetensorsHeader> ParseSafetensors(const uint8_t* data, size_t size,
                                             const std::string& name);

}  // namespace ts
