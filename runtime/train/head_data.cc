// Token sequences and hidden states for draft-head training; see head_data.h.
#include "runtime/train/head_data.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "runtime/decode/ar_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "spdlog/spdlog.h"

namespace ts::train {
namespace {

// Logs generation progress every 512 tokens.
class ProgressSink : public TokenSink {
 public:
  ProgressSink(int64_t index, int64_t count, int64_t max_new)
      : index_(index), count_(count), max_new_(max_new) {}
  void OnTokens(std::span<const int32_t> /*tokens*/, int64_t generated, double seconds) override {
    if (generated - last_ < 512 && generated != max_new_) return;
    last_ = generated;
    spdlog::info("train-heads: self-distillation sequence {}/{}: {}/{} tokens, {:.1f} tok/s",
                 index_ + 1, count_, generated, max_new_, seconds > 0 ? generated / seconds : 0.0);
  }

 private:
  int64_t index_, count_, max_new_;
  int64_t last_ = 0;
};

}  // namespace

std::vector<TokenSequence> CutIntoSequences(std::span<const int32_t> ids, int64_t seq_len) {
  std::vector<TokenSequence> out;
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t b = 0; b < n; b += seq_len) {
    const int64_t e = std::min(n, b + seq_len);
    if (e - b < 8) break;
    out.push_back(TokenSequence{std::vector<int32_t>(ids.begin() + b, ids.begin() + e), 0});
  }
  return out;
}

namespace {

// Subjects and forms of the self-distillation prompts: every pair is one prompt, so the samples
// cover stories, explanations, guides, letters, dialogue, essays and code across many domains.
// The held-out subjects never appear in training prompts.
constexpr const char* kSubjects[] = {
    "a lighthouse keeper who finds a message in a bottle",
    "the human immune system",
    "starting a vegetable garden",
    "the history of the Roman Empire",
    "a small library's books, members and loans",
    "a grandmother and her grandson who left for university",
    "a marine biologist on a research ship",
    "how computers work, from transistors to operating systems",
    "two friends searching for a lost city in the desert",
    "the causes and effects of climate change",
    "the stars and planets",
    "baking bread at home",
    "reading books in the digital age",
    "a village where the baker's recipe book disappears",
    "personal finance: budgeting, saving, debt and investing",
    "how a law is made",
    "the invention of the printing press",
    "training for a first marathon",
    "a robot that learns to paint",
    "volcanoes and earthquakes",
    "the life of honeybees",
    "learning a foreign language as an adult",
    "a detective investigating a theft at a museum",
    "the water cycle",
    "the industrial revolution",
    "a family moving to a new country",
    "how vaccines are developed",
    "the rules and strategy of chess",
    "a spaceship crew that loses contact with Earth",
    "the French Revolution",
    "running a small coffee shop",
    "the ocean's coral reefs",
    "writing a good resume and preparing for an interview",
    "a dragon who is afraid of fire",
    "how the internet delivers a web page",
    "ancient Egypt and the pyramids",
    "keeping a dog healthy and happy",
    "the discovery of penicillin",
    "a musician preparing for a big concert",
    "renewable energy: solar, wind and water",
};
constexpr const char* kHeldOutSubjects[] = {
    "a clockmaker who can repair time itself",
    "how bridges are designed and built",
    "the history of the bicycle",
    "a girl who befriends a fox in a snowy forest",
};
constexpr const char* kForms[] = {
    "Write a long story about %s.",
    "Explain %s in detail, as a thorough article with sections.",
    "Write a step-by-step guide related to %s, with practical tips.",
    "Write a dialogue between two people discussing %s.",
    "Write a long letter to a friend about %s.",
    "Write an essay about %s, with arguments and examples.",
    "Write a Python program related to %s, then explain the code.",
};

std::vector<std::string> PromptsOf(std::span<const char* const> subjects) {
  std::vector<std::string> out;
  // Subject-major within each form, so consecutive prompts differ in both.
  for (size_t f = 0; f < std::size(kForms); ++f) {
    for (size_t i = 0; i < subjects.size(); ++i) {
      const char* subject = subjects[(i + 3 * f) % subjects.size()];
      const std::string form = kForms[f];
      const size_t at = form.find("%s");
      out.push_back(form.substr(0, at) + subject + form.substr(at + 2));
    }
  }
  return out;
}

}  // namespace

const std::vector<std::string>& SelfDistillPrompts() {
  static const std::vector<std::string>* prompts =
      new std::vector<std::string>(PromptsOf(kSubjects));
  return *prompts;
}

const std::vector<std::string>& HeldOutPrompts() {
  static const std::vector<std::string>* prompts =
      new std::vector<std::string>(PromptsOf(kHeldOutSubjects));
  return *prompts;
}

StatusOr<std::vector<TokenSequence>> GenerateSelfDistillation(const Model& model, Backend* backend,
                                                              const SelfDistillOptions& options) {
  if (model.tokenizer == nullptr) {
    return BadInput("train-heads: self-distillation needs the model's tokenizer");
  }
  if (options.tokens < 1) return BadInput("--tokens: expected at least 1");
  if (options.seq_len < 8) return BadInput("--seq-len: expected at least 8");
  TS_RETURN_IF_ERROR(Validate(options.sampling));
  const Tokenizer& tok = *model.tokenizer;
  const ModelConfig& config = model.config();
  bool chat = false;
  if (options.chat) {
    const std::vector<int32_t> start = tok.Encode("<|im_start|>", false);
    chat = start.size() == 1 && tok.IsControl(start[0]);
  }
  const std::vector<std::string>& prompts =
      options.held_out ? HeldOutPrompts() : SelfDistillPrompts();
  const int64_t count = (options.tokens + options.seq_len - 1) / options.seq_len;
  std::vector<TokenSequence> out;
  int64_t remaining = options.tokens;
  for (int64_t k = 0; k < count; ++k) {
    const std::string& text = prompts[k % prompts.size()];
    const std::string prompt =
        chat ? "<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n" : text;
    const std::vector<int32_t> prompt_ids = tok.Encode(prompt, /*add_special=*/true);
    const int64_t max_new = std::min(remaining, options.seq_len);
    const int64_t capacity = static_cast<int64_t>(prompt_ids.size()) + max_new;
    if (capacity > config.max_position) {
      return BadInput("--seq-len: prompt + ", max_new, " tokens exceed the model's context of ",
                      config.max_position);
    }
    TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                        KvCache::Create(config, capacity, DType::kF32));
    Transformer transformer(config, model.weights(), backend, 256);
    SamplingParams sampling = options.sampling;
    sampling.seed =
        options.sampling.seed + static_cast<uint64_t>(k) + (options.held_out ? 1000003u : 0u);
    ArDecoder decoder(&transformer, cache.get(), sampling);
    GenerationLimits limits;
    limits.max_new_tokens = max_new;
    limits.ignore_eos = true;
    limits.eos_ids = config.eos_ids;
    ProgressSink sink(k, count, max_new);
    TS_ASSIGN_OR_RETURN(GenerationResult result, Generate(decoder, prompt_ids, limits, &sink));
    TokenSequence seq;
    seq.tokens = prompt_ids;
    seq.tokens.insert(seq.tokens.end(), result.tokens.begin(), result.tokens.end());
    seq.first_row = static_cast<int64_t>(prompt_ids.size()) - 1;
    remaining -= static_cast<int64_t>(result.tokens.size());
    out.push_back(std::move(seq));
  }
  return out;
}

Status AppendHiddenStates(const Model& model, Backend* backend,
                          std::span<const TokenSequence> sequences, int64_t chunk,
                          HeadDataset* out) {
  const ModelConfig& config = model.config();
  if (out->hidden_size != config.hidden_size) {
    return RuntimeFailure("train-heads: dataset hidden size ", out->hidden_size, ", model ",
                          config.hidden_size);
  }
  int64_t max_len = 0;
  for (const TokenSequence& s : sequences) {
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(s.tokens.size()));
  }
  if (max_len == 0) return absl::OkStatus();
  if (max_len > config.max_position) {
    return BadInput("--seq-len: sequences of ", max_len, " tokens exceed the model's context of ",
                    config.max_position);
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, max_len, DType::kF32));
  Transformer transformer(config, model.weights(), backend, chunk);
  const int64_t h = config.hidden_size;
  std::vector<float> hidden(static_cast<size_t>(max_len * h));  // (len, hidden)
  std::vector<int32_t> positions(static_cast<size_t>(chunk)), prefix(static_cast<size_t>(chunk)),
      rows(static_cast<size_t>(chunk));
  for (const TokenSequence& s : sequences) {
    const int64_t len = static_cast<int64_t>(s.tokens.size());
    for (int64_t b = 0; b < len; b += chunk) {
      const int64_t n = std::min(chunk, len - b);
      for (int64_t i = 0; i < n; ++i) {
        positions[i] = static_cast<int32_t>(b + i);
        prefix[i] = static_cast<int32_t>(b + i + 1);
        rows[i] = static_cast<int32_t>(i);
      }
      ForwardBatch batch;
      batch.tokens = std::span<const int32_t>(s.tokens.data() + b, n);
      batch.positions = std::span<const int32_t>(positions.data(), n);
      batch.slots = batch.positions;
      batch.mask.prefix_len = prefix.data();
      batch.logits_rows = std::span<const int32_t>(rows.data(), n);
      TS_RETURN_IF_ERROR(
          transformer.Forward(batch, *cache, /*logits=*/nullptr, hidden.data() + b * h));
    }
    out->AppendSequence(s.tokens, hidden.data(), s.first_row);
  }
  return absl::OkStatus();
}

Status WriteSequences(const std::string& path, std::span<const TokenSequence> sequences) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) return BadInput("--samples: cannot write '", path, "'");
  for (const TokenSequence& s : sequences) {
    f << s.first_row << ':';
    for (int32_t id : s.tokens) f << ' ' << id;
    f << '\n';
  }
  f.flush();
  if (!f) return RuntimeFailure("--samples: writing '", path, "' failed");
  return absl::OkStatus();
}

StatusOr<std::vector<TokenSequence>> ReadSequences(const std::string& path, int64_t vocab) {
  std::ifstream f(path);
  if (!f) return BadInput("--samples: cannot read '", path, "'");
  std::vector<TokenSequence> out;
  std::string line;
  for (int64_t number = 1; std::getline(f, line); ++number) {
    if (line.empty()) continue;
    auto bad = [&](const char* what) {
      return BadInput("--samples: '", path, "' line ", number, ": ", what,
                      " (expected \"first_row: id id ...\")");
    };
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return bad("no ':'");
    TokenSequence s;
    if (!absl::SimpleAtoi(line.substr(0, colon), &s.first_row) || s.first_row < 0) {
      return bad("first_row is not a count");
    }
    for (absl::string_view word :
         absl::StrSplit(absl::string_view(line).substr(colon + 1), ' ', absl::SkipEmpty())) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(word, &id) || id < 0 || id >= vocab) {
        return bad("a token id outside the vocabulary");
      }
      s.tokens.push_back(id);
    }
    if (s.first_row >= static_cast<int64_t>(s.tokens.size())) return bad("first_row past the end");
    out.push_back(std::move(s));
  }
  if (out.empty()) return BadInput("--samples: '", path, "' holds no sequence");
  return out;
}

namespace {

constexpr char kRowsMagic[8] = {'T', 'S', 'R', 'O', 'W', 'S', '1', '\n'};

struct RowsHeader {
  char magic[8];
  uint64_t key;
  int64_t rows, hidden, num_heads, tokens;
};

uint64_t Fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

template <typename T>
bool ReadVector(std::FILE* f, std::vector<T>& v, size_t count) {
  v.resize(count);
  return std::fread(v.data(), sizeof(T), count, f) == count;
}

}  // namespace

Status AppendHiddenStatesCached(const Model& model, Backend* backend,
                                std::span<const TokenSequence> sequences, int64_t chunk,
                                const std::string& cache_dir, const std::string& model_id,
                                HeadDataset* out) {
  if (cache_dir.empty()) return AppendHiddenStates(model, backend, sequences, chunk, out);
  uint64_t key = Fnv1a(0xcbf29ce484222325ull, model_id.data(), model_id.size());
  const int64_t shape[2] = {out->hidden_size, out->num_heads};
  key = Fnv1a(key, shape, sizeof(shape));
  for (const TokenSequence& s : sequences) {
    const int64_t head[2] = {s.first_row, static_cast<int64_t>(s.tokens.size())};
    key = Fnv1a(key, head, sizeof(head));
    key = Fnv1a(key, s.tokens.data(), s.tokens.size() * sizeof(int32_t));
  }
  const std::filesystem::path path =
      std::filesystem::path(cache_dir) / absl::StrFormat("%016x.rows", key);

  HeadDataset part;
  part.num_heads = out->num_heads;
  part.hidden_size = out->hidden_size;
  bool loaded = false;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    RowsHeader hd{};
    loaded = std::fread(&hd, sizeof(hd), 1, f) == 1 &&
             std::memcmp(hd.magic, kRowsMagic, sizeof(kRowsMagic)) == 0 && hd.key == key &&
             hd.hidden == part.hidden_size && hd.num_heads == part.num_heads && hd.rows >= 0;
    const size_t rows = loaded ? static_cast<size_t>(hd.rows) : 0;
    loaded = loaded && ReadVector(f, part.hidden, rows * static_cast<size_t>(hd.hidden)) &&
             ReadVector(f, part.targets, rows * static_cast<size_t>(hd.num_heads)) &&
             ReadVector(f, part.ahead, rows) && ReadVector(f, part.next_token, rows);
    part.tokens = hd.tokens;
    std::fclose(f);
    if (loaded) spdlog::info("train-heads: {} rows from the cache {}", rows, path.string());
  }
  if (!loaded) {
    part = HeadDataset{};
    part.num_heads = out->num_heads;
    part.hidden_size = out->hidden_size;
    TS_RETURN_IF_ERROR(AppendHiddenStates(model, backend, sequences, chunk, &part));
    std::error_code ec;
    std::filesystem::create_directories(cache_dir, ec);
    const std::string tmp = path.string() + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) return RuntimeFailure("--hidden-cache: cannot write ", tmp);
    RowsHeader hd{};
    std::memcpy(hd.magic, kRowsMagic, sizeof(kRowsMagic));
    hd.key = key;
    hd.rows = part.rows();
    hd.hidden = part.hidden_size;
    hd.num_heads = part.num_heads;
    hd.tokens = part.tokens;
    const bool ok = std::fwrite(&hd, sizeof(hd), 1, f) == 1 &&
                    std::fwrite(part.hidden.data(), sizeof(float), part.hidden.size(), f) ==
                        part.hidden.size() &&
                    std::fwrite(part.targets.data(), sizeof(int32_t), part.targets.size(), f) ==
                        part.targets.size() &&
                    std::fwrite(part.ahead.data(), sizeof(int32_t), part.ahead.size(), f) ==
                        part.ahead.size() &&
                    std::fwrite(part.next_token.data(), sizeof(int32_t), part.next_token.size(),
                                f) == part.next_token.size();
    if (std::fclose(f) != 0 || !ok) {
      std::filesystem::remove(tmp, ec);
      return RuntimeFailure("--hidden-cache: cannot write ", tmp);
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return RuntimeFailure("--hidden-cache: cannot rename ", tmp, ": ", ec.message());
  }
  auto append = [](auto& dst, const auto& src) { dst.insert(dst.end(), src.begin(), src.end()); };
  append(out->hidden, part.hidden);
  append(out->targets, part.targets);
  append(out->ahead, part.ahead);
  append(out->next_token, part.next_token);
  out->tokens += part.tokens;
  return absl::OkStatus();
}

HeadDataset SplitTail(HeadDataset& data, double share) {
  HeadDataset tail;
  tail.num_heads = data.num_heads;
  tail.hidden_size = data.hidden_size;
  const int64_t rows = data.rows();
  if (share <= 0 || rows == 0) return tail;
  const int64_t n = std::clamp<int64_t>(std::llround(share * rows), 1, rows);
  const int64_t keep = rows - n;
  tail.hidden.assign(data.hidden.begin() + keep * data.hidden_size, data.hidden.end());
  tail.targets.assign(data.targets.begin() + keep * data.num_heads, data.targets.end());
  tail.ahead.assign(data.ahead.begin() + keep, data.ahead.end());
  tail.next_token.assign(data.next_token.begin() + keep, data.next_token.end());
  data.hidden.resize(static_cast<size_t>(keep * data.hidden_size));
  data.targets.resize(static_cast<size_t>(keep * data.num_heads));
  data.ahead.resize(static_cast<size_t>(keep));
  data.next_token.resize(static_cast<size_t>(keep));
  // A kept row's following rows stop at the cut.
  for (int64_t r = std::max<int64_t>(0, keep - data.num_heads); r < keep; ++r) {
    data.ahead[r] = std::min<int32_t>(data.ahead[r], static_cast<int32_t>(keep - 1 - r));
  }
  // Rows near the cut keep targets from the tail's text; that overlap is at most 3 tokens.
  tail.tokens = n;
  return tail;
}

}  // namespace ts::train
