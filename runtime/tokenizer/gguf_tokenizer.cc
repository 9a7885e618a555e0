// MakeGgufTokenizer: a tokenizer from the tokenizer.ggml.* keys of a GGUF file (VocabData).
//
// "gpt2" (byte-level BPE): tokenizer.ggml.pre picks the pre-tokenizer regexes the way llama.cpp
// maps pre-tokenizer names (smollm/starcoder-like: digits split one by one, then GPT-2; llama-bpe:
// Llama-3, whole-word vocabulary hits skip the merges; qwen2: Qwen2). "llama": SentencePiece.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "runtime/tokenizer/byte_level_bpe_tokenizer.h"
#include "runtime/tokenizer/sentencepiece_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace ts {

namespace {

using tok::SplitBehavior;

constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;

struct PreFlavour {
  std::vector<std::string_view> names;
  std::vector<std::string_view> patterns;
  bool ignore_merges;
};

const std::vector<PreFlavour>& PreFlavours() {
  static const auto* const kFlavours = new std::vector<PreFlavour>{
      {{"", "default", "gpt2", "gpt-2", "mpt", "olmo", "jais"}, {tok::kGpt2Pattern}, false},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"},
       {tok::kDigitsIndividualPattern, tok::kGpt2Pattern},
       false},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {tok::kLlama3Pattern}, true},
      {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"}, {tok::kQwen2Pattern}, false},
  };
  return *kFlavours;
}

Status ValidateVocab(const VocabData& v, const std::string& source) {
  const size_t n = v.tokens.size();
  if (n == 0) return BadInput(source, ": field 'tokenizer.ggml.tokens': expected a non-empty list");
  if (!v.token_types.empty() && v.token_types.size() != n) {
    return BadInput(source, ": field 'tokenizer.ggml.token_type': expected ", n,
                    " entries (one per token), got ", v.token_types.size());
  }
  for (auto [name, id] : {std::pair{"bos_token_id", v.bos_id}, std::pair{"eos_token_id", v.eos_id},
                          std::pair{"unknown_token_id", v.unk_id}}) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return BadInput(source, ": field 'tokenizer.ggml.", name, "': expected an id below ", n,
                      ", got ", id);
    }
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<Tokenizer>> MakeByteLevelBpe(const VocabData& v,
                                                      const std::string& source) {
  const PreFlavour* flavour = nullptr;
  std::vector<std::string> known;
  for (const PreFlavour& f : PreFlavours()) {
    for (std::string_view name : f.names) {
      if (name == v.pre) flavour = &f;
      if (!name.empty()) known.emplace_back(name);
    }
  }
  if (flavour == nullptr) {
    return BadInput(source, ": field 'tokenizer.ggml.pre': expected one of ",
                    absl::StrJoin(known, ", "), ", got '", v.pre, "'");
  }
  tok::ByteLevelBpeSpec spec;
  for (std::string_view pattern : flavour->patterns) {
    TS_RETURN_IF_ERROR(spec.pre_tokenizer.AddStep(pattern, SplitBehavior::kIsolated,
                                                  source + ": pre-tokenizer " + v.pre));
  }
  spec.model.set_ignore_merges(flavour->ignore_merges);
  const size_t n = v.tokens.size();
  spec.pieces = v.tokens;
  spec.piece_is_literal.assign(n, false);
  spec.is_control.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    spec.model.AddToken(v.tokens[i], static_cast<int32_t>(i));
    const int32_t type = v.token_types.empty() ? 1 : v.token_types[i];
    if (type == kTypeControl || type == kTypeUserDefined) {
      spec.raw_literals.Add(v.tokens[i], static_cast<int32_t>(i));
      spec.piece_is_literal[i] = true;
      spec.is_control[i] = type == kTypeControl;
    }
  }
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& merge = v.merges[i];
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) {
      return BadInput(source, ": field 'tokenizer.ggml.merges[", i,
                      "]': expected \"left right\", got \"", merge, "\"");
    }
    // A merge whose parts or result are not tokens can never apply; llama.cpp keeps it by text
    // but its result would fall back to bytes, so skipping it gives the same ids in practice.
    spec.model.AddMerge(std::string_view(merge).substr(0, space),
                        std::string_view(merge).substr(space + 1));
  }
  if (v.add_bos && v.bos_id >= 0) spec.prefix_ids.push_back(v.bos_id);
  spec.bos_id = v.bos_id;
  spec.eos_id = v.eos_id;
  return std::unique_ptr<Tokenizer>(new tok::ByteLevelBpeTokenizer(std::move(spec)));
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> MakeGgufTokenizer(VocabData vocab, const std::string& source) {
  TS_RETURN_IF_ERROR(ValidateVocab(vocab, source));
  if (vocab.model == "gpt2") return MakeByteLevelBpe(vocab, source);
  if (vocab.model == "llama") {
    if (vocab.scores.size() != vocab.tokens.size()) {
      return BadInput(source, ": field 'tokenizer.ggml.scores': expected ", vocab.tokens.size(),
                      " entries (one per token), got ", vocab.scores.size());
    }
    return std::unique_ptr<Tokenizer>(new tok::SentencePieceTokenizer(vocab));
  }
  return BadInput(source, ": field 'tokenizer.ggml.model': expected \"gpt2\" or \"llama\", got \"",
                  vocab.model, "\"");
}

}  // namespace ts
