// `tokenswift bench` figures against hand-computed values: tokens/s per interval of generated
// tokens (linear interpolation over the step marks, including steps that cross a boundary),
// token-level distinct-n, the lossless comparison, the JSON contract and the SVG mapping.
#include "launch/bench_report.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launch/bench_inputs.h"
#include "launch/svg_plot.h"
#include "runtime/engine/text_stats.h"

namespace ts::cli {
namespace {

// Marks of a TokenSwift-like run: steps commit 1, 3, 1 and 4 tokens.
const std::vector<ProgressMark> kMarks = {{1, 0.5}, {4, 1.0}, {5, 2.0}, {9, 2.5}};

TEST(IntervalSpeeds, SplitsBoundaryCrossingStepsByInterpolation) {
  // T(3) = 0.5 + 2/3 * 0.5 = 5/6; T(6) = 2.0 + 1/4 * 0.5 = 2.125; T(9) = 2.5.
  const std::vector<IntervalSpeed> s = IntervalSpeeds(kMarks, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].begin, 0);
  EXPECT_EQ(s[0].end, 3);
  EXPECT_NEAR(s[0].seconds, 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(s[0].tokens_per_second, 3.6, 1e-12);
  EXPECT_NEAR(s[1].seconds, 2.125 - 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(s[1].tokens_per_second, 3.0 / (2.125 - 5.0 / 6.0), 1e-12);
  EXPECT_NEAR(s[2].seconds, 0.375, 1e-12);
  EXPECT_NEAR(s[2].tokens_per_second, 8.0, 1e-12);
}

TEST(IntervalSpeeds, LastIntervalIsShorter) {
  // T(4) = 1.0 (a mark), T(8) = 2.0 + 3/4 * 0.5 = 2.375, T(9) = 2.5.
  const std::vector<IntervalSpeed> s = IntervalSpeeds(kMarks, 4);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0].tokens_per_second, 4.0, 1e-12);
  EXPECT_NEAR(s[1].tokens_per_second, 4.0 / 1.375, 1e-12);
  EXPECT_EQ(s[2].begin, 8);
  EXPECT_EQ(s[2].end, 9);
  EXPECT_NEAR(s[2].tokens_per_second, 8.0, 1e-12);
}

TEST(IntervalSpeeds, OneTokenStepsNeedNoInterpolation) {
  // AR: token i done at time t_i = 0.1 * i^2; interval k spans t_{2k+2} - t_{2k}.
  std::vector<ProgressMark> marks;
  for (int i = 1; i <= 6; ++i) marks.push_back({i, 0.1 * i * i});
  const std::vector<IntervalSpeed> s = IntervalSpeeds(marks, 2);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0].seconds, 0.4, 1e-12);
  EXPECT_NEAR(s[1].seconds, 1.6 - 0.4, 1e-12);
  EXPECT_NEAR(s[2].seconds, 3.6 - 1.6, 1e-12);
  EXPECT_NEAR(s[2].tokens_per_second, 1.0, 1e-12);
  // One interval covering everything is the overall speed.
  const std::vector<IntervalSpeed> all = IntervalSpeeds(marks, 100);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_NEAR(all[0].tokens_per_second, 6 / 3.6, 1e-12);
  EXPECT_TRUE(IntervalSpeeds({}, 2).empty());
}

TEST(DistinctN, HandComputed) {
  const std::vector<int32_t> t = {1, 2, 1, 2, 3};
  EXPECT_DOUBLE_EQ(DistinctN(t, 1), 3.0 / 5.0);  // {1, 2, 3} of 5
  EXPECT_DOUBLE_EQ(DistinctN(t, 2), 3.0 / 4.0);  // 12 21 12 23
  EXPECT_DOUBLE_EQ(DistinctN(t, 3), 1.0);        // 121 212 123
  EXPECT_DOUBLE_EQ(DistinctN(t, 4), 1.0);        // 1212 2123
  const std::vector<int32_t> same = {7, 7, 7, 7, 7, 7};
  EXPECT_DOUBLE_EQ(DistinctN(same, 2), 1.0 / 5.0);
  EXPECT_DOUBLE_EQ(DistinctN(std::vector<int32_t>{1, 2}, 3), 0.0);  // no 3-grams
}

TEST(FirstMismatch, EqualPrefixAndDifference) {
  const std::vector<int32_t> a = {1, 2, 3, 4};
  EXPECT_EQ(FirstMismatch(a, a), -1);
  EXPECT_EQ(FirstMismatch(a, std::vector<int32_t>{1, 2, 9, 4}), 2);
  EXPECT_EQ(FirstMismatch(a, std::vector<int32_t>{1, 2, 3}), 3);
}

ModeRun MakeRun(const std::string& mode, std::vector<int32_t> tokens, double seconds) {
  ModeRun run;
  run.mode = mode;
  run.result.prompt_tokens = 8;
  run.result.prefill_seconds = 0.5;
  run.result.decode_seconds = seconds;
  run.result.counters.steps = mode == "ar" ? 4 : 2;
  run.result.counters.committed = 4;
  run.result.counters.drafted = mode == "ar" ? 0 : 10;
  run.result.counters.accepted = mode == "ar" ? 0 : 2;
  run.result.counters.accepted_ngram = mode == "ar" ? 0 : 1;
  run.result.tokens = std::move(tokens);
  run.intervals = IntervalSpeeds(std::vector<ProgressMark>{{4, seconds}}, 2);
  run.peak_rss_bytes = 1 << 20;
  return run;
}

TEST(BenchJson, FiguresLosslessAndSpeedup) {
  BenchReport report;
  report.mode = "both";
  report.interval = 2;
  report.runs.push_back(MakeRun("ar", {1, 2, 1, 2}, 2.0));
  report.runs.push_back(MakeRun("tokenswift", {1, 2, 1, 2}, 1.0));
  nlohmann::json j = BenchJson(report);
  EXPECT_EQ(j["lossless"], true);
  EXPECT_EQ(j["first_mismatch"], -1);
  EXPECT_DOUBLE_EQ(j["speedup"].get<double>(), 2.0);  // 4 / 1.0 over 4 / 2.0
  const nlohmann::json& t = j["modes"]["tokenswift"];
  EXPECT_DOUBLE_EQ(t["tokens_per_second"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(t["prefill_tokens_per_second"].get<double>(), 16.0);
  EXPECT_DOUBLE_EQ(t["mean_accepted_per_step"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(t["acceptance_rate"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(t["ngram_accepted_share"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(t["distinct_2"].get<double>(), 2.0 / 3.0);
  ASSERT_EQ(t["intervals"].size(), 2u);
  EXPECT_DOUBLE_EQ(t["intervals"][1]["tokens_per_second"].get<double>(), 4.0);
  // The first run's figures at the top level (scripts/bench_llamacpp.py reads them).
  EXPECT_DOUBLE_EQ(j["tokens_per_second"].get<double>(), 2.0);
  EXPECT_EQ(j["generated_ids"].size(), 4u);

  report.runs[1].result.tokens[3] = 5;
  j = BenchJson(report);
  EXPECT_EQ(j["lossless"], false);
  EXPECT_EQ(j["first_mismatch"], 3);
  const std::string md = BenchMarkdown(report);
  EXPECT_NE(md.find("| AR |"), std::string::npos);
  EXPECT_NE(md.find("| TokenSwift |"), std::string::npos);
  EXPECT_NE(md.find("2.000x"), std::string::npos);
  EXPECT_NE(md.find("| 2-4 | 2.00 | 4.00 |"), std::string::npos) << md;

  report.runs.pop_back();
  j = BenchJson(report);
  EXPECT_TRUE(j["lossless"].is_null());
  EXPECT_TRUE(j["speedup"].is_null());
}

TEST(NiceTicks, StepsOfOneTwoTwoAndHalfFive) {
  EXPECT_EQ(NiceTicks(7.3), (std::vector<double>{0, 2, 4, 6, 8}));
  EXPECT_EQ(NiceTicks(1234), (std::vector<double>{0, 250, 500, 750, 1000, 1250}));
  EXPECT_EQ(NiceTicks(10), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(NiceTicks(0), (std::vector<double>{0, 1}));
}

TEST(RenderLinePlotSvg, MapsPointsAndEscapesText) {
  LinePlot plot;
  plot.title = "A & <B>";
  plot.series.push_back({"AR", {0.5, 2.0}, {4, 10}});
  plot.series.push_back({"TS", {1.0}, {5}});
  const std::string svg = RenderLinePlotSvg(plot);
  EXPECT_NE(svg.find("A &amp; &lt;B&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<B>"), std::string::npos);
  // x axis 0..2, y axis 0..10 over the plot area [78, 736] x [72, 398]: (2, 10) is the top right
  // corner, (0.5, 4) is at x = 78 + 658/4, y = 398 - 326 * 0.4.
  EXPECT_NE(svg.find("242.50,267.60 736.00,72.00"), std::string::npos) << svg;
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) {
    ++polylines;
  }
  EXPECT_EQ(polylines, 2u);
}

TEST(BenchInputs, TreeShapeAndPrompt) {
  EXPECT_EQ(*ParseTreeShape("1,3,3,3"), (std::vector<int>{1, 3, 3, 3}));
  EXPECT_EQ(*ParseTreeShape("2"), (std::vector<int>{2}));
  for (const char* bad : {"", "1,,3", "1,3,", "0,3", "a", "1,17", "1,3x", "1,1,1,1,1"}) {
    EXPECT_FALSE(ParseTreeShape(bad).ok()) << bad;
  }
  EXPECT_EQ(RepeatToLength({5, 6, 7}, 7), (std::vector<int32_t>{5, 6, 7, 5, 6, 7, 5}));
  EXPECT_EQ(*ParsePromptIds(" 1 2\n3 ", "f", 4), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(ParsePromptIds("1 4", "f", 4).ok());
  EXPECT_FALSE(ParsePromptIds("1 x", "f", 4).ok());
  EXPECT_FALSE(ParsePromptIds(" ", "f", 4).ok());
}

}  // namespace
}  // namespace ts::cli
