#include "runtime/engine/tree_exactness.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"

namespace ts {

StatusOr<TreeExactnessReport> CheckTreeVerifyEqualsAr(const ModelConfig& config,
                                                      const ModelWeights& weights, Backend& backend,
                                                      std::span<const int32_t> prefix,
                                                      const TreeExactnessOptions& options) {
  const int n = options.nodes;
  const int64_t p = static_cast<int64_t>(prefix.size());
  if (n < 1 || p < 1) return BadInput("tree exactness: need a prefix and at least one node");
  const int64_t vocab = config.vocab_size;

  // A random tree in topological order: node i's parent is one of the few nodes made before it.
  std::mt19937_64 rng(options.seed);
  std::vector<int32_t> tokens(n), parents(n, -1), depths(n, 0);
  for (int i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
    if (i > 0) {
      const int lo = std::max(0, i - options.max_branching);
      parents[i] = lo + static_cast<int>(rng() % static_cast<uint64_t>(i - lo));
      depths[i] = depths[parents[i]] + 1;
    }
  }
  // Rope positions, slots past the prefix, and the mask: the prefix plus the ancestors' slots.
  std::vector<int32_t> positions(n), slots(n), prefix_len(n, static_cast<int32_t>(p));
  std::vector<int32_t> extra_begin(n + 1, 0), extra_slots;
  std::vector<std::vector<int32_t>> paths(n);  // node ids from the root down to the node
  for (int i = 0; i < n; ++i) {
    positions[i] = static_cast<int32_t>(p + depths[i]);
    slots[i] = static_cast<int32_t>(p + i);
    for (int a = i; a >= 0; a = parents[a]) paths[i].push_back(a);
    std::reverse(paths[i].begin(), paths[i].end());
    for (const int32_t a : paths[i]) extra_slots.push_back(static_cast<int32_t>(p + a));
    extra_begin[i + 1] = static_cast<int32_t>(extra_slots.size());
  }
  const int depth = *std::max_element(depths.begin(), depths.end());

  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, p + n, options.kv_dtype, &backend));
  Transformer model(config, weights, &backend, std::max<int64_t>(n, 256));
  TS_RETURN_IF_ERROR(model.ForwardCausal(prefix, 0, p, *cache, nullptr));

  std::vector<int32_t> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = i;
  std::vector<float> tree_logits(static_cast<size_t>(n) * vocab);
  ForwardBatch tree;
  tree.tokens = tokens;
  tree.positions = positions;
  tree.slots = slots;
  tree.mask = {prefix_len.data(), extra_begin.data(), extra_slots.data()};
  tree.logits_rows = rows;
  TS_RETURN_IF_ERROR(model.Forward(tree, *cache, tree_logits.data()));

  // AR: node i's path fed one token at a time at slot = position, from where the path in the
  // cache (the last node's) diverges; the logits of its last token are node i's.
  TreeExactnessReport report;
  report.nodes = n;
  report.depth = depth;
  std::vector<int32_t> in_cache;  // the path whose K/V the slots past the prefix hold
  std::vector<float> ar_logits(vocab);
  for (int i = 0; i < n; ++i) {
    const std::vector<int32_t>& path = paths[i];
    size_t common = 0;
    while (common < path.size() && common < in_cache.size() && in_cache[common] == path[common]) {
      ++common;
    }
    if (common == path.size()) common = path.size() - 1;  // its logits are needed again
    for (size_t d = common; d < path.size(); ++d) {
      const int32_t token = tokens[path[d]];
      const int32_t pos = static_cast<int32_t>(p + static_cast<int64_t>(d));
      const int32_t len = pos + 1;
      const int32_t last = 0;
      ForwardBatch one;
      one.tokens = std::span<const int32_t>(&token, 1);
      one.positions = std::span<const int32_t>(&pos, 1);
      one.slots = one.positions;
      one.mask.prefix_len = &len;
      if (d + 1 == path.size()) one.logits_rows = std::span<const int32_t>(&last, 1);
      TS_RETURN_IF_ERROR(
          model.Forward(one, *cache, d + 1 == path.size() ? ar_logits.data() : nullptr));
      ++report.ar_forwards;
    }
    in_cache = path;
    const float* t = tree_logits.data() + static_cast<size_t>(i) * vocab;
    if (std::memcmp(t, ar_logits.data(), vocab * sizeof(float)) == 0) continue;
    ++report.mismatched;
    for (int64_t v = 0; v < vocab; ++v) {
      if (std::bit_cast<uint32_t>(t[v]) == std::bit_cast<uint32_t>(ar_logits[v])) continue;
      const float diff = std::fabs(t[v] - ar_logits[v]);
      report.max_abs_diff = std::max(report.max_abs_diff, std::isnan(diff) ? INFINITY : diff);
      if (report.first_mismatch.empty()) {
        report.first_mismatch = absl::StrCat("node ", i, " (depth ", depths[i], "): logit ", v,
                                             ": tree ", t[v], ", AR ", ar_logits[v]);
      }
    }
  }
  return report;
}

}  // namespace ts
