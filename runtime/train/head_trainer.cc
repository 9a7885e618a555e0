// Draft-head training loop: data rows, AdamW, the learning-rate schedule, epochs and metrics.
// See head_trainer.h for the choices and head_network.h for the math.
#include "runtime/train/head_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <tuple>

#include "kernels/cpu/dequant.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/train/dense_gemm.h"
#include "spdlog/spdlog.h"

namespace ts::train {
namespace {

// SplitMix64: the shuffle's generator (a fixed algorithm, so the order is the same with every
// standard library).
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Fisher-Yates shuffle of 0..n-1 seeded by (seed, epoch).
void ShuffledOrder(int64_t n, uint64_t seed, int epoch, std::vector<int64_t>& order) {
  order.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(SplitMix64(state) % static_cast<uint64_t>(i + 1));
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

  std::unique_ptr<HeadTrainer> t(new HeadTrainer(options, h, lm.rows));
  t->pool_ = std::make_unique<cpu::ThreadPool>(std::max(1, options.threads));
  std::vector<float> lm_f32(static_cast<size_t>(lm.rows * h));
  for (int64_t r = 0; r < lm.rows; ++r)
    DequantizeRow(lm.dtype, lm.Row(r), lm_f32.data() + r * h, h);
  t->net_ =
      std::make_unique<HeadNetwork<float>>(options.num_heads, h, lm.rows, std::move(lm_f32),
                                           config.rms_eps, options.batch_size, t->pool_.get());
  const int nh = options.num_heads;
  t->params_ = HeadParams<float>::Zeros(nh, h);
  for (int i = 0; i < nh; ++i) {
    std::copy(weights.final_norm, weights.final_norm + h, t->params_.in_w(i));
    std::copy(weights.final_norm, weights.final_norm + h, t->params_.post_w(i));
  }
  t->grad_ = HeadParams<float>::Zeros(nh, h);
  t->adam_m_ = HeadParams<float>::Zeros(nh, h);
  t->adam_v_ = HeadParams<float>::Zeros(nh, h);
  for (int i = 0; i < nh; ++i) t->head_weights_.push_back(std::pow(options.head_loss_decay, i));
  t->batch_hidden_.assign(static_cast<size_t>(options.batch_size * h), 0.0f);
  t->batch_targets_.assign(static_cast<size_t>(options.batch_size * nh), -1);
  spdlog::info("train-heads: {} heads, hidden {}, vocab {}, lm_head f32 {:.0f} MiB (x2), gemm {}",
               nh, h, lm.rows, t->lm_head_bytes() / 1048576.0, GemmTargetName());
  return t;
}

size_t HeadTrainer::lm_head_bytes() const {
  return static_cast<size_t>(vocab_ * hidden_) * sizeof(float);
}

int64_t HeadTrainer::StepsPerEpoch(int64_t rows) const {
  return (rows + options_.batch_size - 1) / options_.batch_size;
}

HeadMetrics HeadTrainer::Evaluate(const HeadDataset& data) {
  HeadBatchStats total;
  total.Reset(options_.num_heads);
  const int64_t rows = data.rows(), bs = options_.batch_size;
  for (int64_t r0 = 0; r0 < rows; r0 += bs) {
    const int64_t n = std::min(bs, rows - r0);
    total.Add(net_->LossAndGradient(params_, data.hidden.data() + r0 * hidden_,
                                    data.targets.data() + r0 * options_.num_heads, n, head_weights_,
                                    nullptr));
  }
  return MetricsOf(total, head_weights_);
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
  epoch_stats.Reset(nh);
  window.Reset(nh);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t r0 = 0; r0 < rows; r0 += bs) {
    const int64_t n = std::min(bs, rows - r0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t src = order_[r0 + k];
      std::copy(data.hidden.begin() + src * hidden_, data.hidden.begin() + (src + 1) * hidden_,
                batch_hidden_.begin() + k * hidden_);
      std::copy(data.targets.begin() + src * nh, data.targets.begin() + (src + 1) * nh,
                batch_targets_.begin() + k * nh);
    }
    const HeadBatchStats stats = net_->LossAndGradient(
        params_, batch_hidden_.data(), batch_targets_.data(), n, head_weights_, &grad_);
    epoch_stats.Add(stats);
    window.Add(stats);
    const double lr = CosineLearningRate(step_, total_steps, options_.warmup_steps, options_.lr,
                                         options_.min_lr_ratio);
    ++step_;
    AdamWUpdate(params_.linear, grad_.linear, adam_m_.linear, adam_v_.linear, step_, lr,
                options_.beta1, options_.beta2, options_.adam_eps, options_.weight_decay);
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
  return MetricsOf(epoch_stats, head_weights_);
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
  return tensors;
}

}  // namespace ts::train
