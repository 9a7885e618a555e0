// `tokenswift bench --mode verify` (see bench_verify.h).
#include "launch/bench_verify.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "launch/svg_plot.h"
#include "runtime/decode/draft_tree.h"
#include "runtime/model/transformer.h"
#include "spdlog/spdlog.h"

namespace ts::cli {
namespace {

constexpr int kMaxRows = 1024;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

StatusOr<std::vector<int>> ParseRows(const std::string& text) {
  std::vector<int> rows;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1 || v > kMaxRows) {
      return BadInput("--rows: expected comma-separated row counts in [1, ", kMaxRows, "], got '",
                      text, "'");
    }
    if (!rows.empty() && v <= rows.back()) {
      return BadInput("--rows: expected ascending row counts, got '", text, "'");
    }
    rows.push_back(v);
  }
  return rows;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

StatusOr<VerifyBenchResult> RunVerifyBench(const Model& model, Backend* backend,
                                           std::span<const int32_t> prompt,
                                           const VerifyBenchOptions& options) {
  const ModelConfig& config = model.config();
  const int max_rows = options.rows.back();
  const int64_t n = static_cast<int64_t>(prompt.size());
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, n + max_rows, options.kv_dtype, backend));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<PlacedWeights> weights,
                      PlacedWeights::Place(model.weights(), config, *backend));
  Transformer transformer(config, weights->get(), backend,
                          std::max<int64_t>(options.prefill_chunk, max_rows));
  VerifyBenchResult result;
  result.context_tokens = n;

  const auto t0 = std::chrono::steady_clock::now();
  TS_RETURN_IF_ERROR(transformer.ForwardCausal(prompt, 0, n, *cache, nullptr));
  result.prefill_seconds = Seconds(t0);
  spdlog::info("verify bench: prefilled {} tokens in {:.1f} s ({:.1f} tok/s)", n,
               result.prefill_seconds, n / result.prefill_seconds);

  DraftTreeOptions tree_options;
  tree_options.max_nodes = max_rows;
  tree_options.max_depth = max_rows;  // the ternary tree is shallow; never cut
  DraftTree tree(tree_options);
  std::vector<float> logits(static_cast<size_t>(max_rows) * config.vocab_size);
  std::vector<int32_t> logits_rows(max_rows);
  for (int i = 0; i < max_rows; ++i) logits_rows[i] = i;
  const int32_t vocab = static_cast<int32_t>(config.vocab_size);
  for (int rows : options.rows) {
    tree.Reset(prompt.back(), static_cast<int32_t>(n));
    for (int i = 1; i < rows; ++i) {
      // Siblings (i = 3p + 1 .. 3p + 3) get distinct tokens, so the trie merges none of them.
      tree.AddChild((i - 1) / 3, static_cast<int32_t>((prompt.back() + i) % vocab), 0);
    }
    tree.Finalize();
    if (tree.size() != rows) {
      return RuntimeFailure("verify bench: a tree of ", rows, " rows came out with ", tree.size(),
                            " (vocabulary of ", vocab, ")");
    }
    const ForwardBatch batch = tree.VerifyBatch(std::span<const int32_t>(logits_rows.data(), rows));
    std::vector<double>& samples = result.samples_ms[rows];
    for (int rep = -1; rep < options.reps; ++rep) {  // rep -1: untimed
      const auto t1 = std::chrono::steady_clock::now();
      TS_RETURN_IF_ERROR(transformer.Forward(batch, *cache, logits.data()));
      if (rep >= 0) samples.push_back(Seconds(t1) * 1e3);
    }
    result.median_ms[rows] = Median(samples);
    spdlog::info("verify bench: {} rows at {} tokens of context: {:.2f} ms (median of {})", rows, n,
                 result.median_ms[rows], samples.size());
  }
  return result;
}

nlohmann::json VerifyBenchJson(const VerifyBenchResult& r, const VerifyBenchMeta& meta) {
  nlohmann::json j;
  j["mode"] = "verify";
  j["model"] = meta.model;
  j["model_name"] = meta.model_name;
  j["backend"] = meta.backend;
  j["threads"] = meta.threads;
  j["kv_dtype"] = meta.kv_dtype;
  j["context_tokens"] = r.context_tokens;
  j["prefill_seconds"] = r.prefill_seconds;
  j["prefill_tokens_per_second"] =
      r.prefill_seconds > 0 ? r.context_tokens / r.prefill_seconds : 0.0;
  nlohmann::json by_rows = nlohmann::json::object(), ratio = nlohmann::json::object(),
                 samples = nlohmann::json::object();
  const double one = r.median_ms.begin()->second;
  for (const auto& [rows, ms] : r.median_ms) {
    by_rows[std::to_string(rows)] = ms;
    ratio[std::to_string(rows)] = ms / one;
    samples[std::to_string(rows)] = r.samples_ms.at(rows);
  }
  j["verify_ms_by_rows"] = by_rows;
  j["ratio_to_fewest_rows"] = ratio;
  j["fewest_rows"] = r.median_ms.begin()->first;
  j["samples_ms_by_rows"] = samples;
  return j;
}

std::string VerifyBenchMarkdown(const VerifyBenchResult& r, const VerifyBenchMeta& meta) {
  std::ostringstream md;
  md << "# tokenswift bench --mode verify: " << meta.model_name << "\n\n"
     << "Backend " << meta.backend << ", KV " << meta.kv_dtype << ", " << r.context_tokens
     << " tokens of context (prefilled in " << absl::StrFormat("%.1f", r.prefill_seconds) << " s, "
     << absl::StrFormat("%.1f", r.context_tokens / r.prefill_seconds) << " tok/s).\n\n"
     << "| rows | verify ms (median) | x fewest rows | ms per row |\n|---|---|---|---|\n";
  const double one = r.median_ms.begin()->second;
  for (const auto& [rows, ms] : r.median_ms) {
    md << "| " << rows << " | " << absl::StrFormat("%.2f", ms) << " | "
       << absl::StrFormat("%.2f", ms / one) << " | " << absl::StrFormat("%.2f", ms / rows)
       << " |\n";
  }
  return md.str();
}

std::string VerifyBenchSvg(const VerifyBenchResult& r, const VerifyBenchMeta& meta) {
  LinePlot plot;
  plot.title = absl::StrFormat("verify pass: %s, %d tokens of context, KV %s", meta.model_name,
                               r.context_tokens, meta.kv_dtype);
  plot.x_label = "tree rows verified";
  plot.y_label = "ms per verify pass (median)";
  PlotSeries s;
  s.name = meta.backend;
  for (const auto& [rows, ms] : r.median_ms) {
    s.x.push_back(rows);
    s.y.push_back(ms);
  }
  plot.series.push_back(std::move(s));
  return RenderLinePlotSvg(plot);
}

}  // namespace ts::cli
