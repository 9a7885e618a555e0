// Element types of stored tensors, as GGUF and safetensors name them.
//
// Quantized types are stored in blocks along the last (contiguous) dimension, exactly as ggml
// lays them out (see kernels/cpu/quant_blocks.h for the block structs):
//   Q8_0: 32 elems, 34 bytes   (f16 d; int8 q[32])                x = d*q
//   Q4_0: 32 elems, 18 bytes   (f16 d; u8 qs[16])                 x = d*(q-8)
//   Q4_1: 32 elems, 20 bytes   (f16 d, m; u8 qs[16])              x = d*q + m
//   Q4_K: 256 elems, 144 bytes; Q5_K: 256 elems, 176 bytes; Q6_K: 256 elems, 210 bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ts {

enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ4_K, kQ5_K, kQ6_K };

struct DTypeInfo {
  std::string_view name;  // "f32", "q4_1", ... (lower case, as llama.cpp prints them)
  int block_elems;        // elements per block (1 for plain floats)
  int block_bytes;        // bytes per block
};

constexpr DTypeInfo GetDTypeInfo(DType t) {
  switch (t) {
    case DType::kF32:
      return {"f32", 1, 4};
    case DType::kF16:
      return {"f16", 1, 2};
    case DType::kBF16:
      return {"bf16", 1, 2};
    case DType::kQ8_0:
      return {"q8_0", 32, 34};
    case DType::kQ4_0:
      return {"q4_0", 32, 18};
    case DType::kQ4_1:
      return {"q4_1", 32, 20};
    case DType::kQ4_K:
      return {"q4_k", 256, 144};
    case DType::kQ5_K:
      return {"q5_k", 256, 176};
    case DType::kQ6_K:
      return {"q6_k", 256, 210};
  }
  return {"?", 1, 1};
}

inline bool IsQuantized(DType t) { return GetDTypeInfo(t).block_elems > 1; }

// Bytes of one row of `cols` elements; cols must be a multiple of the block size.
inline size_t RowBytes(DType t, int64_t cols) {
  const DTypeInfo info = GetDTypeInfo(t);
  return static_cast<size_t>(cols / info.block_elems) * static_cast<size_t>(info.block_bytes);
}

// A 2-D weight matrix as stored: `rows` output features, each a contiguous row of `cols` input
// features (PyTorch Linear [out, in]; GGUF ne0 = cols, ne1 = rows). Memory is owned elsewhere
// (usually a memory-mapped file).
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;  // = RowBytes(dtype, cols)
  const uint8_t* Row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes;
  }
};

}  // namespace ts
