#include "runtime/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ts {
namespace {

// HF computes base ** (2j / dim) in float32.
std::vector<float> DefaultInvFreq(float theta, int dim) {
  std::vector<float> inv(dim / 2);
  for (int j = 0; j < dim / 2; ++j) {
    const float exponent = static_cast<float>(2 * j) / static_cast<float>(dim);
    inv[j] = 1.0f / std::pow(theta, exponent);
  }
  return inv;
}

void ApplyLlama3(const RopeScaling& s, std::vector<float>& inv) {
  const double old_ctx = static_cast<double>(s.original_max_position);
  const double low_freq_wavelen = old_ctx / s.low_freq_factor;
  const double high_freq_wavelen = old_ctx / s.high_freq_factor;
  for (float& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f = f / s.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const float smooth = static_cast<float>((old_ctx / wavelen - s.low_freq_factor) /
                                              (s.high_freq_factor - s.low_freq_factor));
      f = (1.0f - smooth) * f / s.factor + smooth * f;
    }
  }
}

double YarnMscale(double scale) { return scale <= 1.0 ? 1.0 : 0.1 * std::log(scale) + 1.0; }

void ApplyYarn(const ModelConfig& c, std::vector<float>& inv, float& mscale) {
  const RopeScaling& s = c.rope_scaling;
  const int dim = c.head_dim;
  const double base = c.rope_theta;
  const double orig =
      static_cast<double>(s.original_max_position > 0 ? s.original_max_position : c.max_position);
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(orig / (rotations * 2.0 * std::numbers::pi))) / (2.0 * std::log(base));
  };
  double low = std::floor(correction_dim(s.beta_fast));
  double high = std::ceil(correction_dim(s.beta_slow));
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int j = 0; j < dim / 2; ++j) {
    const float extrapolation = inv[j];
    const float interpolation = inv[j] / s.factor;
    const float ramp = std::clamp(static_cast<float>((j - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    inv[j] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  mscale =
      s.attention_factor > 0.0f ? s.attention_factor : static_cast<float>(YarnMscale(s.factor));
}

}  // namespace

RopeTable ComputeRope(const ModelConfig& config) {
  RopeTable table;
  table.inv_freq = DefaultInvFreq(config.rope_theta, config.head_dim);
  const std::vector<float>& factors = config.rope_scaling.freq_factors;
  if (!factors.empty()) {
    // GGUF stores llama3-style scaling as per-frequency divisors (rope_freqs.weight).
    for (size_t j = 0; j < table.inv_freq.size() && j < factors.size(); ++j) {
      table.inv_freq[j] /= factors[j];
    }
    return table;
  }
  switch (config.rope_scaling.type) {
    case RopeScaling::Type::kDefault:
      break;
    case RopeScaling::Type::kLinear:
      for (float& f : table.inv_freq) f /= config.rope_scaling.factor;
      break;
    case RopeScaling::Type::kLlama3:
      ApplyLlama3(config.rope_scaling, table.inv_freq);
      break;
    case RopeScaling::Type::kYarn:
      ApplyYarn(config, table.inv_freq, table.mscale);
      break;
  }
  return table;
}

}  // namespace ts
