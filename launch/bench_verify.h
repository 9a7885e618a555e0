// `tokenswift bench --mode verify`: the cost of one TokenSwift verify pass against the number of
// tree rows, at a given context length (DESIGN.md 5 and 7: a verify of T rows should cost little
// more than one row, because every row reads the same KV blocks).
//
// Method. The KV cache is filled by a causal prefill of the N prompt ids (timed: prefill tok/s is
// reported too), then for each row count R a tree of R rows is verified over that prefix: the
// root at position N plus R - 1 nodes in a ternary tree (node i under node (i - 1) / 3, depth <= 4
// at 64 rows), the shape the decoder's calibration and its steps verify. One pass is one Forward
// with the tree mask writing K/V to slots N .. N + R - 1 and logits for every row. Each R is run
// `reps` times after one untimed pass; the median is reported, with every sample in the JSON.
//
// Output: JSON with "context_tokens": N, "verify_ms_by_rows": {"1": ms, ...}, "ratio_to_one_row",
// the samples, prefill figures, backend and SIMD target; a Markdown table; an SVG of ms against
// rows.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/model.h"
#include "runtime/kv/kv_cache.h"

namespace ts::cli {

struct VerifyBenchOptions {
  std::vector<int> rows = {1, 2, 4, 8, 16, 32, 64};  // ascending, each in [1, 1024]
  int reps = 5;                                      // timed passes per row count
  int64_t prefill_chunk = 256;                       // tokens per prefill forward
  DType kv_dtype = DType::kBF16;                     // the CLI default
};

struct VerifyBenchResult {
  int64_t context_tokens = 0;
  double prefill_seconds = 0;
  std::map<int, std::vector<double>> samples_ms;  // rows -> every timed pass, in run order
  std::map<int, double> median_ms;                // rows -> median of samples_ms
};

// "1,2,4" -> {1, 2, 4}: strictly ascending, each in [1, 1024]; BadInput naming --rows otherwise.
StatusOr<std::vector<int>> ParseRows(const std::string& text);

// Prefills `prompt` into a fresh cache and times verify passes (see the file comment).
StatusOr<VerifyBenchResult> RunVerifyBench(const Model& model, Backend* backend,
                                           std::span<const int32_t> prompt,
                                           const VerifyBenchOptions& options);

// Median of a non-empty sample (the mean of the middle two for an even count).
double Median(std::vector<double> values);

struct VerifyBenchMeta {
  std::string model;
  std::string model_name;
  std::string backend;
  int threads = 0;
  std::string kv_dtype;
};
nlohmann::json VerifyBenchJson(const VerifyBenchResult& r, const VerifyBenchMeta& meta);
std::string VerifyBenchMarkdown(const VerifyBenchResult& r, const VerifyBenchMeta& meta);
std::string VerifyBenchSvg(const VerifyBenchResult& r, const VerifyBenchMeta& meta);

}  // namespace ts::cli
