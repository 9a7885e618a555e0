// The property that makes TokenSwift lossless, checked on any backend: verifying a token tree in
// one forward pass gives every node the very logits (bit for bit) that autoregressive decoding of
// that node's path gives, one token per forward pass. CPU tests run it on the CPU backend; the
// GPU check (tests/gpu) runs it on CUDA with a Llama-8B-shaped model.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "kernels/backend.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"

namespace ts {

struct TreeExactnessOptions {
  int nodes = 64;         // tree rows, root included
  int max_branching = 4;  // a node's parent is one of the 4 nodes made just before it
  uint64_t seed = 1;      // tokens and tree shape
  DType kv_dtype = DType::kBF16;
};

struct TreeExactnessReport {
  int nodes = 0;
  int depth = 0;        // deepest node
  int ar_forwards = 0;  // single-token passes the reference took
  int mismatched = 0;   // nodes whose logits differ in any bit
  float max_abs_diff = 0;
  std::string first_mismatch;  // "node N (depth D): logit V: tree X, AR Y", empty when none
};

// Prefills `prefix` (backend memory for weights: see PlacedWeights), verifies one random tree of
// options.nodes tokens over it, then decodes each node's path token by token and compares.
StatusOr<TreeExactnessReport> CheckTreeVerifyEqualsAr(const ModelConfig& config,
                                                      const ModelWeights& weights, Backend& backend,
                                                      std::span<const int32_t> prefix,
                                                      const TreeExactnessOptions& options);

}  // namespace ts
