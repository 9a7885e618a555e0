// Draft-head training loop: data rows, AdamW, the learning-rate schedule, epochs and metrics.
// See head_trainer.h for the choices and head_network.h for the math.
#include "runtime/train/head_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <tuple>

#include "common/hash_random.h"
#include "kernels/cpu/dense_gemm.h"
#include "kernels/cpu/dequant.h"
#include "runtime/decode/draft_heads.h"
#include "spdlog/spdlog.h"

namespace ts::train {
namespace {

// Fisher-Yates shuffle of 0..n-1 seeded by (seed, epoch).
void ShuffledOrder(int64_t n, uint64_t seed, int epoch, std::vector<int64_t>& order) {
  order.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(SplitMix64Next(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
}

}  // namespace

void HeadDataset::AppendSequence(std::span<const int32_t> seq, const float* hidden_states,
                                 int64_t first) {
  const int64_t len = static_cast<int64_t>(seq.size());
  for (int64_t t = std::max<int64_t>(first, 0); t + 2 < len; ++t) {
    hidden.insert(hidden.end(), hidden_states + t * hidden_size,
                  hidden_states + (t + 1) * hidden_size);
    ahead.push_back(static_cast<int32_t>(std::min<int64_t>(num_heads, len - 3 - t)));
    next_token.push_back(seq[t + 1]);
    for (int i = 0; i < num_heads; ++i) {
      const int64_t target = t + 2 + i;
      targets.push_back(target < len ? seq[target] : -1);
    }
  }
  tokens += len;
}

double CosineLearningRate(int64_t step, int64_t total_steps, int64_t warmup_steps, double lr,
                          double min_lr_ratio) {
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / warmup_steps;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps - 1);
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine);
}

void AdamWUpdate(std::span<float> param, std::span<const float> grad, std::span<float> m,
                 std::span<float> v, int64_t step, double lr, double beta1, double beta2,
                 double eps, double weight_decay) {
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const double step_size = lr / bias1;
  const double sqrt_bias2 = std::sqrt(bias2);
  const double decay = 1.0 - lr * weight_decay;
  for (size_t j = 0; j < param.size(); ++j) {
    const double g = grad[j];
    const double mj = beta1 * m[j] + (1.0 - beta1) * g;
    const double vj = beta2 * v[j] + (1.0 - beta2) * g * g;
    m[j] = static_cast<float>(mj);
    v[j] = static_cast<float>(vj);
    const double p = param[j] * decay;
    param[j] = static_cast<float>(p - step_size * mj / (std::sqrt(vj) / sqrt_bias2 + eps));
  }
}

HeadMetrics MetricsOf(const HeadBatchStats& stats, std::span<const double> weights) {
  HeadMetrics m;
  const size_t heads = stats.loss_sum.size();
  m.loss.assign(heads, 0.0);
  m.top1.assign(heads, 0.0);
  m.top3.assign(heads, 0.0);
  for (size_t i = 0; i < heads; ++i) {
    const double c = static_cast<double>(stats.count[i]);
    if (c == 0) continue;
    m.loss[i] = stats.loss_sum[i] / c;
    m.top1[i] = stats.top1[i] / c;
    m.top3[i] = stats.top3[i] / c;
    m.objective += weights[i] * m.loss[i];
  }
  m.rows = heads > 0 ? stats.count[0] : 0;
  return m;
}

HeadTrainer::HeadTrainer(const HeadTrainerOptions& options, int64_t hidden, int64_t vocab)
    : options_(options), hidden_(hidden), vocab_(vocab) {}

StatusOr<std::unique_ptr<HeadTrainer>> HeadTrainer::Create(const ModelConfig& config,
                                                           const ModelWeights& weights,
                                                           const HeadTrainerOptions& options) {
  const int64_t h = config.hidden_size;
  const Matrix& lm = weights.lm_head;
  if (options.num_heads < 1) return BadInput("train-heads: number of heads must be >= 1");
  if (options.batch_size < 1) return BadInput("--batch-size: expected at least 1");
  if (options.epochs < 1) return BadInput("--epochs: expected at least 1");
  if (!(options.lr > 0) || !std::isfinite(options.lr)) {
    return BadInput("--lr: expected a positive learning rate, got ", options.lr);
  }
  if (options.warmup_steps < 0) return BadInput("--warmup: expected at least 0");
  if (!(options.weight_decay >= 0) || !std::isfinite(options.weight_decay)) {
    return BadInput("--weight-decay: expected a value >= 0, got ", options.weight_decay);
  }
  if (lm.data == nullptr || lm.cols != h || lm.rows < 1) {
    return BadInput("train-heads: the model's lm_head is not (vocab, hidden_size ", h, ")");
  }
  if (weights.final_norm == nullptr) return BadInput("train-heads: the model has no final norm");

  const std::vector<int32_t>& dv = options.draft_vocab;
  for (size_t j = 0; j < dv.size(); ++j) {
    if (dv[j] < 0 || dv[j] >= lm.rows || (j > 0 && dv[j] <= dv[j - 1])) {
      return BadInput("--draft-vocab: ids must ascend within [0, ", lm.rows, ")");
    }
  }
  if (!(options.soft_weight >= 0 && options.soft_weight <= 1)) {
    return BadInput("--soft-targets: expected a weight in [0, 1], got ", options.soft_weight);
  }
  const int64_t k = dv.empty() ? lm.rows : static_cast<int64_t>(dv.size());
  std::unique_ptr<HeadTrainer> t(new HeadTrainer(options, h, k));
  t->pool_ = std::make_unique<cpu::ThreadPool>(std::max(1, options.threads));
  t->full_vocab_ = lm.rows;
  t->eps_ = config.rms_eps;
  t->final_norm_.assign(weights.final_norm, weights.final_norm + h);
  t->full_lm_.resize(static_cast<size_t>(lm.rows * h));
  for (int64_t r = 0; r < lm.rows; ++r)
    DequantizeRow(lm.dtype, lm.Row(r), t->full_lm_.data() + r * h, h);
  t->vocab_map_.assign(static_cast<size_t>(lm.rows), -1);
  std::vector<float> lm_f32(static_cast<size_t>(k * h));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t id = dv.empty() ? j : dv[j];
    t->vocab_map_[id] = static_cast<int32_t>(j);
    std::copy(t->full_lm_.begin() + id * h, t->full_lm_.begin() + (id + 1) * h,
              lm_f32.begin() + j * h);
  }
  t->net_ = std::make_unique<HeadNetwork<float>>(options.num_heads, h, k, std::move(lm_f32),
                                                 config.rms_eps, options.batch_size, t->pool_.get(),
                                                 options.token_mlp);
  if (options.soft_weight > 0) {
    t->soft_.assign(static_cast<size_t>(options.num_heads * options.batch_size * k), 0.0f);
    t->teacher_in_.assign(static_cast<size_t>(options.batch_size * h), 0.0f);
    t->teacher_logits_.assign(static_cast<size_t>(options.batch_size * k), 0.0f);
  }
  t->rows_idx_.resize(static_cast<size_t>(options.batch_size));
  const int nh = options.num_heads;
  const bool tok = options.token_input;
  if (options.token_mlp < 0 || (options.token_mlp > 0 && !tok)) {
    return BadInput("--token-mlp: expected 0, or a positive size together with --token-input");
  }
  if (tok) {
    if (weights.embed.cols != h || weights.embed.rows < lm.rows) {
      return BadInput("train-heads: the model's token embeddings are not (vocab, hidden_size ", h,
                      ")");
    }
    t->embed_ = weights.embed;
    t->tokens_in_.assign(static_cast<size_t>(options.batch_size * h), 0.0f);
  }
  const int64_t mlp = options.token_mlp;
  t->params_ = HeadParams<float>::Zeros(nh, h, tok, mlp);
  for (int i = 0; i < nh; ++i) {
    std::copy(weights.final_norm, weights.final_norm + h, t->params_.in_w(i));
    std::copy(weights.final_norm, weights.final_norm + h, t->params_.post_w(i));
  }
  if (mlp > 0) {  // U Gaussian (Box-Muller on the shuffle's generator), D zero
    uint64_t state = options.seed ^ 0x6d6c7075ull;
    const double std_dev = 1.0 / std::sqrt(2.0 * static_cast<double>(h));
    for (float& w : t->params_.mlp_up) {
      const double u1 = (static_cast<double>(SplitMix64Next(state) >> 11) + 1.0) * 0x1.0p-53;
      const double u2 = static_cast<double>(SplitMix64Next(state) >> 11) * 0x1.0p-53;
      w = static_cast<float>(std_dev * std::sqrt(-2.0 * std::log(u1)) *
                             std::cos(2.0 * std::numbers::pi * u2));
    }
  }
  t->grad_ = HeadParams<float>::Zeros(nh, h, tok, mlp);
  t->adam_m_ = HeadParams<float>::Zeros(nh, h, tok, mlp);
  t->adam_v_ = HeadParams<float>::Zeros(nh, h, tok, mlp);
  for (int i = 0; i < nh; ++i) t->head_weights_.push_back(std::pow(options.head_loss_decay, i));
  t->batch_hidden_.assign(static_cast<size_t>(options.batch_size * h), 0.0f);
  t->batch_targets_.assign(static_cast<size_t>(options.batch_size * nh), -1);
  spdlog::info(
      "train-heads: {} heads, hidden {}, draft vocabulary {} of {}, lm_head f32 {:.0f} MiB (x2), "
      "soft-target weight {}, token input {} (MLP {}), gemm {}",
      nh, h, k, lm.rows, t->lm_head_bytes() / 1048576.0, options.soft_weight, tok ? "on" : "off",
      mlp, cpu::DenseGemmTargetName());
  return t;
}

size_t HeadTrainer::lm_head_bytes() const {
  return static_cast<size_t>(vocab_ * hidden_) * sizeof(float);
}

int64_t HeadTrainer::StepsPerEpoch(int64_t rows) const {
  return (rows + options_.batch_size - 1) / options_.batch_size;
}

void HeadTrainer::GatherTargets(const HeadDataset& data, const int64_t* rows, int64_t n,
                                std::vector<int64_t>& covered, std::vector<int64_t>& total) {
  const int nh = options_.num_heads;
  for (int64_t k = 0; k < n; ++k) {
    for (int i = 0; i < nh; ++i) {
      const int32_t t = data.targets[rows[k] * nh + i];
      int32_t mapped = -1;
      if (t >= 0) {
        ++total[i];
        mapped = t < full_vocab_ ? vocab_map_[t] : -1;
        if (mapped >= 0) ++covered[i];
      }
      batch_targets_[k * nh + i] = mapped;
    }
  }
}

void HeadTrainer::FinalNorm(const float* x, float* out) const {
  const int64_t h = hidden_;
  double ss = 0;
  for (int64_t c = 0; c < h; ++c) ss += static_cast<double>(x[c]) * x[c];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(h) + eps_));
  for (int64_t c = 0; c < h; ++c) out[c] = x[c] * inv * final_norm_[c];
}

const float* HeadTrainer::TokenRows(const HeadDataset& data, const int64_t* rows, int64_t n) {
  if (!params_.has_token_input()) return nullptr;
  const int64_t h = hidden_;
  std::vector<float>& raw = teacher_in_row_;
  raw.resize(static_cast<size_t>(h));
  for (int64_t r = 0; r < n; ++r) {
    const int32_t id = data.next_token[rows[r]];
    float* dst = tokens_in_.data() + r * h;
    if (id < 0 || id >= embed_.rows) {
      std::fill(dst, dst + h, 0.0f);
      continue;
    }
    DequantizeRow(embed_.dtype, embed_.Row(id), raw.data(), h);
    double ss = 0;
    for (int64_t c = 0; c < h; ++c) ss += static_cast<double>(raw[c]) * raw[c];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(h) + eps_));
    for (int64_t c = 0; c < h; ++c) dst[c] = raw[c] * inv;
  }
  return tokens_in_.data();
}

void HeadTrainer::TeacherDistribution(const float* logits, int64_t v, float* probs) const {
  float zmax = logits[0];
  for (int64_t j = 1; j < v; ++j) zmax = std::max(zmax, logits[j]);
  // min-p: keep p_j >= min_p * p_max, i.e. z_j >= zmax + log(min_p).
  const float cut =
      options_.teacher_min_p > 0 ? zmax + std::log(options_.teacher_min_p) : -INFINITY;
  double sum = 0;
  for (int64_t j = 0; j < v; ++j) {
    const float e = logits[j] >= cut ? std::exp(logits[j] - zmax) : 0.0f;
    probs[j] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < v; ++j) probs[j] *= inv;
}

void HeadTrainer::TeacherTargets(const HeadDataset& data, const int64_t* rows, int64_t n) {
  const int nh = options_.num_heads;
  const int64_t h = hidden_, k = vocab_;
  for (int i = 0; i < nh; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      float* dst = teacher_in_.data() + r * h;
      if (data.ahead[rows[r]] < 1 + i) {
        std::fill(dst, dst + h, 0.0f);
        continue;
      }
      FinalNorm(data.hidden.data() + (rows[r] + 1 + i) * h, dst);
    }
    cpu::DenseGemmNT(pool_.get(), n, k, h, teacher_in_.data(), h, net_->lm_head().data(), h,
                     teacher_logits_.data(), k, false);
    auto row_task = [&](int64_t r, int /*thread*/) {
      float* q = soft_.data() + (i * n + r) * k;
      if (data.ahead[rows[r]] < 1 + i) {
        q[0] = -1.0f;
        return;
      }
      TeacherDistribution(teacher_logits_.data() + r * k, k, q);
    };
    pool_->ParallelFor(n, row_task);
  }
}

HeadMetrics HeadTrainer::Evaluate(const HeadDataset& data) {
  const int nh = options_.num_heads;
  HeadBatchStats total;
  total.Reset(nh);
  std::vector<int64_t> covered(nh, 0), all(nh, 0);
  const int64_t rows = data.rows(), bs = options_.batch_size;
  for (int64_t r0 = 0; r0 < rows; r0 += bs) {
    const int64_t n = std::min(bs, rows - r0);
    for (int64_t k = 0; k < n; ++k) rows_idx_[k] = r0 + k;
    GatherTargets(data, rows_idx_.data(), n, covered, all);
    const float* tokens = TokenRows(data, rows_idx_.data(), n);
    total.Add(net_->LossAndGradient(params_, data.hidden.data() + r0 * hidden_, tokens,
                                    batch_targets_.data(), n, head_weights_, nullptr));
  }
  HeadMetrics m = MetricsOf(total, head_weights_);
  m.coverage.resize(nh);
  for (int i = 0; i < nh; ++i) m.coverage[i] = all[i] > 0 ? double(covered[i]) / all[i] : 0.0;
  return m;
}

ModelAgreement HeadTrainer::AgreementWithModel(const HeadDataset& data) {
  const int nh = options_.num_heads;
  const int64_t h = hidden_, k = vocab_, v = full_vocab_, bs = options_.batch_size;
  ModelAgreement out;
  out.top1_sampled.assign(nh, 0.0);
  out.top1_argmax.assign(nh, 0.0);
  out.acceptance.assign(nh, 0.0);
  out.rows.assign(nh, 0);
  std::vector<float> head_logits(static_cast<size_t>(nh * bs * k));
  std::vector<float> normed(static_cast<size_t>(bs * h)), model_logits(static_cast<size_t>(bs * v));
  std::vector<std::vector<float>> p(options_.threads + 1, std::vector<float>(k)),
      q(options_.threads + 1, std::vector<float>(v));
  std::vector<double> sampled(bs), argmax(bs), accept(bs);
  std::vector<uint8_t> valid(bs);
  const int64_t rows = data.rows();
  for (int64_t r0 = 0; r0 < rows; r0 += bs) {
    const int64_t n = std::min(bs, rows - r0);
    for (int64_t j = 0; j < n; ++j) rows_idx_[j] = r0 + j;
    const float* tokens = TokenRows(data, rows_idx_.data(), n);
    net_->Logits(params_, data.hidden.data() + r0 * h, tokens, n, head_logits.data());
    for (int i = 0; i < nh; ++i) {
      for (int64_t r = 0; r < n; ++r) {
        float* dst = normed.data() + r * h;
        valid[r] = data.ahead[r0 + r] >= 1 + i && data.targets[(r0 + r) * nh + i] >= 0;
        if (!valid[r]) {
          std::fill(dst, dst + h, 0.0f);
          continue;
        }
        FinalNorm(data.hidden.data() + (r0 + r + 1 + i) * h, dst);
      }
      cpu::DenseGemmNT(pool_.get(), n, v, h, normed.data(), h, full_lm_.data(), h,
                       model_logits.data(), v, false);
      auto row_task = [&](int64_t r, int thread) {
        if (!valid[r]) return;
        const float* z = head_logits.data() + (i * n + r) * k;
        float* pr = p[thread].data();
        float* qr = q[thread].data();
        int64_t best = 0;
        float zmax = z[0];
        for (int64_t j = 1; j < k; ++j) {
          if (z[j] > zmax) zmax = z[j], best = j;
        }
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += pr[j] = std::exp(z[j] - zmax);
        for (int64_t j = 0; j < k; ++j) pr[j] = static_cast<float>(pr[j] / sum);
        const float* mz = model_logits.data() + r * v;
        TeacherDistribution(mz, v, qr);
        const int64_t model_best = std::max_element(mz, mz + v) - mz;
        const int64_t head_id = options_.draft_vocab.empty() ? best : options_.draft_vocab[best];
        sampled[r] = head_id == data.targets[(r0 + r) * nh + i] ? 1.0 : 0.0;
        argmax[r] = head_id == model_best ? 1.0 : 0.0;
        // 1 - TV = sum_j min(p_j, q_j) (p is zero outside the draft vocabulary).
        double overlap = 0;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t id = options_.draft_vocab.empty() ? j : options_.draft_vocab[j];
          overlap += std::min(pr[j], qr[id]);
        }
        accept[r] = overlap;
      };
      pool_->ParallelFor(n, row_task);
      for (int64_t r = 0; r < n; ++r) {
        if (!valid[r]) continue;
        out.top1_sampled[i] += sampled[r];
        out.top1_argmax[i] += argmax[r];
        out.acceptance[i] += accept[r];
        ++out.rows[i];
      }
    }
  }
  for (int i = 0; i < nh; ++i) {
    const double c = std::max<int64_t>(out.rows[i], 1);
    out.top1_sampled[i] /= c;
    out.top1_argmax[i] /= c;
    out.acceptance[i] /= c;
  }
  return out;
}

StatusOr<HeadMetrics> HeadTrainer::TrainEpoch(const HeadDataset& data, int epoch,
                                              int64_t total_steps) {
  const int nh = options_.num_heads;
  if (data.num_heads != nh || data.hidden_size != hidden_) {
    return BadInput("train-heads: dataset has ", data.num_heads, " heads x hidden ",
                    data.hidden_size, ", trainer ", nh, " x ", hidden_);
  }
  const int64_t rows = data.rows(), bs = options_.batch_size;
  if (rows == 0) return BadInput("train-heads: no training rows");
  ShuffledOrder(rows, options_.seed, epoch, order_);
  HeadBatchStats epoch_stats, window;
  std::vector<int64_t> covered(nh, 0), all(nh, 0);
  epoch_stats.Reset(nh);
  window.Reset(nh);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t r0 = 0; r0 < rows; r0 += bs) {
    const int64_t n = std::min(bs, rows - r0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t src = order_[r0 + k];
      rows_idx_[k] = src;
      std::copy(data.hidden.begin() + src * hidden_, data.hidden.begin() + (src + 1) * hidden_,
                batch_hidden_.begin() + k * hidden_);
    }
    GatherTargets(data, rows_idx_.data(), n, covered, all);
    const bool soft = options_.soft_weight > 0;
    if (soft) TeacherTargets(data, rows_idx_.data(), n);
    const float* tokens = TokenRows(data, rows_idx_.data(), n);
    const HeadBatchStats stats = net_->LossAndGradient(
        params_, batch_hidden_.data(), tokens, batch_targets_.data(), n, head_weights_, &grad_,
        soft ? soft_.data() : nullptr, static_cast<float>(options_.soft_weight));
    epoch_stats.Add(stats);
    window.Add(stats);
    const double lr = CosineLearningRate(step_, total_steps, options_.warmup_steps, options_.lr,
                                         options_.min_lr_ratio);
    ++step_;
    AdamWUpdate(params_.linear, grad_.linear, adam_m_.linear, adam_v_.linear, step_, lr,
                options_.beta1, options_.beta2, options_.adam_eps, options_.weight_decay);
    for (auto [p, g, m, v] :
         {std::tuple{&params_.token_linear, &grad_.token_linear, &adam_m_.token_linear,
                     &adam_v_.token_linear},
          std::tuple{&params_.mlp_up, &grad_.mlp_up, &adam_m_.mlp_up, &adam_v_.mlp_up},
          std::tuple{&params_.mlp_down, &grad_.mlp_down, &adam_m_.mlp_down, &adam_v_.mlp_down}}) {
      if (p->empty()) continue;
      AdamWUpdate(*p, *g, *m, *v, step_, lr, options_.beta1, options_.beta2, options_.adam_eps,
                  options_.weight_decay);
    }
    for (auto [p, g, m, v] : {std::tuple{&params_.input_norm, &grad_.input_norm,
                                         &adam_m_.input_norm, &adam_v_.input_norm},
                              std::tuple{&params_.post_norm, &grad_.post_norm, &adam_m_.post_norm,
                                         &adam_v_.post_norm}}) {
      AdamWUpdate(*p, *g, *m, *v, step_, lr, options_.beta1, options_.beta2, options_.adam_eps,
                  options_.weight_decay_norms);
    }
    if (step_ % 50 == 0 || r0 + n >= rows) {
      const HeadMetrics w = MetricsOf(window, head_weights_);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      spdlog::info(
          "train-heads: epoch {} step {}/{} lr {:.2e} loss {:.3f} (heads {:.3f} {:.3f} {:.3f}) "
          "top1 {:.3f} {:.3f} {:.3f} | {:.0f} rows/s",
          epoch + 1, step_, total_steps, lr, w.objective, w.loss[0], nh > 1 ? w.loss[1] : 0.0,
          nh > 2 ? w.loss[2] : 0.0, w.top1[0], nh > 1 ? w.top1[1] : 0.0, nh > 2 ? w.top1[2] : 0.0,
          secs > 0 ? (r0 + n) / secs : 0.0);
      window.Reset(nh);
    }
  }
  HeadMetrics m = MetricsOf(epoch_stats, head_weights_);
  m.coverage.resize(nh);
  for (int i = 0; i < nh; ++i) m.coverage[i] = all[i] > 0 ? double(covered[i]) / all[i] : 0.0;
  return m;
}

std::vector<SafetensorsTensor> HeadTrainer::Tensors(DType dtype) const {
  std::vector<SafetensorsTensor> tensors;
  const int64_t h = hidden_;
  for (int i = 0; i < options_.num_heads; ++i) {
    auto add = [&](const char* part, const float* data, std::vector<int64_t> shape, int64_t count) {
      tensors.push_back(SafetensorsTensor{DraftHeadTensorName(i, part), dtype, std::move(shape),
                                          EncodeFloats(std::span(data, count), dtype)});
    };
    add("input_layernorm", params_.in_w(i), {h}, h);
    add("linear", params_.lin(i), {h, h}, h * h);
    add("post_layernorm", params_.post_w(i), {h}, h);
  }
  auto add_named = [&](std::string_view name, const std::vector<float>& data,
                       std::vector<int64_t> shape) {
    if (data.empty()) return;
    tensors.push_back(SafetensorsTensor{std::string(name), dtype, std::move(shape),
                                        EncodeFloats(std::span<const float>(data), dtype)});
  };
  const int64_t m = params_.mlp;
  add_named(kDraftTokenLinearName, params_.token_linear, {h, h});
  add_named(kDraftTokenMlpUpName, params_.mlp_up, {m, 2 * h});
  add_named(kDraftTokenMlpDownName, params_.mlp_down, {h, m});
  return tensors;
}

}  // namespace ts::train
