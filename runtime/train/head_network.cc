// Forward and backward of the draft heads; the math is written out in head_network.h.
#include "runtime/train/head_network.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "kernels/cpu/dense_gemm.h"

namespace ts::train {
namespace {

// 1 / sqrt(mean(x^2) + eps) over `dim` values, the sum in double.
template <typename T>
T InvRms(const T* x, int64_t dim, T eps) {
  double ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += static_cast<double>(x[c]) * x[c];
  return static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
}

// Backward of u = x * inv (inv = 1/rms(x)) for one row: dx += inv * (du - u * mean(du * u)),
// u recomputed from x.
template <typename T>
void RmsNormBackwardAdd(const T* x, T inv, const T* du, int64_t dim, T* dx) {
  double dot = 0;
  for (int64_t c = 0; c < dim; ++c) dot += static_cast<double>(du[c]) * (x[c] * inv);
  const T mean = static_cast<T>(dot / static_cast<double>(dim));
  for (int64_t c = 0; c < dim; ++c) dx[c] += inv * (du[c] - (x[c] * inv) * mean);
}

template <typename T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// dst (cols, ld_dst) = src (rows, cols)^T, for the first `rows` columns of dst.
template <typename T>
void Transpose(const T* src, int64_t rows, int64_t cols, T* dst, int64_t ld_dst) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[c * ld_dst + r] = src[r * cols + c];
  }
}

}  // namespace

template <typename T>
HeadParams<T> HeadParams<T>::Zeros(int num_heads, int64_t hidden, bool token_input, int64_t mlp) {
  HeadParams p;
  p.num_heads = num_heads;
  p.hidden = hidden;
  p.input_norm.assign(static_cast<size_t>(num_heads * hidden), T(0));
  p.linear.assign(static_cast<size_t>(num_heads * hidden * hidden), T(0));
  p.post_norm.assign(static_cast<size_t>(num_heads * hidden), T(0));
  if (token_input) p.token_linear.assign(static_cast<size_t>(hidden * hidden), T(0));
  if (token_input && mlp > 0) {
    p.mlp = mlp;
    p.mlp_up.assign(static_cast<size_t>(mlp * 2 * hidden), T(0));
    p.mlp_down.assign(static_cast<size_t>(hidden * mlp), T(0));
  }
  return p;
}

template <typename T>
void HeadParams<T>::SetZero() {
  std::fill(input_norm.begin(), input_norm.end(), T(0));
  std::fill(linear.begin(), linear.end(), T(0));
  std::fill(post_norm.begin(), post_norm.end(), T(0));
  std::fill(token_linear.begin(), token_linear.end(), T(0));
  std::fill(mlp_up.begin(), mlp_up.end(), T(0));
  std::fill(mlp_down.begin(), mlp_down.end(), T(0));
}

void HeadBatchStats::Reset(int num_heads) {
  loss_sum.assign(num_heads, 0.0);
  count.assign(num_heads, 0);
  top1.assign(num_heads, 0);
  top3.assign(num_heads, 0);
  weighted_loss = 0;
}

void HeadBatchStats::Add(const HeadBatchStats& other) {
  if (loss_sum.empty()) Reset(static_cast<int>(other.loss_sum.size()));
  for (size_t i = 0; i < other.loss_sum.size(); ++i) {
    loss_sum[i] += other.loss_sum[i];
    count[i] += other.count[i];
    top1[i] += other.top1[i];
    top3[i] += other.top3[i];
  }
  weighted_loss += other.weighted_loss;
}

template <typename T>
HeadNetwork<T>::HeadNetwork(int num_heads, int64_t hidden, int64_t vocab, std::vector<T> lm_head,
                            T eps, int64_t max_rows, cpu::ThreadPool* pool, int64_t mlp)
    : num_heads_(num_heads),
      hidden_(hidden),
      vocab_(vocab),
      max_rows_(max_rows),
      eps_(eps),
      pool_(pool),
      lm_head_(std::move(lm_head)) {
  const size_t h = static_cast<size_t>(hidden), rows = static_cast<size_t>(max_rows);
  lm_head_t_.resize(lm_head_.size());
  Transpose(lm_head_.data(), vocab, hidden, lm_head_t_.data(), vocab);
  xs_.assign((num_heads + 1) * rows * h, T(0));
  a_.assign(num_heads * rows * h, T(0));
  inv_in_.assign(num_heads * rows, T(0));
  inv_post_.assign(rows, T(0));
  p_.assign(rows * h, T(0));
  logits_.assign(rows * static_cast<size_t>(vocab), T(0));
  dp_.assign(rows * h, T(0));
  g_.assign(num_heads * rows * h, T(0));
  dx_.assign(rows * h, T(0));
  da_.assign(rows * h, T(0));
  dx_t_.assign(h * rows, T(0));
  a_t_.assign(h * rows, T(0));
  w_t_.assign(h * h, T(0));
  row_loss_.assign(rows, 0.0);
  row_rank_.assign(rows, 0);
  mlp_ = mlp;
  if (mlp > 0) {
    const size_t m = static_cast<size_t>(mlp);
    mlp_in_.assign(rows * 2 * h, T(0));
    mlp_s_.assign(rows * m, T(0));
    mlp_g_.assign(rows * m, T(0));
    mlp_t_.assign(m * rows, T(0));
    mlp_ut_.assign(2 * h * rows, T(0));
    mlp_wt_.assign(2 * h * m, T(0));
    mlp_du_.assign(rows * 2 * h, T(0));
  }
}

template <typename T>
void HeadNetwork<T>::ForwardStreams(const HeadParams<T>& params, const T* hidden, const T* tokens,
                                    int64_t n) {
  const int64_t h = hidden_;
  std::copy(hidden, hidden + n * h, xs_.begin());
  for (int i = 0; i < num_heads_; ++i) {
    const T* x = xs_.data() + i * max_rows_ * h;
    T* x_next = xs_.data() + (i + 1) * max_rows_ * h;
    T* a = a_.data() + i * max_rows_ * h;
    const T* w = params.in_w(i);
    for (int64_t r = 0; r < n; ++r) {
      const T inv = InvRms(x + r * h, h, eps_);
      inv_in_[i * max_rows_ + r] = inv;
      for (int64_t c = 0; c < h; ++c) a[r * h + c] = x[r * h + c] * inv * w[c];
    }
    cpu::DenseGemmNT(pool_, n, h, h, a, h, params.lin(i), h, x_next, h, /*accumulate=*/false);
    if (i == 0 && params.has_token_input()) {
      cpu::DenseGemmNT(pool_, n, h, h, tokens, h, params.token_linear.data(), h, x_next, h,
                       /*accumulate=*/true);
    }
    if (i == 0 && params.mlp > 0) {  // x_1 += D silu(U [a_0; e])
      const int64_t m = params.mlp;
      for (int64_t r = 0; r < n; ++r) {
        std::copy(a + r * h, a + (r + 1) * h, mlp_in_.begin() + r * 2 * h);
        std::copy(tokens + r * h, tokens + (r + 1) * h, mlp_in_.begin() + r * 2 * h + h);
      }
      cpu::DenseGemmNT(pool_, n, m, 2 * h, mlp_in_.data(), 2 * h, params.mlp_up.data(), 2 * h,
                       mlp_s_.data(), m, /*accumulate=*/false);
      for (int64_t e = 0; e < n * m; ++e) mlp_g_[e] = mlp_s_[e] * Sigmoid(mlp_s_[e]);
      cpu::DenseGemmNT(pool_, n, h, m, mlp_g_.data(), m, params.mlp_down.data(), m, x_next, h,
                       /*accumulate=*/true);
    }
    for (int64_t e = 0; e < n * h; ++e) x_next[e] += x[e];
  }
}

template <typename T>
void HeadNetwork<T>::PostNorm(const HeadParams<T>& params, int i, int64_t n) {
  const int64_t h = hidden_;
  const T* x = xs_.data() + (i + 1) * max_rows_ * h;
  const T* w = params.post_w(i);
  for (int64_t r = 0; r < n; ++r) {
    const T inv = InvRms(x + r * h, h, eps_);
    inv_post_[r] = inv;
    for (int64_t c = 0; c < h; ++c) p_[r * h + c] = x[r * h + c] * inv * w[c];
  }
}

template <typename T>
void HeadNetwork<T>::Logits(const HeadParams<T>& params, const T* hidden, const T* tokens,
                            int64_t n, T* logits) {
  ForwardStreams(params, hidden, tokens, n);
  for (int i = 0; i < num_heads_; ++i) {
    PostNorm(params, i, n);
    cpu::DenseGemmNT(pool_, n, vocab_, hidden_, p_.data(), hidden_, lm_head_.data(), hidden_,
                     logits + i * n * vocab_, vocab_, /*accumulate=*/false);
  }
}

template <typename T>
void HeadNetwork<T>::CrossEntropyRows(int i, const int32_t* targets, int64_t n, T coef,
                                      bool gradient, const T* soft, T soft_weight) {
  const int64_t v = vocab_;
  auto row_task = [&](int64_t r, int /*thread*/) {
    T* z = logits_.data() + r * v;
    const int32_t t = targets[r * num_heads_ + i];
    if (t < 0) {
      row_loss_[r] = 0;
      row_rank_[r] = -1;
      if (gradient) std::fill(z, z + v, T(0));
      return;
    }
    const T* q = soft != nullptr ? soft + (i * n + r) * v : nullptr;
    if (q != nullptr && !(q[0] >= T(0))) q = nullptr;
    const T alpha = q != nullptr ? soft_weight : T(0);
    T zmax = z[0];
    for (int64_t j = 1; j < v; ++j) zmax = std::max(zmax, z[j]);
    double sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += std::exp(z[j] - zmax);
    const double lse = static_cast<double>(zmax) + std::log(sum);
    // CE(z, y) = lse - sum_j y_j z_j.
    double yz = (1.0 - static_cast<double>(alpha)) * static_cast<double>(z[t]);
    if (alpha > T(0)) {
      double qz = 0;
      for (int64_t j = 0; j < v; ++j) qz += static_cast<double>(q[j]) * static_cast<double>(z[j]);
      yz += static_cast<double>(alpha) * qz;
    }
    row_loss_[r] = lse - yz;
    int32_t rank = 0;
    for (int64_t j = 0; j < v; ++j) rank += z[j] > z[t] ? 1 : 0;
    row_rank_[r] = rank;
    if (gradient) {
      const T lse_t = static_cast<T>(lse);
      for (int64_t j = 0; j < v; ++j) z[j] = coef * std::exp(z[j] - lse_t);
      z[t] -= coef * (T(1) - alpha);
      if (alpha > T(0)) {
        for (int64_t j = 0; j < v; ++j) z[j] -= coef * alpha * q[j];
      }
    }
  };
  if (pool_ != nullptr) {
    pool_->ParallelFor(n, row_task);
  } else {
    for (int64_t r = 0; r < n; ++r) row_task(r, 0);
  }
}

template <typename T>
void HeadNetwork<T>::PostNormBackward(const HeadParams<T>& params, int i, int64_t n,
                                      HeadParams<T>* grad) {
  const int64_t h = hidden_, v = vocab_;
  cpu::DenseGemmNT(pool_, n, h, v, logits_.data(), v, lm_head_t_.data(), v, dp_.data(), h, false);
  const T* x = xs_.data() + (i + 1) * max_rows_ * h;
  const T* w = params.post_w(i);
  T* gw = grad->post_w(i);
  T* g = g_.data() + i * max_rows_ * h;
  T* dv = da_.data();  // (h) row scratch
  for (int64_t r = 0; r < n; ++r) {
    const T inv = inv_post_[r];
    for (int64_t c = 0; c < h; ++c) {
      gw[c] += dp_[r * h + c] * (x[r * h + c] * inv);
      dv[c] = dp_[r * h + c] * w[c];
    }
    RmsNormBackwardAdd(x + r * h, inv, dv, h, g + r * h);
  }
}

template <typename T>
void HeadNetwork<T>::ChainBackward(const HeadParams<T>& params, const T* tokens, int64_t n,
                                   HeadParams<T>* grad) {
  const int64_t h = hidden_;
  // dx_ = d loss / d x_{i+1}: head i's own term g_i plus what flows back from head i+1.
  std::fill(dx_.begin(), dx_.begin() + n * h, T(0));
  for (int i = num_heads_ - 1; i >= 0; --i) {
    const T* g = g_.data() + i * max_rows_ * h;
    for (int64_t e = 0; e < n * h; ++e) dx_[e] += g[e];
    const T* a = a_.data() + i * max_rows_ * h;
    // dW_i (h, h) += dx^T a: C[r][c] = sum over rows of dx[row][r] * a[row][c].
    Transpose(dx_.data(), n, h, dx_t_.data(), max_rows_);
    Transpose(a, n, h, a_t_.data(), max_rows_);
    cpu::DenseGemmNT(pool_, h, h, n, dx_t_.data(), max_rows_, a_t_.data(), max_rows_, grad->lin(i),
                     h,
                     /*accumulate=*/true);
    if (i == 0 && params.has_token_input()) {  // dT += dx^T e
      Transpose(tokens, n, h, a_t_.data(), max_rows_);
      cpu::DenseGemmNT(pool_, h, h, n, dx_t_.data(), max_rows_, a_t_.data(), max_rows_,
                       grad->token_linear.data(), h, /*accumulate=*/true);
    }
    // da (n, h) = dx W_i, through W_i^T.
    Transpose(params.lin(i), h, h, w_t_.data(), h);
    cpu::DenseGemmNT(pool_, n, h, h, dx_.data(), h, w_t_.data(), h, da_.data(), h, false);
    if (i == 0 && params.mlp > 0) MlpBackward(params, n, grad);
    const T* x = xs_.data() + i * max_rows_ * h;
    const T* w = params.in_w(i);
    T* gw = grad->in_w(i);
    T* du = dp_.data();  // (h) row scratch
    for (int64_t r = 0; r < n; ++r) {
      const T inv = inv_in_[i * max_rows_ + r];
      for (int64_t c = 0; c < h; ++c) {
        gw[c] += da_[r * h + c] * (x[r * h + c] * inv);
        du[c] = da_[r * h + c] * w[c];
      }
      // x_i = x_{i-1} + ...: the residual passes dx on unchanged, the norm adds its part.
      if (i > 0) RmsNormBackwardAdd(x + r * h, inv, du, h, dx_.data() + r * h);
    }
  }
}

template <typename T>
void HeadNetwork<T>::MlpBackward(const HeadParams<T>& params, int64_t n, HeadParams<T>* grad) {
  const int64_t h = hidden_, m = params.mlp;
  // dD (h, m) += dx^T silu(s): dx_t_ already holds dx transposed.
  Transpose(mlp_g_.data(), n, m, mlp_t_.data(), max_rows_);
  cpu::DenseGemmNT(pool_, h, m, n, dx_t_.data(), max_rows_, mlp_t_.data(), max_rows_,
                   grad->mlp_down.data(), m, /*accumulate=*/true);
  // ds (n, m) = (dx D) * silu'(s), through D^T (m, h); written over silu(s).
  Transpose(params.mlp_down.data(), h, m, mlp_wt_.data(), h);
  cpu::DenseGemmNT(pool_, n, m, h, dx_.data(), h, mlp_wt_.data(), h, mlp_g_.data(), m, false);
  for (int64_t e = 0; e < n * m; ++e) {
    const T sig = Sigmoid(mlp_s_[e]);
    mlp_g_[e] *= sig * (T(1) + mlp_s_[e] * (T(1) - sig));
  }
  // dU (m, 2h) += ds^T u.
  Transpose(mlp_g_.data(), n, m, mlp_t_.data(), max_rows_);
  Transpose(mlp_in_.data(), n, 2 * h, mlp_ut_.data(), max_rows_);
  cpu::DenseGemmNT(pool_, m, 2 * h, n, mlp_t_.data(), max_rows_, mlp_ut_.data(), max_rows_,
                   grad->mlp_up.data(), 2 * h, /*accumulate=*/true);
  // du (n, 2h) = ds U, through U^T (2h, m); its first half flows into da_0.
  Transpose(params.mlp_up.data(), m, 2 * h, mlp_wt_.data(), m);
  cpu::DenseGemmNT(pool_, n, 2 * h, m, mlp_g_.data(), m, mlp_wt_.data(), m, mlp_du_.data(), 2 * h,
                   false);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < h; ++c) da_[r * h + c] += mlp_du_[r * 2 * h + c];
  }
}

template <typename T>
HeadBatchStats HeadNetwork<T>::LossAndGradient(const HeadParams<T>& params, const T* hidden,
                                               const T* tokens, const int32_t* targets, int64_t n,
                                               std::span<const double> weights, HeadParams<T>* grad,
                                               const T* soft, T soft_weight) {
  const int64_t h = hidden_, v = vocab_;
  HeadBatchStats stats;
  stats.Reset(num_heads_);
  ForwardStreams(params, hidden, tokens, n);
  if (grad != nullptr) grad->SetZero();
  for (int i = 0; i < num_heads_; ++i) {
    PostNorm(params, i, n);
    cpu::DenseGemmNT(pool_, n, v, h, p_.data(), h, lm_head_.data(), h, logits_.data(), v, false);
    int64_t count = 0;
    for (int64_t r = 0; r < n; ++r) count += targets[r * num_heads_ + i] >= 0 ? 1 : 0;
    const T coef = count > 0 ? static_cast<T>(weights[i] / static_cast<double>(count)) : T(0);
    CrossEntropyRows(i, targets, n, coef, grad != nullptr, soft, soft_weight);
    for (int64_t r = 0; r < n; ++r) {
      if (row_rank_[r] < 0) continue;
      stats.loss_sum[i] += row_loss_[r];
      stats.count[i] += 1;
      stats.top1[i] += row_rank_[r] < 1 ? 1 : 0;
      stats.top3[i] += row_rank_[r] < 3 ? 1 : 0;
    }
    if (count > 0) stats.weighted_loss += weights[i] * stats.loss_sum[i] / count;
    if (grad == nullptr) continue;
    T* g = g_.data() + i * max_rows_ * h;
    std::fill(g, g + n * h, T(0));
    if (count > 0) PostNormBackward(params, i, n, grad);
  }
  if (grad != nullptr) ChainBackward(params, tokens, n, grad);
  return stats;
}

template struct HeadParams<float>;
template struct HeadParams<double>;
template class HeadNetwork<float>;
template class HeadNetwork<double>;

}  // namespace ts::train
