// PartialDrafter (the draft pass over the partial KV cache) against independent references:
//   - budget >= context: the draft equals Transformer::Forward over the full cache, bit for bit;
//   - small budget: the hidden state, logits and captured queries equal a straightforward
//     double-precision llama forward (written here from the weights, default rope) whose last
//     token attends to exactly the positions the selection chose per (layer, KV head), and the
//     selection equals a brute-force top-k of q.k importance with the captured queries;
//   - Update appends recent positions, re-selects when full, and always keeps the sinks and the
//     recent window; the partial cache's rows are the full cache's rows, bit for bit.
// A disabled test times the draft pass on SmolLM2 at ~8K context (run it with
// --gtest_also_run_disabled_tests --gtest_filter='*Timing*').
#include "runtime/decode/partial_drafter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/engine/model.h"
#include "runtime/model/test_model.h"
#include "tests/common/default_model.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

// A tiny test model written to a temp directory and loaded, with a CPU backend.
class TinyModel {
 public:
  explicit TinyModel(const std::string& preset_name) {
    dir_ = fs::temp_directory_path() /
           ("ts_partial_drafter_" + preset_name + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    auto preset = FindTestModelPreset(preset_name);
    if (!preset.ok()) {
      ADD_FAILURE() << preset.status();
      return;
    }
    if (Status st = WriteTestModel(*preset, DType::kF32, dir_.string()); !st.ok()) {
      ADD_FAILURE() << st;
      return;
    }
    auto model = LoadModel(dir_.string(), /*require_tokenizer=*/false);
    if (!model.ok()) {
      ADD_FAILURE() << model.status();
      return;
    }
    model_ = std::make_unique<Model>(std::move(*model));
    backend_ = MakeCpuBackend(2);
    transformer_ = std::make_unique<Transformer>(config(), model_->weights(), backend_.get(), 64);
  }
  bool ok() const { return transformer_ != nullptr; }
  ~TinyModel() { fs::remove_all(dir_); }
  const ModelConfig& config() const { return model_->config(); }
  const ModelWeights& weights() const { return model_->weights(); }
  Transformer& transformer() { return *transformer_; }

 private:
  fs::path dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Transformer> transformer_;
};

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = dist(rng);
  return t;
}

// hidden (hidden_size) and logits (vocab) of `token` at `position` over the full cache's
// positions [0, position), the token's K/V written at slot `position`.
void FullCacheForward(Transformer& t, KvCache& full, int32_t token, int32_t position, float* hidden,
                      float* logits) {
  const int32_t prefix = position + 1;
  const int32_t row = 0;
  ForwardBatch batch;
  batch.tokens = std::span<const int32_t>(&token, 1);
  batch.positions = std::span<const int32_t>(&position, 1);
  batch.slots = batch.positions;
  batch.mask.prefix_len = &prefix;
  batch.logits_rows = std::span<const int32_t>(&row, 1);
  ASSERT_TRUE(t.Forward(batch, full, logits, hidden).ok());
}

// ---------------------------------------------------------------------------------------------
// (a) Budget >= context: bit for bit a full-cache draft.

class WholePrefixTest : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(WholePrefixTest, Draft_EqualsFullCacheForwardBitForBit) {
  const auto [preset, dtype] = GetParam();
  TinyModel m(preset);
  ASSERT_TRUE(m.ok());
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tokens = RandomTokens(160, c.vocab_size, 7);
  auto full = KvCache::Create(c, 200, dtype);
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE(m.transformer().ForwardCausal(tokens, 0, 150, **full, nullptr).ok());
  PartialCacheConfig cfg;
  cfg.budget = 256;
  cfg.n_sink = 4;
  cfg.recent = 16;
  auto drafter = PartialDrafter::Create(&m.transformer(), full->get(), cfg);
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  PartialDrafter& d = **drafter;

  std::vector<float> hd(c.hidden_size), ld(c.vocab_size), hf(c.hidden_size), lf(c.vocab_size);
  for (const int32_t n : {1, 5, 64, 150}) {
    auto sel = d.Update(n);
    ASSERT_TRUE(sel.ok()) << sel.status();
    EXPECT_EQ(*sel, nullptr) << "no selection while the prefix fits";
    EXPECT_EQ(d.partial().used(), n);
    EXPECT_TRUE(d.partial().selection().whole_prefix);
    ASSERT_TRUE(d.Draft(tokens[n], n, hd.data(), ld.data()).ok());
    FullCacheForward(m.transformer(), **full, tokens[n], n, hf.data(), lf.data());
    EXPECT_EQ(std::memcmp(hd.data(), hf.data(), hd.size() * sizeof(float)), 0) << "n = " << n;
    EXPECT_EQ(std::memcmp(ld.data(), lf.data(), ld.size() * sizeof(float)), 0) << "n = " << n;
  }
  EXPECT_EQ(d.stats().drafts, 4);
  EXPECT_EQ(d.stats().reselects + d.stats().streaming_selects, 0);
}

std::string WholePrefixName(const ::testing::TestParamInfo<WholePrefixTest::ParamType>& info) {
  std::string name =
      std::get<0>(info.param) + (std::get<1>(info.param) == DType::kBF16 ? "_bf16" : "_f32");
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Presets, WholePrefixTest,
                         ::testing::Combine(::testing::Values("llama-mha", "llama-gqa-llama3",
                                                              "qwen2-yarn", "llama-linear",
                                                              "llama-gqa-3kv"),
                                            ::testing::Values(DType::kF32, DType::kBF16)),
                         WholePrefixName);

// ---------------------------------------------------------------------------------------------
// The double-precision reference: a llama with default rope (HF rotate_half), no biases, f32
// weights, written from the equations. Every token but the last attends causally to all earlier
// positions; the last one, at layer l and KV head g, to `last_allowed(l, g)` and itself.

struct Reference {
  std::vector<double> hidden;  // (hidden_size) before the final norm
  std::vector<double> logits;  // (vocab)
  std::vector<double> q_last;  // (n_layers, n_heads * head_dim) the last token's roped queries
};

using AllowedFn = std::function<std::vector<int32_t>(int layer, int kv_head)>;

double W(const Matrix& m, int64_t r, int64_t c) {
  return reinterpret_cast<const float*>(m.Row(r))[c];
}

std::vector<double> MatVec(const Matrix& m, const std::vector<double>& x) {
  std::vector<double> y(m.rows, 0.0);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) y[r] += W(m, r, c) * x[c];
  }
  return y;
}

std::vector<double> RmsNorm(const std::vector<double>& x, const float* w, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// Rotates every head of x (heads, head_dim) at `pos`: pairs (i, i + head_dim/2).
void RopeNeox(std::vector<double>& x, int heads, int head_dim, int64_t pos, double theta) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    double* v = x.data() + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      // HF computes inv_freq in float32.
      const float inv = 1.0f / std::pow(static_cast<float>(theta),
                                        static_cast<float>(2 * i) / static_cast<float>(head_dim));
      const double a = static_cast<double>(pos) * static_cast<double>(inv);
      const double x0 = v[i], x1 = v[i + half];
      v[i] = x0 * std::cos(a) - x1 * std::sin(a);
      v[i + half] = x1 * std::cos(a) + x0 * std::sin(a);
    }
  }
}

Reference ReferenceForward(const ModelConfig& c, const ModelWeights& w,
                           std::span<const int32_t> tokens, const AllowedFn& last_allowed) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t hs = c.hidden_size;
  const int hd = c.head_dim;
  const int group = c.n_heads / c.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<std::vector<double>> x(T, std::vector<double>(hs));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < hs; ++i) x[t][i] = W(w.embed, tokens[t], i);
  }
  Reference ref;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> h = RmsNorm(x[t], lw.attn_norm, c.rms_eps);
      q[t] = MatVec(lw.wq, h);
      k[t] = MatVec(lw.wk, h);
      v[t] = MatVec(lw.wv, h);
      RopeNeox(q[t], c.n_heads, hd, t, c.rope_theta);
      RopeNeox(k[t], c.n_kv_heads, hd, t, c.rope_theta);
    }
    ref.q_last.insert(ref.q_last.end(), q[T - 1].begin(), q[T - 1].end());
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(c.n_heads) * hd, 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / group;
        std::vector<int32_t> keys;
        if (t < T - 1) {
          for (int64_t p = 0; p <= t; ++p) keys.push_back(static_cast<int32_t>(p));
        } else {
          keys = last_allowed(l, g);
          keys.push_back(static_cast<int32_t>(t));
        }
        std::vector<double> s(keys.size());
        double mx = -1e300;
        for (size_t j = 0; j < keys.size(); ++j) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d) {
            dot +=
                q[t][static_cast<size_t>(h) * hd + d] * k[keys[j]][static_cast<size_t>(g) * hd + d];
          }
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0.0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (size_t j = 0; j < keys.size(); ++j) {
          for (int d = 0; d < hd; ++d) {
            att[static_cast<size_t>(h) * hd + d] +=
                s[j] / z * v[keys[j]][static_cast<size_t>(g) * hd + d];
          }
        }
      }
      const std::vector<double> o = MatVec(lw.wo, att);
      for (int64_t i = 0; i < hs; ++i) x[t][i] += o[i];
      const std::vector<double> h2 = RmsNorm(x[t], lw.ffn_norm, c.rms_eps);
      const std::vector<double> gate = MatVec(lw.w_gate, h2);
      const std::vector<double> up = MatVec(lw.w_up, h2);
      std::vector<double> act(gate.size());
      for (size_t i = 0; i < act.size(); ++i) act[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const std::vector<double> down = MatVec(lw.w_down, act);
      for (int64_t i = 0; i < hs; ++i) x[t][i] += down[i];
    }
  }
  ref.hidden = x[T - 1];
  ref.logits = MatVec(w.lm_head, RmsNorm(ref.hidden, w.final_norm, c.rms_eps));
  return ref;
}

// max |got - want| relative to max(1, max |want|).
double RelError(std::span<const float> got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double err = 0.0, scale = 1.0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

// The brute-force selection for (layer, head): sinks, the top k of the middle by the summed
// per-query-head dot products (in double, ties to the lower position), the recent window; sorted.
std::vector<int32_t> BruteForceSelection(const KvCache& full, const ModelConfig& c,
                                         std::span<const float> queries,
                                         const PartialCacheConfig& cfg, int64_t committed,
                                         int layer, int head) {
  const KvLayerView view = full.Layer(layer);
  const int hd = c.head_dim;
  const int group = c.n_heads / c.n_kv_heads;
  const float* q = queries.data() + static_cast<size_t>(layer) * c.n_heads * hd;
  std::vector<std::pair<double, int32_t>> cand;
  for (int64_t p = cfg.n_sink; p < committed - cfg.recent; ++p) {
    const float* k = static_cast<const float*>(view.k) + (head * view.capacity + p) * hd;
    double s = 0.0;
    for (int j = 0; j < group; ++j) {
      double dot = 0.0;
      for (int d = 0; d < hd; ++d) {
        dot += static_cast<double>(q[(head * group + j) * hd + d]) * static_cast<double>(k[d]);
      }
      s += dot;
    }
    cand.emplace_back(-s, static_cast<int32_t>(p));  // ascending = score desc, position asc
  }
  std::sort(cand.begin(), cand.end());
  const int64_t k = cfg.budget - cfg.reselect_room - cfg.n_sink - cfg.recent;
  std::vector<int32_t> out;
  for (int64_t i = 0; i < cfg.n_sink; ++i) out.push_back(static_cast<int32_t>(i));
  for (int64_t i = 0; i < k; ++i) out.push_back(cand[i].second);
  for (int64_t p = committed - cfg.recent; p < committed; ++p)
    out.push_back(static_cast<int32_t>(p));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int32_t> Row(const PartialCacheSelection& s, int l, int g) {
  const std::span<const int32_t> r = s.Positions(l, g);
  return {r.begin(), r.end()};
}

// Every (layer, KV head, slot) row of the partial cache equals the full cache's row at the
// position the selection names, K and V, bit for bit.
void ExpectRowsCopied(const KvCache& full, const PartialKvCache& partial, const ModelConfig& c) {
  const PartialCacheSelection& s = partial.selection();
  const size_t row = static_cast<size_t>(c.head_dim) * sizeof(float);
  for (int l = 0; l < c.n_layers; ++l) {
    const KvLayerView src = full.Layer(l), dst = partial.cache().Layer(l);
    for (int g = 0; g < c.n_kv_heads; ++g) {
      const std::span<const int32_t> pos = s.Positions(l, g);
      for (int64_t i = 0; i < s.count; ++i) {
        const size_t so = (static_cast<size_t>(g) * src.capacity + pos[i]) * row;
        const size_t d = (static_cast<size_t>(g) * dst.capacity + i) * row;
        ASSERT_EQ(std::memcmp(static_cast<const uint8_t*>(src.k) + so,
                              static_cast<const uint8_t*>(dst.k) + d, row),
                  0)
            << "K, layer " << l << " head " << g << " slot " << i;
        ASSERT_EQ(std::memcmp(static_cast<const uint8_t*>(src.v) + so,
                              static_cast<const uint8_t*>(dst.v) + d, row),
                  0)
            << "V, layer " << l << " head " << g << " slot " << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (b), (d): small budget against the double reference.

class SmallBudgetTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SmallBudgetTest, Draft_MatchesDoubleReferenceOverTheSelectedPositions) {
  TinyModel m(GetParam());
  ASSERT_TRUE(m.ok());
  const ModelConfig& c = m.config();
  ASSERT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  ASSERT_FALSE(c.qkv_bias);
  ASSERT_EQ(m.weights().layers[0].wq.dtype, DType::kF32);
  const std::vector<int32_t> tokens = RandomTokens(210, c.vocab_size, 11);
  auto full = KvCache::Create(c, 256, DType::kF32);
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE(m.transformer().ForwardCausal(tokens, 0, 210, **full, nullptr).ok());
  PartialCacheConfig cfg;
  cfg.budget = 32;
  cfg.n_sink = 4;
  cfg.recent = 8;
  cfg.reselect_room = 0;
  auto drafter = PartialDrafter::Create(&m.transformer(), full->get(), cfg);
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  PartialDrafter& d = **drafter;
  std::vector<float> hidden(c.hidden_size), logits(c.vocab_size);
  constexpr double kTol = 1e-4;

  // Before any draft: sinks + the latest positions.
  auto sel = d.Update(200);
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_NE(*sel, nullptr);
  std::vector<int32_t> streaming = {0, 1, 2, 3};
  for (int32_t p = 172; p < 200; ++p) streaming.push_back(p);
  for (int l = 0; l < c.n_layers; ++l) {
    for (int g = 0; g < c.n_kv_heads; ++g) EXPECT_EQ(Row(**sel, l, g), streaming);
  }
  EXPECT_EQ(d.stats().streaming_selects, 1);
  ExpectRowsCopied(**full, d.partial(), c);

  ASSERT_TRUE(d.Draft(tokens[200], 200, hidden.data(), logits.data()).ok());
  Reference ref = ReferenceForward(c, m.weights(), std::span(tokens).first(201),
                                   [&](int, int) { return streaming; });
  EXPECT_LT(RelError(d.queries(), ref.q_last), kTol) << "captured queries";
  EXPECT_LT(RelError(hidden, ref.hidden), kTol) << "hidden";
  EXPECT_LT(RelError(logits, ref.logits), kTol) << "logits";

  // The cache is full: the next committed position triggers an importance selection with the
  // queries just captured.
  const std::vector<float> q1(d.queries().begin(), d.queries().end());
  sel = d.Update(201);
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_NE(*sel, nullptr);
  EXPECT_EQ(d.stats().reselects, 1);
  EXPECT_EQ((*sel)->count, 32);
  bool rows_differ = false;
  for (int l = 0; l < c.n_layers; ++l) {
    for (int g = 0; g < c.n_kv_heads; ++g) {
      EXPECT_EQ(Row(**sel, l, g), BruteForceSelection(**full, c, q1, cfg, 201, l, g))
          << "layer " << l << " head " << g;
      rows_differ = rows_differ || Row(**sel, l, g) != Row(**sel, 0, 0);
    }
  }
  EXPECT_TRUE(rows_differ) << "every (layer, head) chose the same positions: a weak test";
  ExpectRowsCopied(**full, d.partial(), c);
  const PartialCacheSelection chosen = **sel;

  ASSERT_TRUE(d.Draft(tokens[201], 201, hidden.data(), logits.data()).ok());
  ref = ReferenceForward(c, m.weights(), std::span(tokens).first(202),
                         [&](int l, int g) { return Row(chosen, l, g); });
  EXPECT_LT(RelError(d.queries(), ref.q_last), kTol) << "captured queries";
  EXPECT_LT(RelError(hidden, ref.hidden), kTol) << "hidden";
  EXPECT_LT(RelError(logits, ref.logits), kTol) << "logits";

  // The reference can tell: attending over the whole prefix instead gives another hidden state.
  const Reference whole =
      ReferenceForward(c, m.weights(), std::span(tokens).first(202), [](int, int) {
        std::vector<int32_t> all(201);
        for (int32_t i = 0; i < 201; ++i) all[i] = i;
        return all;
      });
  EXPECT_GT(RelError(hidden, whole.hidden), 100 * kTol);
}

INSTANTIATE_TEST_SUITE_P(DefaultRopePresets, SmallBudgetTest,
                         ::testing::Values("llama-gqa-3kv", "llama-mha"),
                         testing_fixtures::CaseName());

// ---------------------------------------------------------------------------------------------
// (c) The update cycle keeps sinks and the recent window and re-selects only when full.

TEST(PartialDrafterUpdate, AppendsRecentReselectsWhenFullKeepsSinksAndWindow) {
  TinyModel m("llama-gqa-3kv");
  ASSERT_TRUE(m.ok());
  const ModelConfig& c = m.config();
  const std::vector<int32_t> tokens = RandomTokens(240, c.vocab_size, 5);
  auto full = KvCache::Create(c, 256, DType::kF32);
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE(m.transformer().ForwardCausal(tokens, 0, 240, **full, nullptr).ok());
  PartialCacheConfig cfg;
  cfg.budget = 32;
  cfg.n_sink = 4;
  cfg.recent = 8;
  cfg.reselect_room = 6;
  auto drafter = PartialDrafter::Create(&m.transformer(), full->get(), cfg);
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  PartialDrafter& d = **drafter;
  std::vector<float> hidden(c.hidden_size);

  // A prompt longer than the budget, no query yet: sinks + latest, leaving the reselect room.
  auto sel = d.Update(40);
  ASSERT_TRUE(sel.ok() && *sel != nullptr);
  EXPECT_EQ(d.partial().used(), 26);
  EXPECT_EQ(Row(**sel, 0, 0).front(), 0);
  EXPECT_EQ(Row(**sel, 0, 0)[4], 18);
  ASSERT_TRUE(d.Draft(tokens[40], 40, hidden.data(), nullptr).ok());

  // Steps committing 3 tokens each: two steps fit in the room, the third triggers a selection.
  int64_t committed = 40;
  int64_t expected_reselects = 0;
  std::vector<float> last_q(d.queries().begin(), d.queries().end());
  for (int step = 0; step < 40; ++step) {
    const int64_t used_before = d.partial().used();
    const int64_t covered_before = d.partial().covered_len();
    committed += 3;
    sel = d.Update(committed);
    ASSERT_TRUE(sel.ok()) << sel.status();
    const bool should_select = committed - covered_before > cfg.budget - used_before;
    ASSERT_EQ(*sel != nullptr, should_select) << "step " << step;
    if (should_select) {
      ++expected_reselects;
      EXPECT_EQ(d.partial().used(), cfg.budget - cfg.reselect_room);
      for (int l = 0; l < c.n_layers; ++l) {
        for (int g = 0; g < c.n_kv_heads; ++g) {
          EXPECT_EQ(Row(**sel, l, g), BruteForceSelection(**full, c, last_q, cfg, committed, l, g));
        }
      }
    } else {
      EXPECT_EQ(d.partial().used(), used_before + 3);
    }
    EXPECT_EQ(d.stats().reselects, expected_reselects);
    EXPECT_EQ(d.partial().covered_len(), committed);
    // Every row: strictly increasing, the sinks first, the recent window last.
    const PartialCacheSelection& s = d.partial().selection();
    for (int l = 0; l < c.n_layers; ++l) {
      for (int g = 0; g < c.n_kv_heads; ++g) {
        const std::vector<int32_t> row = Row(s, l, g);
        ASSERT_LE(static_cast<int64_t>(row.size()), cfg.budget);
        EXPECT_TRUE(std::adjacent_find(row.begin(), row.end(), std::greater_equal<int32_t>()) ==
                    row.end());
        for (int32_t i = 0; i < cfg.n_sink; ++i) EXPECT_EQ(row[i], i);
        for (int64_t i = 0; i < cfg.recent; ++i) {
          EXPECT_EQ(row[row.size() - cfg.recent + i], committed - cfg.recent + i);
        }
      }
    }
    ExpectRowsCopied(**full, d.partial(), c);
    ASSERT_TRUE(
        d.Draft(tokens[committed], static_cast<int32_t>(committed), hidden.data(), nullptr).ok());
    last_q.assign(d.queries().begin(), d.queries().end());
  }
  EXPECT_GE(expected_reselects, 10);
  EXPECT_EQ(d.stats().streaming_selects, 1);
  EXPECT_EQ(d.stats().last_selection_count, cfg.budget - cfg.reselect_room);
  EXPECT_GT(d.bytes(), d.partial().cache().bytes());
}

TEST(PartialDrafterErrors, DraftBeforeUpdateAndBadConfig) {
  TinyModel m("llama-mha");
  ASSERT_TRUE(m.ok());
  auto full = KvCache::Create(m.config(), 64, DType::kF32);
  ASSERT_TRUE(full.ok());
  PartialCacheConfig cfg;
  cfg.budget = 16;
  cfg.n_sink = 2;
  cfg.recent = 4;
  auto drafter = PartialDrafter::Create(&m.transformer(), full->get(), cfg);
  ASSERT_TRUE(drafter.ok());
  std::vector<float> hidden(m.config().hidden_size);
  EXPECT_EQ((*drafter)->Draft(1, 10, hidden.data(), nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*drafter)->Update(10).ok());
  EXPECT_EQ((*drafter)->Update(9).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*drafter)->Update(65).status().code(), absl::StatusCode::kOutOfRange);
  cfg.draft_slots = 0;
  EXPECT_EQ(PartialDrafter::Create(&m.transformer(), full->get(), cfg).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Timing on SmolLM2 (not a check): prefill ~8K tokens once, then one-token draft passes over the
// full cache vs. over a 4096-slot partial cache, and the selection time.

TEST(PartialDrafterTiming, DISABLED_SmolLM2At8K) {
  const std::string path = testing_paths::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "default model not found";
  auto model = LoadModel(path, /*require_tokenizer=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = model->config();
  const char* threads_env = std::getenv("TS_TIMING_THREADS");
  auto backend = MakeCpuBackend(threads_env != nullptr ? std::atoi(threads_env) : 2);
  Transformer t(c, model->weights(), backend.get(), 256);
  constexpr int64_t kContext = 8000;
  constexpr int kDrafts = 50;
  const std::vector<int32_t> tokens = RandomTokens(kContext + 2, c.vocab_size, 3);
  auto full = KvCache::Create(c, kContext + 8, DType::kF32);
  ASSERT_TRUE(full.ok());
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  auto t0 = Clock::now();
  ASSERT_TRUE(t.ForwardCausal(tokens, 0, kContext, **full, nullptr).ok());
  auto t1 = Clock::now();
  printf("prefill %lld tokens: %.1f s\n", static_cast<long long>(kContext), ms(t0, t1) / 1000);

  std::vector<float> hidden(c.hidden_size), logits(c.vocab_size);
  PartialCacheConfig cfg;  // budget 4096, 16 sinks, recent 1024
  auto drafter = PartialDrafter::Create(&t, full->get(), cfg);
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  PartialDrafter& d = **drafter;
  ASSERT_TRUE(d.Update(kContext).ok());
  printf("streaming selection (first touch of the partial cache): %.2f ms\n",
         d.stats().last_select_seconds * 1000);
  ASSERT_TRUE(d.Draft(tokens[kContext], kContext, hidden.data(), logits.data()).ok());
  // Position kContext's K/V into the full cache, then select with the captured query.
  FullCacheForward(t, **full, tokens[kContext], kContext, hidden.data(), logits.data());
  auto sel = d.Update(kContext + 1);
  ASSERT_TRUE(sel.ok() && *sel != nullptr);
  printf("Update with importance selection over %lld positions: %.2f ms\n",
         static_cast<long long>(kContext + 1), d.stats().last_select_seconds * 1000);

  // Interleaved single calls; the machine is shared, so report min and median.
  auto summary = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return std::make_pair(v.front(), v[v.size() / 2]);
  };
  std::vector<double> full_ms, partial_ms, partial_nohead_ms, score_ms, apply_ms;
  PartialCacheSelection scratch = d.partial().NewSelection();
  for (int i = 0; i < kDrafts; ++i) {
    t0 = Clock::now();
    FullCacheForward(t, **full, tokens[kContext + 1], kContext + 1, hidden.data(), logits.data());
    t1 = Clock::now();
    full_ms.push_back(ms(t0, t1));
    t0 = Clock::now();
    ASSERT_TRUE(d.Draft(tokens[kContext + 1], kContext + 1, hidden.data(), logits.data()).ok());
    t1 = Clock::now();
    partial_ms.push_back(ms(t0, t1));
    t0 = Clock::now();
    ASSERT_TRUE(d.Draft(tokens[kContext + 1], kContext + 1, hidden.data(), nullptr).ok());
    t1 = Clock::now();
    partial_nohead_ms.push_back(ms(t0, t1));
    if (i < 5) {
      t0 = Clock::now();
      ASSERT_TRUE(d.partial().ComputeSelection(**full, kContext + 1, d.queries(), &scratch).ok());
      t1 = Clock::now();
      score_ms.push_back(ms(t0, t1));
      t0 = Clock::now();
      ASSERT_TRUE(d.partial().Apply(**full, scratch).ok());
      t1 = Clock::now();
      apply_ms.push_back(ms(t0, t1));
    }
  }
  auto [full_min, full_med] = summary(full_ms);
  auto [part_min, part_med] = summary(partial_ms);
  auto [nohead_min, nohead_med] = summary(partial_nohead_ms);
  auto [score_min, score_med] = summary(score_ms);
  auto [apply_min, apply_med] = summary(apply_ms);
  printf("full-cache draft pass (prefix %lld): min %.2f ms, median %.2f ms\n",
         static_cast<long long>(kContext + 1), full_min, full_med);
  printf("partial-cache draft pass (budget %lld): min %.2f ms, median %.2f ms\n",
         static_cast<long long>(cfg.budget), part_min, part_med);
  printf("partial-cache draft pass without the lm_head: min %.2f ms, median %.2f ms\n", nohead_min,
         nohead_med);
  printf(
      "selection scoring + top-k: min %.2f ms, median %.2f ms; copying rows (Apply): min %.2f "
      "ms, median %.2f ms\n",
      score_min, score_med, apply_min, apply_med);
  printf("partial drafter memory: %.1f MiB (full cache %.1f MiB)\n", d.bytes() / 1048576.0,
         (*full)->bytes() / 1048576.0);
}

}  // namespace
}  // namespace ts
