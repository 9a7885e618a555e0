// Statistics of a generated token stream and of the process.
#pragma once

#include <cstdint>
#include <span>

namespace ts {

// Distinct-n: distinct n-grams / total n-grams of `tokens` (0 when there are none).
double DistinctN(std::span<const int32_t> tokens, int n);

// Peak resident set size of this process, in bytes.
int64_t PeakRssBytes();

}  // namespace ts
