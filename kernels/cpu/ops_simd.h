// SIMD row kernels behind ops.cc (ops_simd.cc).
#pragma once

#include <cstdint>

namespace ts::cpu {

// out (dim) = silu(gate) * up; out may alias gate.
void SwiGluRow(const float* gate, const float* up, int64_t dim, float* out);

// out[i] = q . k_i for n key rows of head_dim elements, row i at k + i * head_dim (f32, or bf16
// when `bf16`). One FMA chain per vector lane over d, then a lane reduction, then the scalar tail
// (head_dim % lanes): a row's score does not depend on n or on the other rows.
void KeyScoreRows(const float* q, const void* k, bool bf16, int head_dim, int64_t n, float* out);

}  // namespace ts::cpu
