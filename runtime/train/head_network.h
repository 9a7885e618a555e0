// The TokenSwift draft heads as a trainable function: forward logits, cross-entropy loss and the
// exact gradient of every head parameter, in f32 (training) or f64 (gradient checks).
//
// Forward, per row (one position t of a sequence), h = the frozen model's final hidden state
// before its final norm, heads i = 0 .. H-1 chained exactly as runtime/decode/draft_heads.h:
//   x_0 = h
//   a_i = rmsnorm(x_i) * in_w_i                      (hidden)
//   x_{i+1} = x_i + W_i a_i (+ T e for i = 0)        W_i (hidden, hidden) [out, in]
//   p_i = rmsnorm(x_{i+1}) * post_w_i                (hidden)
//   z_i = L p_i                                      L = lm_head (vocab, hidden), frozen
// Token input (optional, ours): e = rmsnorm(embedding of token t + 1) without a weight, the token
// that the decoder has already sampled when the heads run, and T (hidden, hidden) [out, in] adds
// it to head 0's output; heads 1.. see it through the chain. Without T the heads are exactly
// TokenSwift's. With it, head 0 may also have a SiLU MLP over [a_0; e] (m hidden units), so the
// context and the token can interact:
//   u = [a_0; e] (2 hidden),  s = U u (m),  x_1 += D silu(s)      U (m, 2 hidden), D (hidden, m)
// Backward: dD += dx_1^T silu(s); ds = (D^T dx_1) * silu'(s); dU += ds^T u; [da_0; -] += U^T ds,
// with silu'(s) = sig(s) (1 + s (1 - sig(s))).
// Loss: head i at position t is trained against token t + 2 + i (target -1 = none, e.g. past
// the end of the sequence), optionally mixed with a soft target q (the base model's own
// distribution for that token, Hydra-style distillation) with weight alpha:
//   y_i = (1 - alpha) onehot(target_i) + alpha q_i       (y_i = onehot where q is not given)
//   loss = sum_i weight_i * mean over rows with a target of CE(z_i, y_i)
//
// Backward (rmsnorm: u = x r, r = (mean(x^2) + eps)^-1/2, so dx = r (du - u mean(du u))):
//   dz_i = weight_i / count_i * (softmax(z_i) - y_i)
//   dp_i = L^T dz_i                        (the big product, through a transposed copy of L)
//   d post_w_i += dp_i * rmsnorm(x_{i+1});  g_{i+1} = rmsnorm_backward(dp_i * post_w_i)
//   then from the last head down, dx = d loss / d x_{i+1} = g_{i+1} + (dx from head i+1):
//   dW_i += dx^T a_i;  (i = 0: dT += dx^T e);  da = W_i^T dx;  d in_w_i += da * rmsnorm(x_i);
//   dx (for x_i) = dx + rmsnorm_backward(da * in_w_i)
//
// Cost per row and head: 2 * vocab * hidden multiply-adds (forward logits, backward dp), about
// 57M for SmolLM2-135M (vocab 49152, hidden 576); everything else is O(hidden^2).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace ts::train {

// Parameters (or their gradients) of `num_heads` heads.
template <typename T>
struct HeadParams {
  int num_heads = 0;
  int64_t hidden = 0;
  std::vector<T> input_norm;    // (num_heads, hidden)
  std::vector<T> linear;        // (num_heads, hidden, hidden) [out, in]
  std::vector<T> post_norm;     // (num_heads, hidden)
  std::vector<T> token_linear;  // (hidden, hidden) [out, in] T, or empty: no token input
  int64_t mlp = 0;              // m: head 0's token MLP units (0 = none; needs the token input)
  std::vector<T> mlp_up;        // (mlp, 2 hidden) U
  std::vector<T> mlp_down;      // (hidden, mlp) D

  static HeadParams Zeros(int num_heads, int64_t hidden, bool token_input = false, int64_t mlp = 0);
  bool has_token_input() const { return !token_linear.empty(); }
  void SetZero();
  T* in_w(int i) { return input_norm.data() + i * hidden; }
  T* lin(int i) { return linear.data() + i * hidden * hidden; }
  T* post_w(int i) { return post_norm.data() + i * hidden; }
  const T* in_w(int i) const { return input_norm.data() + i * hidden; }
  const T* lin(int i) const { return linear.data() + i * hidden * hidden; }
  const T* post_w(int i) const { return post_norm.data() + i * hidden; }
};

// Per-head sums over a batch's rows that have a target.
struct HeadBatchStats {
  std::vector<double> loss_sum;  // (num_heads) sum of cross-entropies (nats)
  std::vector<int64_t> count;    // (num_heads) rows with a target
  std::vector<int64_t> top1;     // (num_heads) rows whose target has the highest logit
  std::vector<int64_t> top3;     // (num_heads) rows whose target is among the 3 highest
  double weighted_loss = 0;      // sum_i weight_i * loss_sum_i / count_i (the objective)

  void Reset(int num_heads);
  void Add(const HeadBatchStats& other);  // sums (weighted_loss included)
};

template <typename T>
class HeadNetwork {
 public:
  // lm_head: (vocab, hidden), copied (plus a transposed copy for the backward pass). Buffers are
  // sized for batches of up to max_rows rows; nothing is allocated per batch afterwards.
  // mlp: the largest token MLP (HeadParams::mlp) the network will be given.
  HeadNetwork(int num_heads, int64_t hidden, int64_t vocab, std::vector<T> lm_head, T eps,
              int64_t max_rows, cpu::ThreadPool* pool, int64_t mlp = 0);

  // logits (num_heads, n, vocab) of hidden (n, hidden). tokens: (n, hidden) rows e (normed
  // embeddings of the tokens after each row), required when params has a token input, else unused.
  void Logits(const HeadParams<T>& params, const T* hidden, const T* tokens, int64_t n, T* logits);

  // Loss statistics of hidden (n, hidden) against targets (n, num_heads) (-1 = no target) with
  // head weights `weights` (num_heads). When grad is not nullptr it receives the gradient of
  // stats.weighted_loss (overwritten, not accumulated). soft: nullptr, or (num_heads, n, vocab)
  // probabilities mixed in with weight soft_weight (a row whose first entry is negative has no
  // soft target). Top-1/top-3 always count against the hard target.
  HeadBatchStats LossAndGradient(const HeadParams<T>& params, const T* hidden, const T* tokens,
                                 const int32_t* targets, int64_t n, std::span<const double> weights,
                                 HeadParams<T>* grad, const T* soft = nullptr,
                                 T soft_weight = T(0));

  int num_heads() const { return num_heads_; }
  int64_t hidden() const { return hidden_; }
  int64_t vocab() const { return vocab_; }
  int64_t max_rows() const { return max_rows_; }

  // lm_head's rows (the vocabulary the heads predict over), (vocab, hidden).
  const std::vector<T>& lm_head() const { return lm_head_; }

 private:
  // Forward through the heads' residual blocks: fills xs_, a_, inv_in_.
  void ForwardStreams(const HeadParams<T>& params, const T* hidden, const T* tokens, int64_t n);
  // p_ (n, hidden) = rmsnorm(x_{i+1}) * post_w_i, inv_post_ (n) the 1/rms.
  void PostNorm(const HeadParams<T>& params, int i, int64_t n);
  // Per row of logits_ (head i): row_loss_ (cross-entropy), row_rank_ (logits above the
  // target's; -1 without a target) and, with `gradient`, logits_ replaced by
  // coef * (softmax - onehot(target)) (0 without a target).
  void CrossEntropyRows(int i, const int32_t* targets, int64_t n, T coef, bool gradient,
                        const T* soft, T soft_weight);
  // From d loss / d logits_ of head i: grad->post_w(i) and g_ for head i (d loss / d x_{i+1}).
  void PostNormBackward(const HeadParams<T>& params, int i, int64_t n, HeadParams<T>* grad);
  // From g_ of every head down the chain: grad->lin(i) and grad->in_w(i) for all heads (and
  // grad->token_linear).
  void ChainBackward(const HeadParams<T>& params, const T* tokens, int64_t n, HeadParams<T>* grad);
  // Head 0's token MLP, from dx_ = d loss / d x_1 (and dx_t_ its transpose): grad->mlp_up,
  // grad->mlp_down, and U^T ds's a_0 half added into da_.
  void MlpBackward(const HeadParams<T>& params, int64_t n, HeadParams<T>* grad);

  int num_heads_;
  int64_t hidden_, vocab_, max_rows_;
  T eps_;
  cpu::ThreadPool* pool_;
  std::vector<T> lm_head_;    // (vocab, hidden)
  std::vector<T> lm_head_t_;  // (hidden, vocab)
  // Scratch.
  std::vector<T> xs_;        // (num_heads + 1, max_rows, hidden) residual streams x_0 .. x_H
  std::vector<T> a_;         // (num_heads, max_rows, hidden) normed linear inputs a_i
  std::vector<T> inv_in_;    // (num_heads, max_rows) 1/rms of x_i
  std::vector<T> inv_post_;  // (max_rows) 1/rms of x_{i+1} for the current head
  std::vector<T> p_;         // (max_rows, hidden) post-normed stream
  std::vector<T> logits_;    // (max_rows, vocab) logits, then d loss / d logits
  std::vector<T> dp_;        // (max_rows, hidden)
  std::vector<T> g_;         // (num_heads, max_rows, hidden) d loss / d x_{i+1} via head i
  std::vector<T> dx_;        // (max_rows, hidden)
  std::vector<T> da_;        // (max_rows, hidden)
  std::vector<T> dx_t_;      // (hidden, max_rows) transposed dx
  std::vector<T> a_t_;       // (hidden, max_rows) transposed a_i
  std::vector<T> w_t_;       // (hidden, hidden) transposed W_i
  // Token MLP (mlp_ units).
  int64_t mlp_ = 0;
  std::vector<T> mlp_in_;          // (max_rows, 2 hidden) u
  std::vector<T> mlp_s_;           // (max_rows, mlp) pre-activations s
  std::vector<T> mlp_g_;           // (max_rows, mlp) silu(s), then d loss / d s
  std::vector<T> mlp_t_;           // (mlp, max_rows) transposed silu(s), then d loss / d s
  std::vector<T> mlp_ut_;          // (2 hidden, max_rows) transposed u
  std::vector<T> mlp_wt_;          // (2 hidden * mlp) a transposed U or D
  std::vector<T> mlp_du_;          // (max_rows, 2 hidden)
  std::vector<double> row_loss_;   // (max_rows)
  std::vector<int32_t> row_rank_;  // (max_rows) logits above the target's
};

extern template struct HeadParams<float>;
extern template struct HeadParams<double>;
extern template class HeadNetwork<float>;
extern template class HeadNetwork<double>;

}  // namespace ts::train
