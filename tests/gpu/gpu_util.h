// Device helpers of the GPU check (tests/gpu/gpu_check.cc): random fills made on the device (an
// 8B-shaped model's 16 GB of weights and a 100K-token KV cache without a host round trip) and the
// device's read bandwidth, the denominator of every bound the check reports.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ts::gpu {

// dst[i] = scale * u(seed, i) with u roughly uniform in [-1, 1): bf16 (bf16 = true) or f32.
// Enqueued on `stream` (a cudaStream_t); returns false when the launch failed.
bool FillRandom(void* dst, int64_t count, bool bf16, uint64_t seed, float scale, void* stream);
// dst[i] = value (f32).
bool FillConstant(float* dst, int64_t count, float value, void* stream);

// Bytes per second a streaming read of `bytes` of device memory achieves (best of `reps` timed
// passes after a warm-up; every byte is read once per pass, 16 bytes per load). 0 on failure.
double MeasureReadBandwidth(size_t bytes, int reps);

}  // namespace ts::gpu
