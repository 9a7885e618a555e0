// What `tokenswift bench` measures and how it is written out (JSON, Markdown, SVG speed curve).
//
// A bench runs one or two decoding modes (AR first, then TokenSwift) on the same prompt ids, seed
// and sampling settings. Per mode the Generator's TokenSink reports, after every decoding step,
// the number of tokens generated so far and the decode seconds so far: a ProgressMark. Those
// marks are all the speed curve needs.
//
// Speed per interval. Interval k covers generated tokens [k*I, (k+1)*I) (the last one may be
// shorter). Its time is T((k+1)*I) - T(k*I), where T(x) is the decode time at which the x-th
// generated token was done, read off the marks by LINEAR INTERPOLATION: T passes through (0, 0)
// and every mark (g_j, t_j), and a step that commits several tokens (a TokenSwift step commits an
// accepted path plus a bonus token) is taken to spend its time evenly on them. So a step that
// crosses an interval boundary is split between the two intervals in proportion to the tokens it
// committed on each side. Example, marks (1, 0.5) (4, 1.0) (5, 2.0) (9, 2.5), I = 3:
//   T(3) = 0.5 + (3-1)/(4-1) * (1.0-0.5) = 0.8333,  T(6) = 2.0 + (6-5)/(9-5) * 0.5 = 2.125,
//   T(9) = 2.5; intervals [0,3) 3/0.8333 = 3.6 tok/s, [3,6) 3/1.2917 = 2.32, [6,9) 3/0.375 = 8.
// The interval speeds are plotted at x = the interval's end (tokens generated so far).
//
// Quality figures. distinct-n (n = 1..4) is token-level: distinct n-grams / all n-grams of the
// generated ids (ts::DistinctN). Acceptance figures come from the decoder's DecodeCounters:
// mean accepted per step = committed / steps, acceptance rate = accepted / drafted, n-gram share =
// accepted_ngram / accepted (each 0 when its denominator is).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "launch/svg_plot.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/generator.h"
#include "runtime/sampling/sampling_params.h"

namespace ts::cli {

struct ProgressMark {
  int64_t generated = 0;  // tokens generated after the step
  double seconds = 0;     // decode seconds after the step
};

// A TokenSink keeping every step's ProgressMark. Capacity for `max_steps` marks is reserved up
// front (a step commits at least one token, so max_steps = max new tokens suffices): OnTokens
// does not allocate.
class ProgressRecorder : public TokenSink {
 public:
  explicit ProgressRecorder(int64_t max_steps) { marks_.reserve(max_steps); }
  void OnTokens(std::span<const int32_t> /*tokens*/, int64_t generated, double seconds) override {
    if (marks_.size() < marks_.capacity()) marks_.push_back({generated, seconds});
  }
  const std::vector<ProgressMark>& marks() const { return marks_; }

 private:
  std::vector<ProgressMark> marks_;  // (steps)
};

struct IntervalSpeed {
  int64_t begin = 0;  // first generated token of the interval
  int64_t end = 0;    // one past the last
  double seconds = 0;
  double tokens_per_second = 0;  // 0 when seconds is 0
};

// Speeds of the intervals [k*interval, (k+1)*interval) of the tokens the marks cover (up to the
// last mark's count), by linear interpolation as described above. Marks must be in step order
// with non-decreasing counts and times; interval >= 1.
std::vector<IntervalSpeed> IntervalSpeeds(std::span<const ProgressMark> marks, int64_t interval);

// Index of the first generated token where the two streams differ (the shorter length when one
// is a prefix of the other), or -1 when they are equal.
int64_t FirstMismatch(std::span<const int32_t> a, std::span<const int32_t> b);

// One decoding mode's run.
struct ModeRun {
  std::string mode;  // "ar" or "tokenswift"
  GenerationResult result;
  std::vector<IntervalSpeed> intervals;
  int64_t peak_rss_bytes = 0;
};

// Figures of a ModeRun derived from its result.
struct ModeFigures {
  double prefill_tokens_per_second = 0;
  double tokens_per_second = 0;
  double mean_accepted_per_step = 0;
  double acceptance_rate = 0;
  double ngram_accepted_share = 0;
  double distinct[4] = {0, 0, 0, 0};  // distinct-1 .. distinct-4
};
ModeFigures Figures(const ModeRun& run);

// The whole bench: settings, then the runs in the order they ran.
struct BenchReport {
  std::string model;       // path as given
  std::string model_name;  // for titles: the file or directory name without .gguf
  std::string backend;
  int threads = 0;
  int64_t prompt_tokens = 0;
  int64_t gen_tokens = 0;
  int64_t interval = 1024;
  int64_t warmup_tokens = 0;  // untimed tokens each mode generated first
  int tp = 1;                 // tensor-parallel ranks
  std::string mode;           // --mode: ar, tokenswift or both
  SamplingParams sampling;
  std::string heads;            // path, "random:SEED", or empty without TokenSwift
  std::vector<int> tree_shape;  // static tree shape, e.g. {1, 3, 3, 3}
  int tree_max_depth = 0;
  int tree_max_nodes = 0;
  int ngram_topk = 0;
  std::string kv_dtype;
  std::string peak_rss_method;
  std::vector<ModeRun> runs;

  const ModeRun* Find(const std::string& mode_name) const;
  // Both modes ran: whether TokenSwift committed exactly AR's tokens.
  std::optional<bool> Lossless() const;
  // Both modes ran: TokenSwift tokens/s over AR tokens/s.
  std::optional<double> Speedup() const;
};

// The JSON document: settings, "modes" (one object per run, keyed by mode, with the figures,
// "intervals" and "generated_ids"), "lossless", "first_mismatch", "speedup" (null unless both
// modes ran), and, for scripts/bench_llamacpp.py, the first run's prefill_tokens_per_second,
// tokens_per_second, seconds and generated_ids repeated at the top level.
nlohmann::json BenchJson(const BenchReport& report);
// Two Markdown tables (figures per mode, then tokens/s per interval) and the ratio line.
std::string BenchMarkdown(const BenchReport& report);
// The speed curve: tokens/s per interval against generated tokens (in K), one series per mode.
LinePlot BenchPlot(const BenchReport& report);

}  // namespace ts::cli
