#include "launch/tokenswift_flags.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_split.h"

namespace ts::cli {

void AddTokenSwiftOptions(CLI::App* app, TokenSwiftFlags* flags) {
  app->add_option("--tree", flags->tree,
                  "static draft tree, e.g. 1,3,3,3 (top-k per depth); default: sized each step "
                  "by the planner");
  app->add_option("--ngram-topk", flags->ngram_topk, "n-gram branches per step (0 = none)")
      ->capture_default_str();
  app->add_option("--drafting", flags->drafting,
                  "auto, fused (heads on the verified hidden state) or separate (a draft pass)")
      ->capture_default_str();
  app->add_option("--max-draft-nodes", flags->max_draft_nodes,
                  "largest tree verified per step, root included")
      ->capture_default_str();
  app->add_option("--draft-nodes", flags->draft_nodes,
                  "verify exactly this many rows per speculative step (0 = planner)")
      ->capture_default_str();
  app->add_option("--draft-kv-budget", flags->draft_kv_budget,
                  "positions the separate draft pass attends to (partial KV cache)")
      ->capture_default_str();
  app->add_flag("--no-ar-fallback", flags->no_ar_fallback,
                "always speculate, even when plain AR steps are measured faster");
}

StatusOr<TokenSwiftOptions> ParseTokenSwiftFlags(const TokenSwiftFlags& flags) {
  TokenSwiftOptions o;
  if (flags.max_draft_nodes < 1 || flags.max_draft_nodes > 256) {
    return BadInput("--max-draft-nodes: expected 1..256, got ", flags.max_draft_nodes);
  }
  o.tree.max_nodes = flags.max_draft_nodes;
  if (flags.ngram_topk < 0 || flags.ngram_topk > 64) {
    return BadInput("--ngram-topk: expected 0..64, got ", flags.ngram_topk);
  }
  o.ngram_topk = flags.ngram_topk;
  if (flags.drafting == "auto") {
    o.drafting = DraftingMode::kAuto;
  } else if (flags.drafting == "fused") {
    o.drafting = DraftingMode::kFused;
  } else if (flags.drafting == "separate") {
    o.drafting = DraftingMode::kSeparate;
  } else {
    return BadInput("--drafting: expected auto, fused or separate, got '", flags.drafting, "'");
  }
  if (flags.draft_nodes < 0 || flags.draft_nodes > flags.max_draft_nodes) {
    return BadInput("--draft-nodes: expected 0..", flags.max_draft_nodes,
                    " (--max-draft-nodes), got ", flags.draft_nodes);
  }
  o.fixed_nodes = flags.draft_nodes;
  o.ar_fallback = !flags.no_ar_fallback;
  if (flags.draft_kv_budget < 64) {
    return BadInput("--draft-kv-budget: expected at least 64, got ", flags.draft_kv_budget);
  }
  o.partial.budget = flags.draft_kv_budget;
  if (!flags.tree.empty()) {
    o.static_tree = true;
    o.tree.static_shape.clear();
    for (absl::string_view part : absl::StrSplit(flags.tree, ',')) {
      char* end = nullptr;
      const std::string s(part);
      const long w = std::strtol(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0' || w < 1 || w > 16) {
        return BadInput("--tree: expected comma-separated widths 1..16 (e.g. 1,3,3,3), got '",
                        flags.tree, "'");
      }
      o.tree.static_shape.push_back(static_cast<int>(w));
    }
    if (o.tree.static_shape.size() > 4) {
      return BadInput("--tree: at most 4 levels (the model's head + 3 draft heads), got ",
                      o.tree.static_shape.size());
    }
  }
  return o;
}

}  // namespace ts::cli
