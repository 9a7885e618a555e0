// `tokenswift train-heads`: trains the 3 TokenSwift draft heads (runtime/decode/draft_heads.h)
// on top of a frozen model.
//
// Data: one training row per position t of a token sequence, holding the frozen model's final
// hidden state at t (before the final norm, computed once and kept in memory as f32:
// rows * hidden * 4 bytes, 69 MB for 30K SmolLM2 positions) and the targets t+2+i of heads
// i = 0, 1, 2 (head 0 predicts the token after next; -1 past the end of the sequence).
//
// Objective: sum_i 0.8^i * mean cross-entropy of head i (Medusa's decaying head weights: later
// heads are harder and matter less, since a draft token is only useful when the ones before it
// were accepted). The weight decay factor is HeadTrainerOptions::head_loss_decay.
//
// Initialisation (Medusa's): linear = 0 and both norms = the model's final norm weight, so every
// head starts as the model's own next-token distribution lm_head(final_norm(h)).
//
// Optimiser: AdamW exactly as PyTorch's torch.optim.AdamW (decoupled weight decay
// p -= lr * wd * p, then p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)),
// on f32 master weights; weight decay on the linear weights only by default (norm weights keep
// weight_decay_norms = 0). Learning rate: linear warm-up over `warmup_steps` steps
// (lr * (step + 1) / warmup), then cosine decay to min_lr_ratio * lr at the last step.
// Minibatches of `batch_size` rows, shuffled each epoch with a generator seeded from
// (seed, epoch), so a run is reproducible.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors_writer.h"
#include "runtime/model/weights.h"
#include "runtime/train/head_network.h"

namespace ts::train {

// Training rows (see the file comment).
struct HeadDataset {
  int num_heads = 0;
  int64_t hidden_size = 0;
  std::vector<float> hidden;        // (rows, hidden_size)
  std::vector<int32_t> targets;     // (rows, num_heads), -1 = no target
  std::vector<int32_t> ahead;       // (rows) following rows of the same sequence, at most num_heads
  std::vector<int32_t> next_token;  // (rows) token t + 1 (the heads' token input)
  int64_t tokens = 0;               // tokens of the sequences the rows came from

  int64_t rows() const {
    return num_heads > 0 ? static_cast<int64_t>(targets.size()) / num_heads : 0;
  }
  size_t bytes() const {
    return hidden.size() * sizeof(float) +
           (targets.size() + ahead.size() + next_token.size()) * sizeof(int32_t);
  }
  // Appends rows for positions [first, tokens.size() - 2) of one sequence, whose hidden states
  // (tokens.size(), hidden_size) are given for every position.
  void AppendSequence(std::span<const int32_t> seq, const float* hidden_states, int64_t first);
};

struct HeadTrainerOptions {
  int num_heads = 3;
  int64_t batch_size = 64;  // rows per optimiser step
  int epochs = 3;
  // Peak learning rate. Higher than Medusa's 1e-3 because the heads read the hidden state BEFORE
  // the final norm: the residual x + W a only turns the head's distribution once W a is
  // comparable to x, which is large (mean rms 37 on SmolLM2-135M, where a is O(1)). SmolLM2-135M
  // on 1.9K tokens of text, batch 32: held-out objective 23.9 at the start, after 54 steps 21.6
  // with lr 1e-3, 16.8 with 1e-2, 16.2 with 3e-2, 16.0 with 1e-1.
  double lr = 2e-2;
  int64_t warmup_steps = 50;
  double min_lr_ratio = 0.0;  // final learning rate / lr
  double weight_decay = 0.0;  // linear weights
  double weight_decay_norms = 0.0;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double head_loss_decay = 0.8;  // head i's loss weight is head_loss_decay^i
  uint64_t seed = 0;
  int threads = 1;
  // Draft vocabulary (DraftHeads' "tokenswift.draft_vocab"): ascending ids the heads predict
  // over; empty = the whole vocabulary. Targets outside it have no loss and count as misses.
  std::vector<int32_t> draft_vocab;
  // Weight of the soft target: the base model's own distribution for the head's token (its
  // logits from the hidden state one row before the target, over the draft vocabulary, at
  // temperature 1 with min-p teacher_min_p; no repetition penalty). 0 = hard targets only.
  double soft_weight = 0.0;
  float teacher_min_p = 0.1f;
  // Token input (head_network.h): the heads also read the token after their row (the one the
  // decoder has sampled when the heads run), through one more (hidden, hidden) linear that
  // starts at zero. Weight decay as the linear weights.
  bool token_input = false;
  // Units of head 0's token MLP (head_network.h; 0 = none). Needs token_input. U starts
  // Gaussian with std 1/sqrt(2 hidden), D at zero, so the heads start as without it.
  int64_t token_mlp = 0;
};

// Learning rate of step `step` (0-based) of `total_steps`: linear warm-up then cosine decay.
double CosineLearningRate(int64_t step, int64_t total_steps, int64_t warmup_steps, double lr,
                          double min_lr_ratio);

// One AdamW update of `param` with `grad` (PyTorch's torch.optim.AdamW). m and v are the moment
// estimates (same size, zero at the start); step is 1-based.
void AdamWUpdate(std::span<float> param, std::span<const float> grad, std::span<float> m,
                 std::span<float> v, int64_t step, double lr, double beta1, double beta2,
                 double eps, double weight_decay);

// Aggregate metrics over a dataset (or an epoch of training batches).
struct HeadMetrics {
  std::vector<double> loss;  // (num_heads) mean cross-entropy per head
  std::vector<double> top1;  // (num_heads) accuracy
  std::vector<double> top3;
  double objective = 0;  // sum_i weight_i * loss_i
  int64_t rows = 0;
  // Share of targets inside the draft vocabulary (1 without one): top1/top3 are over those, so
  // top-1 over all rows is top1 * coverage.
  std::vector<double> coverage;
};

// The heads against the base model on held-out rows (rows whose target token has its model
// distribution in the data, i.e. not the last rows of a sequence), per head:
struct ModelAgreement {
  std::vector<double> top1_sampled;  // head's argmax == the sampled token (all rows)
  std::vector<double> top1_argmax;   // head's argmax == the model's argmax for that token
  std::vector<double> acceptance;    // 1 - TV(head softmax, model at T 1 with min-p)
  std::vector<int64_t> rows;
};
HeadMetrics MetricsOf(const HeadBatchStats& stats, std::span<const double> weights);

class HeadTrainer {
 public:
  // Dequantises the model's lm_head to f32 (vocab * hidden * 4 bytes twice: it and its
  // transpose) and initialises the heads (see the file comment).
  static StatusOr<std::unique_ptr<HeadTrainer>> Create(const ModelConfig& config,
                                                       const ModelWeights& weights,
                                                       const HeadTrainerOptions& options);

  // Metrics of the current heads on `data` (forward only).
  HeadMetrics Evaluate(const HeadDataset& data);
  // The current heads against the model's own distributions (see ModelAgreement).
  ModelAgreement AgreementWithModel(const HeadDataset& data);
  // One epoch over `data` in shuffled minibatches; `total_steps` (over all epochs) drives the
  // learning-rate schedule. Returns the epoch's training metrics (accumulated over its batches,
  // each measured before its update).
  StatusOr<HeadMetrics> TrainEpoch(const HeadDataset& data, int epoch, int64_t total_steps);
  // Steps per epoch for a dataset of `rows` rows.
  int64_t StepsPerEpoch(int64_t rows) const;

  // The heads as safetensors tensors (names of DraftHeadTensorName), f32, f16 or bf16.
  std::vector<SafetensorsTensor> Tensors(DType dtype) const;

  HeadParams<float>& params() { return params_; }
  std::span<const double> head_weights() const { return head_weights_; }
  int64_t step() const { return step_; }
  size_t lm_head_bytes() const;

 private:
  HeadTrainer(const HeadTrainerOptions& options, int64_t hidden, int64_t vocab);
  // batch_targets_ <- rows' targets mapped into the draft vocabulary (-1 outside it); returns
  // how many targets there were and how many were inside, per head (added to covered/total).
  void GatherTargets(const HeadDataset& data, const int64_t* rows, int64_t n,
                     std::vector<int64_t>& covered, std::vector<int64_t>& total);
  // soft_ (num_heads, n, K) <- the model's distribution for each row's head targets, or -1 in a
  // row's first entry when the sequence ends before it.
  void TeacherTargets(const HeadDataset& data, const int64_t* rows, int64_t n);
  // out (hidden) <- the model's final rmsnorm of a hidden state x (the lm_head's input).
  void FinalNorm(const float* x, float* out) const;
  // tokens_in_ (n, hidden) <- rmsnorm(embedding of rows' next tokens), no weight; nullptr
  // returned without a token input.
  const float* TokenRows(const HeadDataset& data, const int64_t* rows, int64_t n);
  // probs (vocab) <- softmax(logits) at temperature 1 with min-p.
  void TeacherDistribution(const float* logits, int64_t v, float* probs) const;

  HeadTrainerOptions options_;
  int64_t hidden_, vocab_;  // vocab_: the draft vocabulary's size
  int64_t full_vocab_ = 0;
  std::vector<int32_t> vocab_map_;  // (full vocab) draft-vocabulary index, -1 outside
  std::vector<float> final_norm_;   // (hidden)
  float eps_ = 1e-6f;
  std::vector<float> full_lm_;         // (full vocab, hidden): the model's head, for agreement
  std::vector<float> soft_;            // (num_heads, batch_size, vocab_)
  std::vector<float> teacher_in_;      // (batch_size, hidden)
  std::vector<float> teacher_logits_;  // (batch_size, vocab_)
  std::vector<int64_t> rows_idx_;      // (batch_size) dataset rows of a batch
  Matrix embed_;                       // the model's token embeddings (token input)
  std::vector<float> tokens_in_;       // (batch_size, hidden) normed embeddings
  std::vector<float> teacher_in_row_;  // (hidden) one dequantised embedding row
  std::unique_ptr<cpu::ThreadPool> pool_;
  std::unique_ptr<HeadNetwork<float>> net_;
  HeadParams<float> params_, grad_, adam_m_, adam_v_;
  std::vector<double> head_weights_;  // (num_heads)
  int64_t step_ = 0;                  // optimiser steps taken
  // Minibatch gather buffers.
  std::vector<float> batch_hidden_;     // (batch_size, hidden)
  std::vector<int32_t> batch_targets_;  // (batch_size, num_heads)
  std::vector<int64_t> order_;          // (rows) shuffled row order
};

}  // namespace ts::train
