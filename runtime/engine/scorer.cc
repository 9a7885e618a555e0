#include "runtime/engine/scorer.h"

#include <algorithm>
#include <cmath>

namespace ts {
namespace {

// log softmax(row)[target], in double.
double LogProb(const float* row, int64_t vocab, int32_t target) {
  double max = row[0];
  for (int64_t j = 1; j < vocab; ++j) max = std::max(max, static_cast<double>(row[j]));
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j]) - max);
  return static_cast<double>(row[target]) - max - std::log(sum);
}

}  // namespace

StatusOr<ScoreResult> ScoreTokens(Transformer& model, KvCache& cache,
                                  std::span<const int32_t> tokens, int64_t window) {
  if (tokens.size() < 2) return BadInput("--text-file: expected at least 2 tokens to score");
  if (window < 2 || window > cache.capacity()) {
    return BadInput("--ctx-size: expected a window of 2..", cache.capacity(), " tokens");
  }
  const int64_t vocab = model.config().vocab_size;
  const int64_t chunk = model.max_batch();
  std::vector<float> logits(chunk * vocab);  // (chunk, vocab)
  std::vector<int32_t> positions(chunk), prefix_len(chunk), rows(chunk);
  ScoreResult result;
  const int64_t total = static_cast<int64_t>(tokens.size());
  for (int64_t w0 = 0; w0 < total; w0 += window) {
    const int64_t w1 = std::min(total, w0 + window);
    for (int64_t c0 = w0; c0 < w1; c0 += chunk) {
      const int64_t n = std::min(chunk, w1 - c0);
      for (int64_t i = 0; i < n; ++i) {
        positions[i] = static_cast<int32_t>(c0 - w0 + i);
        prefix_len[i] = positions[i] + 1;
        rows[i] = static_cast<int32_t>(i);
      }
      ForwardBatch batch;
      batch.tokens = tokens.subspan(c0, n);
      batch.positions = std::span<const int32_t>(positions.data(), n);
      batch.slots = batch.positions;
      batch.mask.prefix_len = prefix_len.data();
      batch.logits_rows = std::span<const int32_t>(rows.data(), n);
      TS_RETURN_IF_ERROR(model.Forward(batch, cache, logits.data()));
      // Row i predicts token c0 + i + 1, if that token is in this window.
      for (int64_t i = 0; i < n && c0 + i + 1 < w1; ++i) {
        const int32_t target = tokens[c0 + i + 1];
        result.scored_ids.push_back(target);
        result.logprobs.push_back(LogProb(logits.data() + i * vocab, vocab, target));
      }
    }
  }
  if (result.logprobs.empty()) return BadInput("--text-file: nothing to score");
  double sum = 0;
  for (double lp : result.logprobs) sum += lp;
  result.mean_logprob = sum / static_cast<double>(result.logprobs.size());
  result.perplexity = std::exp(-result.mean_logprob);
  return result;
}

}  // namespace ts
