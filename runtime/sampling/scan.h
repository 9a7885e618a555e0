// Whole-vocabulary passes of the sampler, vectorised (Highway, the build's static target).
// These are the only per-token loops over all ids; everything else touches few tokens.
#pragma once

#include <cstdint>

namespace ts::sampling_scan {

// z[i] = Sanitize(logits[i] / temperature) for i < n (no division when temperature == 1), where
// Sanitize maps NaN to -inf and +inf to FLT_MAX. Returns max z (-inf when n == 0).
float ScaleSanitizeMax(const float* logits, float temperature, int64_t n, float* z);

// max z[0, n) (-inf when n == 0).
float Max(const float* z, int64_t n);

// The first i in [from, n) with z[i] == value, else n.
int64_t FindFirstEqual(const float* z, int64_t from, int64_t n, float value);

// The first i in [from, n) with z[i] >= value, else n.
int64_t FindFirstAtLeast(const float* z, int64_t from, int64_t n, float value);

}  // namespace ts::sampling_scan
