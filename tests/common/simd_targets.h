// Runs a check once per SIMD target this CPU supports (Highway's dispatch restricted to that
// target with hwy::SetSupportedTargetsForTest), so a test covers every kernel path the machine
// has, not only the one the dispatcher would pick. Targets the kernels are built for but this
// CPU lacks are printed as skipped, by name, and recorded in the test's XML properties.
//
//   ForEachSimdTarget([&] { ... EXPECT_... ; });
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace ts::testing {

template <typename Fn>
void ForEachSimdTarget(Fn&& fn) {
  hwy::SetSupportedTargetsForTest(0);
  const int64_t supported = hwy::SupportedTargets();
  std::string ran, skipped;
  auto append = [](std::string& list, const char* name) {
    list += list.empty() ? name : std::string(", ") + name;
  };
  // The targets kernels/cpu is compiled for (x86: HWY_WANT_AVX3_DL), best first.
  for (int64_t target : {int64_t{HWY_AVX3_DL}, int64_t{HWY_AVX3}, int64_t{HWY_AVX2},
                         int64_t{HWY_SSE4}, int64_t{HWY_EMU128}, int64_t{HWY_SCALAR}}) {
    if ((supported & target) == 0) {
      append(skipped, hwy::TargetName(target));
      continue;
    }
    append(ran, hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(std::string("SIMD target ") + hwy::TargetName(target));
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
  std::printf("[ SIMD     ] ran on %s; skipped (this CPU lacks them): %s\n", ran.c_str(),
              skipped.empty() ? "none" : skipped.c_str());
  ::testing::Test::RecordProperty("simd_targets_ran", ran);
  ::testing::Test::RecordProperty("simd_targets_skipped", skipped.empty() ? "none" : skipped);
}

}  // namespace ts::testing
