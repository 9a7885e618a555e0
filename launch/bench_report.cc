// Bench figures and their JSON / Markdown / SVG forms; see bench_report.h for the definitions
// (interval speeds by linear interpolation over the step marks, distinct-n, acceptance figures).
#include "launch/bench_report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "runtime/engine/text_stats.h"

namespace ts::cli {
namespace {

double Ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string ModeTitle(const std::string& mode) { return mode == "ar" ? "AR" : "TokenSwift"; }

std::string ShapeString(const std::vector<int>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

std::vector<IntervalSpeed> IntervalSpeeds(std::span<const ProgressMark> marks, int64_t interval) {
  std::vector<IntervalSpeed> out;
  if (interval < 1 || marks.empty()) return out;
  const int64_t total = marks.back().generated;
  // T(x), for x non-decreasing between calls: j is the first mark with generated >= x; T is the
  // straight line from the mark before it (or (0, 0)) to it.
  size_t j = 0;
  auto time_at = [&](int64_t x) {
    while (j < marks.size() && marks[j].generated < x) ++j;
    if (j == marks.size()) return marks.back().seconds;
    const int64_t g0 = j > 0 ? marks[j - 1].generated : 0;
    const double t0 = j > 0 ? marks[j - 1].seconds : 0.0;
    if (x <= g0) return t0;
    const int64_t g1 = marks[j].generated;
    const double t1 = marks[j].seconds;
    return t0 + (t1 - t0) * static_cast<double>(x - g0) / static_cast<double>(g1 - g0);
  };
  for (int64_t begin = 0; begin < total; begin += interval) {
    IntervalSpeed s;
    s.begin = begin;
    s.end = std::min(begin + interval, total);
    const double t_begin = time_at(s.begin);
    s.seconds = time_at(s.end) - t_begin;
    s.tokens_per_second = Ratio(static_cast<double>(s.end - s.begin), s.seconds);
    out.push_back(s);
  }
  return out;
}

int64_t FirstMismatch(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

ModeFigures Figures(const ModeRun& run) {
  const GenerationResult& r = run.result;
  const DecodeCounters& c = r.counters;
  ModeFigures f;
  f.prefill_tokens_per_second = Ratio(static_cast<double>(r.prompt_tokens), r.prefill_seconds);
  f.tokens_per_second = Ratio(static_cast<double>(r.tokens.size()), r.decode_seconds);
  f.mean_accepted_per_step = Ratio(static_cast<double>(c.committed), static_cast<double>(c.steps));
  f.acceptance_rate = Ratio(static_cast<double>(c.accepted), static_cast<double>(c.drafted));
  f.ngram_accepted_share =
      Ratio(static_cast<double>(c.accepted_ngram), static_cast<double>(c.accepted));
  for (int n = 1; n <= 4; ++n) f.distinct[n - 1] = DistinctN(r.tokens, n);
  return f;
}

const ModeRun* BenchReport::Find(const std::string& mode_name) const {
  for (const ModeRun& run : runs) {
    if (run.mode == mode_name) return &run;
  }
  return nullptr;
}

std::optional<bool> BenchReport::Lossless() const {
  const ModeRun* ar = Find("ar");
  const ModeRun* tsw = Find("tokenswift");
  if (ar == nullptr || tsw == nullptr) return std::nullopt;
  return FirstMismatch(ar->result.tokens, tsw->result.tokens) < 0;
}

std::optional<double> BenchReport::Speedup() const {
  const ModeRun* ar = Find("ar");
  const ModeRun* tsw = Find("tokenswift");
  if (ar == nullptr || tsw == nullptr) return std::nullopt;
  return Ratio(Figures(*tsw).tokens_per_second, Figures(*ar).tokens_per_second);
}

nlohmann::json BenchJson(const BenchReport& report) {
  nlohmann::json j;
  j["engine"] = "tokenswift";
  j["backend"] = report.backend;
  j["model"] = report.model;
  j["model_name"] = report.model_name;
  j["threads"] = report.threads;
  j["mode"] = report.mode;
  j["prompt_tokens"] = report.prompt_tokens;
  j["gen_tokens"] = report.gen_tokens;
  j["interval"] = report.interval;
  j["warmup_tokens"] = report.warmup_tokens;
  j["tp"] = report.tp;
  j["kv_dtype"] = report.kv_dtype;
  const SamplingParams& s = report.sampling;
  j["sampling"] = {{"seed", s.seed},       {"temperature", s.temperature},
                   {"top_k", s.top_k},     {"top_p", s.top_p},
                   {"min_p", s.min_p},     {"eta", s.eta},
                   {"penalty", s.penalty}, {"penalty_window", s.penalty_window}};
  if (report.Find("tokenswift") != nullptr) {
    j["tokenswift"] = {{"heads", report.heads},
                       {"tree", report.tree_shape},
                       {"tree_max_depth", report.tree_max_depth},
                       {"tree_max_nodes", report.tree_max_nodes},
                       {"ngram_topk", report.ngram_topk}};
  }
  j["peak_rss_method"] = report.peak_rss_method;

  nlohmann::json modes = nlohmann::json::object();
  for (const ModeRun& run : report.runs) {
    const GenerationResult& r = run.result;
    const ModeFigures f = Figures(run);
    nlohmann::json m;
    m["prompt_tokens"] = r.prompt_tokens;
    m["generated_tokens"] = static_cast<int64_t>(r.tokens.size());
    m["prefill_seconds"] = r.prefill_seconds;
    m["prefill_tokens_per_second"] = f.prefill_tokens_per_second;
    m["seconds"] = r.decode_seconds;
    m["tokens_per_second"] = f.tokens_per_second;
    m["steps"] = r.counters.steps;
    m["committed"] = r.counters.committed;
    m["drafted"] = r.counters.drafted;
    m["accepted"] = r.counters.accepted;
    m["accepted_ngram"] = r.counters.accepted_ngram;
    m["ar_steps"] = r.counters.ar_steps;
    m["fused_steps"] = r.counters.fused_steps;
    m["separate_steps"] = r.counters.separate_steps;
    m["verified_rows"] = r.counters.verified_rows;
    m["mean_accepted_per_step"] = f.mean_accepted_per_step;
    m["acceptance_rate"] = f.acceptance_rate;
    m["ngram_accepted_share"] = f.ngram_accepted_share;
    for (int n = 1; n <= 4; ++n) m["distinct_" + std::to_string(n)] = f.distinct[n - 1];
    m["peak_rss_bytes"] = run.peak_rss_bytes;
    m["stop_reason"] = r.stop_reason;
    nlohmann::json intervals = nlohmann::json::array();
    for (const IntervalSpeed& iv : run.intervals) {
      intervals.push_back({{"begin", iv.begin},
                           {"end", iv.end},
                           {"seconds", iv.seconds},
                           {"tokens_per_second", iv.tokens_per_second}});
    }
    m["intervals"] = std::move(intervals);
    m["generated_ids"] = r.tokens;
    modes[run.mode] = std::move(m);
  }
  j["modes"] = std::move(modes);

  const std::optional<bool> lossless = report.Lossless();
  const std::optional<double> speedup = report.Speedup();
  j["lossless"] = lossless.has_value() ? nlohmann::json(*lossless) : nlohmann::json(nullptr);
  if (lossless.has_value()) {
    j["first_mismatch"] =
        FirstMismatch(report.Find("ar")->result.tokens, report.Find("tokenswift")->result.tokens);
  } else {
    j["first_mismatch"] = nullptr;
  }
  j["speedup"] = speedup.has_value() ? nlohmann::json(*speedup) : nlohmann::json(nullptr);
  if (!report.runs.empty()) {
    const nlohmann::json first = j["modes"][report.runs.front().mode];
    for (const char* key : {"prefill_seconds", "prefill_tokens_per_second", "seconds",
                            "tokens_per_second", "generated_tokens", "peak_rss_bytes"}) {
      j[key] = first[key];
    }
    j["generated_ids"] = first["generated_ids"];
  }
  return j;
}

std::string BenchMarkdown(const BenchReport& report) {
  std::ostringstream md;
  md << "# tokenswift bench: " << report.model_name << "\n\n"
     << report.backend << ", " << report.threads << " threads, prompt " << report.prompt_tokens
     << " tokens, " << report.gen_tokens << " generated, seed " << report.sampling.seed
     << ", temperature " << report.sampling.temperature << ", top-p " << report.sampling.top_p
     << ", top-k " << report.sampling.top_k << ", min-p " << report.sampling.min_p << ", penalty "
     << report.sampling.penalty << " over " << report.sampling.penalty_window << " tokens";
  if (report.Find("tokenswift") != nullptr) {
    md << "; TokenSwift heads " << report.heads << ", tree " << ShapeString(report.tree_shape)
       << " (max " << report.tree_max_nodes << " nodes), n-gram top-k " << report.ngram_topk;
  }
  md << ".\n\n"
     << "| mode | prefill s | prefill tok/s | generated | decode s | tok/s | steps | tokens/step "
        "| acceptance | n-gram share | distinct-1 | distinct-2 | distinct-3 | distinct-4 | peak "
        "RSS MiB |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const ModeRun& run : report.runs) {
    const GenerationResult& r = run.result;
    const ModeFigures f = Figures(run);
    const bool drafts = r.counters.drafted > 0;
    md << "| " << ModeTitle(run.mode) << " | " << Fixed(r.prefill_seconds, 3) << " | "
       << Fixed(f.prefill_tokens_per_second, 1) << " | " << r.tokens.size() << " | "
       << Fixed(r.decode_seconds, 3) << " | " << Fixed(f.tokens_per_second, 2) << " | "
       << r.counters.steps << " | " << Fixed(f.mean_accepted_per_step, 3) << " | "
       << (drafts ? Fixed(f.acceptance_rate, 4) : "-") << " | "
       << (drafts ? Fixed(f.ngram_accepted_share, 3) : "-") << " | " << Fixed(f.distinct[0], 4)
       << " | " << Fixed(f.distinct[1], 4) << " | " << Fixed(f.distinct[2], 4) << " | "
       << Fixed(f.distinct[3], 4) << " | " << Fixed(run.peak_rss_bytes / 1048576.0, 1) << " |\n";
  }
  const std::optional<double> speedup = report.Speedup();
  if (speedup.has_value()) {
    const bool lossless = *report.Lossless();
    md << "\n**TokenSwift / AR tokens/s: " << Fixed(*speedup, 3) << "x**; lossless (same tokens "
       << "as AR): " << (lossless ? "true" : "**false**") << ".\n";
  }

  md << "\nTokens/s per interval of " << report.interval
     << " generated tokens (a step crossing an interval boundary is split by linear "
        "interpolation):\n\n| generated tokens |";
  size_t rows = 0;
  for (const ModeRun& run : report.runs) {
    md << " " << ModeTitle(run.mode) << " tok/s |";
    rows = std::max(rows, run.intervals.size());
  }
  md << "\n|---|";
  for (size_t i = 0; i < report.runs.size(); ++i) md << "---|";
  md << "\n";
  for (size_t k = 0; k < rows; ++k) {
    const IntervalSpeed* ref = nullptr;
    for (const ModeRun& run : report.runs) {
      if (k < run.intervals.size()) {
        ref = &run.intervals[k];
        break;
      }
    }
    md << "| " << ref->begin << "-" << ref->end << " |";
    for (const ModeRun& run : report.runs) {
      md << " " << (k < run.intervals.size() ? Fixed(run.intervals[k].tokens_per_second, 2) : "-")
         << " |";
    }
    md << "\n";
  }
  return md.str();
}

LinePlot BenchPlot(const BenchReport& report) {
  LinePlot plot;
  plot.title = "tokenswift bench: " + report.model_name;
  const std::optional<double> speedup = report.Speedup();
  if (speedup.has_value()) plot.title += ", TokenSwift / AR = " + Fixed(*speedup, 2) + "x";
  plot.x_label = "generated tokens (K)";
  plot.y_label = "tokens/s per " + std::to_string(report.interval) + "-token interval";
  for (const ModeRun& run : report.runs) {
    PlotSeries s;
    s.name = ModeTitle(run.mode) + " (" + Fixed(Figures(run).tokens_per_second, 1) + " tok/s)";
    for (const IntervalSpeed& iv : run.intervals) {
      s.x.push_back(iv.end / 1000.0);
      s.y.push_back(iv.tokens_per_second);
    }
    plot.series.push_back(std::move(s));
  }
  return plot;
}

}  // namespace ts::cli
