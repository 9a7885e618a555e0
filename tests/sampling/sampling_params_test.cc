#include "runtime/sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace ts {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Validate, AcceptsDefaultsAndEdgesOfEveryRange) {
  EXPECT_TRUE(Validate(SamplingParams{}).ok());
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.top_k = 0;
  p.eta = 0.0f;
  p.penalty_window = 0;
  p.penalty = 1e-3f;
  EXPECT_TRUE(Validate(p).ok());
  p.min_p = 0.0f;
  p.top_p = 1e-6f;
  p.eta = 0.999f;
  p.top_k = 1;
  EXPECT_TRUE(Validate(p).ok());
}

struct BadCase {
  std::function<void(SamplingParams&)> set;
  std::string message;
};

TEST(Validate, RejectsOutOfRangeValuesNamingTheFlag) {
  const BadCase cases[] = {
      {[](SamplingParams& p) { p.temperature = -0.5f; },
       "--temperature: expected a finite value >= 0 (0 = greedy), got -0.5"},
      {[](SamplingParams& p) { p.temperature = kNaN; },
       "--temperature: expected a finite value >= 0 (0 = greedy), got nan"},
      {[](SamplingParams& p) { p.temperature = kInf; },
       "--temperature: expected a finite value >= 0 (0 = greedy), got inf"},
      {[](SamplingParams& p) { p.top_p = 1.5f; }, "--top-p: expected a value in (0, 1], got 1.5"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "--top-p: expected a value in (0, 1], got 0"},
      {[](SamplingParams& p) { p.top_p = kNaN; }, "--top-p: expected a value in (0, 1], got nan"},
      {[](SamplingParams& p) { p.top_k = -1; }, "--top-k: expected a value >= 0 (0 = off), got -1"},
      {[](SamplingParams& p) { p.min_p = -0.1f; }, "--min-p: expected a value in [0, 1], got -0.1"},
      {[](SamplingParams& p) { p.min_p = 1.25f; }, "--min-p: expected a value in [0, 1], got 1.25"},
      {[](SamplingParams& p) { p.min_p = kNaN; }, "--min-p: expected a value in [0, 1], got nan"},
      {[](SamplingParams& p) { p.penalty = 0.0f; },
       "--penalty: expected a finite value > 0 (1 = off), got 0"},
      {[](SamplingParams& p) { p.penalty = -1.2f; },
       "--penalty: expected a finite value > 0 (1 = off), got -1.2"},
      {[](SamplingParams& p) { p.penalty = kNaN; },
       "--penalty: expected a finite value > 0 (1 = off), got nan"},
      {[](SamplingParams& p) { p.penalty_window = -3; },
       "--penalty-window: expected a value >= 0, got -3"},
      {[](SamplingParams& p) { p.eta = -0.01f; },
       "--eta: expected a value in [0, 1) (0 = off), got -0.01"},
      {[](SamplingParams& p) { p.eta = 1.0f; },
       "--eta: expected a value in [0, 1) (0 = off), got 1"},
  };
  for (const BadCase& c : cases) {
    SamplingParams p;
    c.set(p);
    const Status s = Validate(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(s.message(), c.message);
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace ts
