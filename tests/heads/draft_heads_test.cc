// TokenSwift draft heads: golden logits from torch (tests/fixtures/heads, made by
// scripts/make_heads_golden.py with heads in f32, bf16 and f16), loading from files, HF
// directories and shards, batch invariance, clear errors for bad files, and the deterministic
// random-heads writer.
#include "runtime/decode/draft_heads.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/engine/model.h"
#include "runtime/model/safetensors_writer.h"
#include "runtime/model/test_model.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

using testing_fixtures::ReadBytes;
using testing_fixtures::ReadF32;

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(TS_FIXTURES_DIR) / "heads";
const fs::path kGoldenHeads = kFixtures / "heads.safetensors";

void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `bytes` (a safetensors file) to `path` with its header's "__metadata__" replaced by
// `metadata`; tensors and offsets are unchanged (only the header grows).
bool AddMetadata(const std::string& bytes, const std::map<std::string, std::string>& metadata,
                 const fs::path& path) {
  if (bytes.size() < 8) return false;
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, len));
  header["__metadata__"] = metadata;
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  const uint64_t new_len = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &new_len, 8);
  out += text;
  out += bytes.substr(8 + len);
  WriteBytes(path, out);
  return true;
}

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// max |a - b| / max |b| over n values.
double RelError(const float* a, const float* b, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(b[i])));
  }
  return max_diff / max_ref;
}

// The tiny llama-mha model (hidden 64, vocab 256) supplies lm_head and hidden_size; one per test
// binary, written to a fresh temporary directory.
class DraftHeadsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new fs::path(fs::temp_directory_path() /
                              ("ts_draft_heads_model_" + std::to_string(getpid())));
    fs::remove_all(*model_dir_);
    auto preset = FindTestModelPreset("llama-mha");
    ASSERT_TRUE(preset.ok()) << preset.status();
    ASSERT_TRUE(WriteTestModel(*preset, DType::kF32, model_dir_->string()).ok());
    auto model = LoadModel(model_dir_->string(), false);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new Model(std::move(*model));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    fs::remove_all(*model_dir_);
    delete model_dir_;
  }

  void SetUp() override {
    ASSERT_NE(model_, nullptr);
    backend_ = MakeCpuBackend(2);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("ts_draft_heads_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  const ModelConfig& config() const { return model_->config(); }
  const Matrix& lm_head() const { return model_->weights().lm_head; }
  int64_t vocab() const { return config().vocab_size; }

  // All heads' logits for `hidden` (n rows), (num_heads, n, vocab).
  std::vector<float> Run(DraftHeads& heads, const std::vector<float>& hidden) {
    const int64_t n = static_cast<int64_t>(hidden.size()) / config().hidden_size;
    std::vector<float> logits(static_cast<size_t>(heads.num_heads() * n * vocab()));
    Status s = heads.Apply(*backend_, hidden.data(), n, lm_head(), logits.data());
    EXPECT_TRUE(s.ok()) << s;
    return logits;
  }

  // Loading `path` fails with InvalidArgument whose message contains every one of `parts`.
  void ExpectBadInput(const fs::path& path, const std::vector<std::string>& parts,
                      const ModelConfig* cfg = nullptr) {
    auto heads = DraftHeads::Load(path.string(), cfg ? *cfg : config(), 4);
    ASSERT_FALSE(heads.ok());
    EXPECT_EQ(heads.status().code(), absl::StatusCode::kInvalidArgument) << heads.status();
    const std::string message(heads.status().message());
    for (const std::string& p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }

  static fs::path* model_dir_;
  static Model* model_;
  std::unique_ptr<Backend> backend_;
  fs::path dir_;
};

fs::path* DraftHeadsTest::model_dir_ = nullptr;
Model* DraftHeadsTest::model_ = nullptr;

TEST_F(DraftHeadsTest, MatchesTorchGolden) {
  std::ifstream in(kFixtures / "golden.json");
  const nlohmann::json golden = nlohmann::json::parse(in);
  const int64_t rows = golden["rows"];
  ASSERT_EQ(golden["hidden_size"], config().hidden_size);
  ASSERT_EQ(golden["vocab_size"], vocab());
  ASSERT_FLOAT_EQ(golden["rms_norm_eps"].get<float>(), config().rms_eps);
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  const std::vector<float> expected = ReadF32(kFixtures / "logits.f32");
  ASSERT_EQ(static_cast<int64_t>(hidden.size()), rows * config().hidden_size);
  ASSERT_EQ(static_cast<int64_t>(expected.size()), kTokenSwiftDraftHeads * rows * vocab());

  auto heads = DraftHeads::Load(kGoldenHeads.string(), config(), rows);
  ASSERT_TRUE(heads.ok()) << heads.status();
  EXPECT_EQ((*heads)->num_heads(), 3);
  EXPECT_EQ((*heads)->head(0).linear.dtype, DType::kF32);
  EXPECT_EQ((*heads)->head(1).linear.dtype, DType::kBF16);
  EXPECT_EQ((*heads)->head(2).linear.dtype, DType::kF16);
  const std::vector<float> ours = Run(**heads, hidden);
  for (int i = 0; i < kTokenSwiftDraftHeads; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      const size_t off = static_cast<size_t>((i * rows + r) * vocab());
      EXPECT_LE(RelError(ours.data() + off, expected.data() + off, vocab()), 1e-4)
          << "head " << i << " row " << r;
    }
  }
}

TEST_F(DraftHeadsTest, RowsAreBitIdenticalAloneOrBatched) {
  const int64_t h = config().hidden_size;
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  const int64_t rows = static_cast<int64_t>(hidden.size()) / h;
  auto heads = DraftHeads::Load(kGoldenHeads.string(), config(), rows);
  ASSERT_TRUE(heads.ok()) << heads.status();
  const std::vector<float> batched = Run(**heads, hidden);
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> one(hidden.begin() + r * h, hidden.begin() + (r + 1) * h);
    const std::vector<float> alone = Run(**heads, one);
    for (int i = 0; i < kTokenSwiftDraftHeads; ++i) {
      EXPECT_EQ(std::memcmp(alone.data() + i * vocab(), batched.data() + (i * rows + r) * vocab(),
                            static_cast<size_t>(vocab()) * sizeof(float)),
                0)
          << "head " << i << " row " << r;
    }
  }
}

TEST_F(DraftHeadsTest, LoadsFromCheckpointDirectoryAndShards) {
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  auto from_file = DraftHeads::Load(kGoldenHeads.string(), config(), 8);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  const std::vector<float> want = Run(**from_file, hidden);

  // A released checkpoint: base model and heads in one directory, other tensors ignored.
  const fs::path full = dir_ / "full";
  fs::create_directories(full);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy(*model_dir_ / f, full / f);
  fs::copy(kGoldenHeads, full / "model-00002-of-00002.safetensors");
  auto from_dir = DraftHeads::Load(full.string(), config(), 8);
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  EXPECT_EQ(Run(**from_dir, hidden), want);

  // Heads split across shards.
  const fs::path sharded = dir_ / "sharded";
  fs::create_directories(sharded);
  std::vector<SafetensorsTensor> a = RandomHeadsTensors(config().hidden_size, 7);
  std::vector<SafetensorsTensor> b(a.begin() + 4, a.end());
  a.resize(4);
  ASSERT_TRUE(WriteSafetensors((sharded / "a.safetensors").string(), a).ok());
  ASSERT_TRUE(WriteSafetensors((sharded / "b.safetensors").string(), b).ok());
  ASSERT_TRUE(
      WriteRandomHeads((dir_ / "whole.safetensors").string(), config().hidden_size, 7).ok());
  auto split = DraftHeads::Load(sharded.string(), config(), 8);
  auto whole = DraftHeads::Load((dir_ / "whole.safetensors").string(), config(), 8);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(Run(**split, hidden), Run(**whole, hidden));
}

TEST_F(DraftHeadsTest, FewerHeadsAreThePrefixOfTheChain) {
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  const int64_t rows = static_cast<int64_t>(hidden.size()) / config().hidden_size;
  auto three = DraftHeads::Load(kGoldenHeads.string(), config(), rows);
  auto two = DraftHeads::Load(kGoldenHeads.string(), config(), rows, 2);
  ASSERT_TRUE(three.ok() && two.ok());
  const std::vector<float> all = Run(**three, hidden);
  const std::vector<float> first = Run(**two, hidden);
  ASSERT_EQ(first.size(), static_cast<size_t>(2 * rows * vocab()));
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  // Four heads from a three-head file: the missing one is named.
  auto four = DraftHeads::Load(kGoldenHeads.string(), config(), rows, 4);
  ASSERT_FALSE(four.ok());
  EXPECT_NE(four.status().message().find("model.medusa_layers.3.input_layernorm.weight"),
            std::string::npos)
      << four.status();
}

// A draft vocabulary in the file's metadata: the heads' logits are -inf outside it and, inside
// it, exactly the whole-vocabulary computation's.
TEST_F(DraftHeadsTest, DraftVocabularyRestrictsLogits) {
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  const int64_t rows = static_cast<int64_t>(hidden.size()) / config().hidden_size;
  auto full = DraftHeads::Load(kGoldenHeads.string(), config(), rows);
  ASSERT_TRUE(full.ok()) << full.status();
  const std::vector<float> want = Run(**full, hidden);

  // The golden file's weights, with metadata added.
  const auto bytes = ReadBytes(kGoldenHeads);
  ASSERT_FALSE(bytes.empty());
  const std::vector<int32_t> ids = {0, 3, 17, 100, 101, 255};
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : " ") + std::to_string(id);
  const fs::path path = dir_ / "heads.safetensors";
  ASSERT_TRUE(AddMetadata(bytes, {{std::string(kDraftVocabKey), list}}, path));
  auto restricted = DraftHeads::Load(path.string(), config(), rows);
  ASSERT_TRUE(restricted.ok()) << restricted.status();
  EXPECT_EQ((*restricted)->draft_vocab(), ids);
  const std::vector<float> got = Run(**restricted, hidden);
  ASSERT_EQ(got.size(), want.size());
  int64_t finite = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i % vocab());
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
      ASSERT_EQ(got[i], -INFINITY) << "token " << id;
    } else {
      ++finite;
      EXPECT_EQ(got[i], want[i]) << "token " << id;
    }
  }
  EXPECT_EQ(finite, static_cast<int64_t>(ids.size()) * rows * (*full)->num_heads());

  // Bad lists are named.
  for (const std::string bad : {"3 2", "0 256", "x", ""}) {
    ASSERT_TRUE(AddMetadata(bytes, {{std::string(kDraftVocabKey), bad}}, path));
    ExpectBadInput(path, {path.string(), std::string(kDraftVocabKey)});
  }
}

TEST_F(DraftHeadsTest, MissingTensorIsNamed) {
  std::vector<SafetensorsTensor> t = RandomHeadsTensors(config().hidden_size, 1);
  const std::string name = DraftHeadTensorName(2, "linear");
  std::erase_if(t, [&](const SafetensorsTensor& x) { return x.name == name; });
  const fs::path path = dir_ / "heads.safetensors";
  ASSERT_TRUE(WriteSafetensors(path.string(), t).ok());
  ExpectBadInput(path, {path.string(), "missing tensor", name});
}

TEST_F(DraftHeadsTest, WrongShapeIsNamed) {
  const int64_t h = config().hidden_size;
  std::vector<SafetensorsTensor> t = RandomHeadsTensors(h, 1);
  const std::string name = DraftHeadTensorName(1, "linear");
  for (SafetensorsTensor& x : t) {
    if (x.name == name) x.shape = {h * 2, h / 2};  // same byte count, wrong shape
  }
  const fs::path path = dir_ / "heads.safetensors";
  ASSERT_TRUE(WriteSafetensors(path.string(), t).ok());
  ExpectBadInput(path, {path.string(), name, "[128,32]", "expected [64,64]"});

  // Heads of another model size: the first tensor checked is named with both sizes.
  ModelConfig wide = config();
  wide.hidden_size = 96;
  ExpectBadInput(
      kGoldenHeads,
      {kGoldenHeads.string(), DraftHeadTensorName(0, "input_layernorm"), "[64]", "expected [96]"},
      &wide);
}

TEST_F(DraftHeadsTest, WrongDtypeIsNamed) {
  std::vector<SafetensorsTensor> t = RandomHeadsTensors(config().hidden_size, 1);
  auto bytes = SerializeSafetensors(t);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Relabel one tensor's F32 as I32 (same size): a dtype no draft head can have.
  const std::string name = DraftHeadTensorName(0, "post_layernorm");
  const size_t at = bytes->find("\"" + name + "\"");
  ASSERT_NE(at, std::string::npos);
  const size_t dtype = bytes->find("\"F32\"", at);
  ASSERT_NE(dtype, std::string::npos);
  bytes->replace(dtype, 5, "\"I32\"");
  const fs::path path = dir_ / "heads.safetensors";
  WriteBytes(path, *bytes);
  ExpectBadInput(path, {path.string(), name, "dtype", "I32"});
}

TEST_F(DraftHeadsTest, BadPathsAndDuplicatesAreReported) {
  ExpectBadInput(dir_ / "nope", {(dir_ / "nope").string(), "no such file"});
  ExpectBadInput(dir_, {dir_.string(), "no .safetensors"});
  const fs::path garbage = dir_ / "garbage.safetensors";
  WriteBytes(garbage, "not a safetensors file at all");
  ExpectBadInput(garbage, {garbage.string()});
  fs::remove(garbage);

  ASSERT_TRUE(WriteRandomHeads((dir_ / "a.safetensors").string(), config().hidden_size, 1).ok());
  ASSERT_TRUE(WriteRandomHeads((dir_ / "b.safetensors").string(), config().hidden_size, 2).ok());
  ExpectBadInput(dir_, {"model.medusa_layers.0.input_layernorm.weight", "also in",
                        (dir_ / "a.safetensors").string(), (dir_ / "b.safetensors").string()});
}

TEST_F(DraftHeadsTest, ApplyRejectsBadArguments) {
  auto heads = DraftHeads::Load(kGoldenHeads.string(), config(), 2);
  ASSERT_TRUE(heads.ok()) << heads.status();
  std::vector<float> hidden(3 * config().hidden_size, 1.0f);
  std::vector<float> logits(3 * 3 * vocab());
  EXPECT_EQ((*heads)->Apply(*backend_, hidden.data(), 3, lm_head(), logits.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*heads)->Apply(*backend_, hidden.data(), 0, lm_head(), logits.data()).code(),
            absl::StatusCode::kInvalidArgument);
  Matrix narrow = lm_head();
  narrow.cols = 32;
  EXPECT_EQ((*heads)->Apply(*backend_, hidden.data(), 1, narrow, logits.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*heads)->Apply(*backend_, hidden.data(), 2, lm_head(), logits.data()).ok());
}

TEST_F(DraftHeadsTest, RandomHeadsAreDeterministicAndPinned) {
  const fs::path a = dir_ / "a.safetensors", b = dir_ / "b.safetensors", c = dir_ / "c.safetensors";
  ASSERT_TRUE(WriteRandomHeads(a.string(), 64, 42).ok());
  ASSERT_TRUE(WriteRandomHeads(b.string(), 64, 42).ok());
  ASSERT_TRUE(WriteRandomHeads(c.string(), 64, 43).ok());
  const std::string bytes = ReadBytes(a);
  EXPECT_EQ(bytes, ReadBytes(b));
  EXPECT_NE(bytes, ReadBytes(c));
  // Pinned: the generator must write these exact bytes on every platform and compiler.
  EXPECT_EQ(bytes.size(), 51648u);
  EXPECT_EQ(Fnv1a64(bytes), 0x141e1457482c4bd4ull) << std::hex << Fnv1a64(bytes);

  // Scales: linear std 1/sqrt(hidden), norms 1 + 0.1 noise.
  const std::vector<SafetensorsTensor> t = RandomHeadsTensors(64, 42);
  ASSERT_EQ(t.size(), 9u);
  auto stats = [](const SafetensorsTensor& x) {
    std::vector<float> v(x.bytes.size() / 4);
    std::memcpy(v.data(), x.bytes.data(), x.bytes.size());
    double s = 0, s2 = 0;
    for (float f : v) s += f, s2 += static_cast<double>(f) * f;
    const double mean = s / v.size();
    return std::pair<double, double>(mean, std::sqrt(s2 / v.size() - mean * mean));
  };
  auto [lin_mean, lin_std] = stats(t[1]);
  EXPECT_NEAR(lin_mean, 0.0, 0.01);
  EXPECT_NEAR(lin_std, 0.125, 0.01);
  auto [norm_mean, norm_std] = stats(t[0]);
  EXPECT_NEAR(norm_mean, 1.0, 0.05);
  EXPECT_NEAR(norm_std, 0.1, 0.03);

  EXPECT_EQ(WriteRandomHeads(a.string(), 0, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DraftHeadsTest, HalfPrecisionRandomHeadsTrackF32) {
  const std::vector<float> hidden = ReadF32(kFixtures / "hidden.f32");
  const int64_t rows = static_cast<int64_t>(hidden.size()) / config().hidden_size;
  const fs::path f32 = dir_ / "f32.safetensors";
  ASSERT_TRUE(WriteRandomHeads(f32.string(), config().hidden_size, 5).ok());
  auto ref = DraftHeads::Load(f32.string(), config(), rows);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::vector<float> want = Run(**ref, hidden);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    const fs::path p = dir_ / "half.safetensors";
    RandomHeadsOptions o;
    o.dtype = dt;
    ASSERT_TRUE(WriteRandomHeads(p.string(), config().hidden_size, 5, o).ok());
    auto heads = DraftHeads::Load(p.string(), config(), rows);
    ASSERT_TRUE(heads.ok()) << heads.status();
    EXPECT_EQ((*heads)->head(0).linear.dtype, dt);
    const std::vector<float> got = Run(**heads, hidden);
    EXPECT_LE(RelError(got.data(), want.data(), static_cast<int64_t>(want.size())),
              dt == DType::kBF16 ? 3e-2 : 3e-3)
        << GetDTypeInfo(dt).name;
  }
}

}  // namespace
}  // namespace ts
