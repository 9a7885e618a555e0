// Writes safetensors files (https://github.com/huggingface/safetensors), for tests and for
// `tokenswift make-test-model`. Layout:
//   u64 little-endian N | N bytes of JSON header, space-padded to a multiple of 8 | data
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
// relative to the start of the data) plus an optional "__metadata__" string map. Tensors are laid
// out contiguously with no holes, as the format requires; they are ordered by element size
// (largest first, then the caller's order) so that every tensor is aligned to its element size.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"

namespace ts {

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;   // kF32, kF16 or kBF16
  std::vector<int64_t> shape;  // empty = scalar
  std::vector<uint8_t> bytes;  // little-endian, row-major; size = product(shape) * element size
};

// The whole file as bytes. BadInput for an empty or duplicate name, a quantized dtype, a negative
// dimension, or a byte count that does not match the shape.
StatusOr<std::string> SerializeSafetensors(const std::vector<SafetensorsTensor>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// SerializeSafetensors, then writes the result to `path` (RuntimeFailure if the write fails).
Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

// Encodes f32 values as `dtype` (kF32, kF16 or kBF16; halves round to nearest even, as PyTorch
// does), little-endian.
std::vector<uint8_t> EncodeFloats(std::span<const float> values, DType dtype);

// Round-to-nearest-even conversions, bit patterns as stored.
uint16_t F32ToBf16Bits(float f);
uint16_t F32ToF16Bits(float f);

}  // namespace ts
