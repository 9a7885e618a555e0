#include "runtime/sampling/sampling_params.h"

#include <cmath>

namespace ts {

Status Validate(const SamplingParams& p) {
  // Written as negated "in range" tests so that NaN always fails.
  if (!(p.temperature >= 0.0f && std::isfinite(p.temperature))) {
    return BadInput("--temperature: expected a finite value >= 0 (0 = greedy), got ",
                    p.temperature);
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return BadInput("--top-p: expected a value in (0, 1], got ", p.top_p);
  }
  if (p.top_k < 0) {
    return BadInput("--top-k: expected a value >= 0 (0 = off), got ", p.top_k);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return BadInput("--min-p: expected a value in [0, 1], got ", p.min_p);
  }
  if (!(p.penalty > 0.0f && std::isfinite(p.penalty))) {
    return BadInput("--penalty: expected a finite value > 0 (1 = off), got ", p.penalty);
  }
  if (p.penalty_window < 0) {
    return BadInput("--penalty-window: expected a value >= 0, got ", p.penalty_window);
  }
  if (!(p.eta >= 0.0f && p.eta < 1.0f)) {
    return BadInput("--eta: expected a value in [0, 1) (0 = off), got ", p.eta);
  }
  return absl::OkStatus();
}

}  // namespace ts
