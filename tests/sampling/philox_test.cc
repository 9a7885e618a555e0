#include "runtime/sampling/philox.h"

#include <gtest/gtest.h>

#include "runtime/sampling/gumbel.h"

namespace ts {
namespace {

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key -> output.
TEST(Philox4x32_10, MatchesRandom123KnownAnswers) {
  EXPECT_EQ(Philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(Philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                          {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(Philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(GumbelBits, EveryCoordinateChangesTheDraw) {
  const uint64_t base = GumbelBits(7, 100, 10);
  EXPECT_EQ(base, GumbelBits(7, 100, 10));
  EXPECT_NE(base, GumbelBits(8, 100, 10));                        // seed
  EXPECT_NE(base, GumbelBits(7, 101, 10));                        // position
  EXPECT_NE(base, GumbelBits(7, 100, 11));                        // token: other half of one block
  EXPECT_NE(base, GumbelBits(7, 100, 12));                        // token: next block
  EXPECT_NE(base, GumbelBits(7, 100 + (uint64_t{1} << 32), 10));  // high position word
  EXPECT_NE(base, GumbelBits(7 + (uint64_t{1} << 32), 100, 10));  // high seed word
}

TEST(GumbelFromBits, IsFiniteAtTheExtremes) {
  const double lo = GumbelFromBits(0);
  const double hi = GumbelFromBits(~uint64_t{0});
  EXPECT_TRUE(std::isfinite(lo));
  EXPECT_TRUE(std::isfinite(hi));
  EXPECT_LT(lo, -3.0);
  EXPECT_GT(hi, 36.0);
  EXPECT_LT(hi, 37.0);
}

TEST(GumbelNoise, HasTheStandardGumbelMeanAndVariance) {
  // mean = Euler-Mascheroni gamma, variance = pi^2 / 6.
  constexpr int kN = 200000;
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kN; ++i) {
    const double g = GumbelNoise(42, static_cast<uint64_t>(i / 64), static_cast<uint32_t>(i % 64));
    sum += g;
    sum_sq += g * g;
  }
  const double mean = sum / kN;
  const double var = sum_sq / kN - mean * mean;
  EXPECT_NEAR(mean, 0.5772156649, 0.01);  // sd of the mean ~ 0.0029
  EXPECT_NEAR(var, 1.6449340668, 0.03);
}

}  // namespace
}  // namespace ts
