// SIMD row kernels behind ops.cc (ops_simd.cc).
#pragma once

#include <cstdint>

namespace ts::cpu {

// out (dim) = silu(gate) * up; out may alias gate.
void SwiGluRow(const float* gate, const float* up, int64_t dim, float* out);

}  // namespace ts::cpu
