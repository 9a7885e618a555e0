// The TokenSwift decoding flags shared by `generate` and `bench`: tree shape, n-gram branches,
// drafting kind and the planner's budget, parsed into TokenSwiftOptions.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "runtime/decode/tokenswift_decoder.h"

namespace ts::cli {

struct TokenSwiftFlags {
  std::string tree;     // "1,3,3,3": static tree; empty: sized by the planner
  int ngram_topk = 20;  // n-gram branches per step
  std::string drafting = "auto";
  int max_draft_nodes = 64;  // verify rows per step, root included
  int draft_nodes = 0;       // fixed rows per speculative step; 0: the planner's choice
  bool no_ar_fallback = false;
  int64_t draft_kv_budget = 4096;  // partial KV cache of the separate draft pass
};

void AddTokenSwiftOptions(CLI::App* app, TokenSwiftFlags* flags);
// BadInput naming the flag for a malformed value.
StatusOr<TokenSwiftOptions> ParseTokenSwiftFlags(const TokenSwiftFlags& flags);

}  // namespace ts::cli
