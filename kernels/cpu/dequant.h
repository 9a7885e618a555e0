// Scalar reference conversions between f32 and every stored DType (kernels/dtype.h).
//
// DequantizeRow matches ggml's dequantize_row_* (and gguf-py's numpy dequantize) bit for bit; the
// loaders and the tests use it, and the fast kernels must agree with it. QuantizeRow writes valid
// ggml blocks: Q8_0/Q4_0/Q4_1 as ggml's reference quantizers, K-quants with a simple
// (non-searching) quantizer that is good enough for tests and tools.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace ts {

// dst (n) = src, a row of n elements of type t (n a multiple of the block size).
void DequantizeRow(DType t, const void* src, float* dst, int64_t n);

// dst (RowBytes(t, n)) = src (n) quantized to type t (n a multiple of the block size).
void QuantizeRow(DType t, const float* src, void* dst, int64_t n);

}  // namespace ts
