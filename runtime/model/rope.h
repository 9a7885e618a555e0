// Rotary embedding frequencies for the rope variants of HF transformers
// (modeling_rope_utils.py): default, linear, llama3 and yarn. The kernel rotates pair j of a head
// by position * inv_freq[j] and scales the result by `mscale` (yarn's attention factor).
#pragma once

#include <vector>

#include "runtime/model/config.h"

namespace ts {

struct RopeTable {
  std::vector<float> inv_freq;  // (head_dim / 2)
  float mscale = 1.0f;
};

RopeTable ComputeRope(const ModelConfig& config);

}  // namespace ts
