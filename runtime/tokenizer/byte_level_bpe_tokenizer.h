// Byte-level BPE tokenizer (GPT-2 family: SmolLM, Llama-3, Qwen2), built from either an HF
// tokenizer.json or a GGUF "gpt2" vocabulary.
//
// Encode(text) (the order of HF's AddedVocabulary::extract_and_normalize):
//   1. literal tokens matched on raw text (HF normalized=false, GGUF control/user-defined) are
//      cut out of the text (LiteralMatcher);
//   2. with a normalizer (NFC), each remaining fragment: invalid UTF-8 -> U+FFFD per bad byte
//      (utf8.h), then normalized; literal tokens matched on normalized text (HF normalized=true)
//      are cut out of the result;
//   3. each remaining fragment: invalid UTF-8 -> U+FFFD, then the regex pre-tokenizer splits it
//      into words;
//   4. each word is written in the byte-level alphabet and BPE-encoded; the ids of a word are
//      cached for the rest of the call (long texts repeat words a lot);
//   5. with add_special, the template's prefix (BOS) and suffix ids are added.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/literal_matcher.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace ts::tok {

struct ByteLevelBpeSpec {
  BpeModel model;
  PreTokenizer pre_tokenizer;
  Normalizer normalizer;
  LiteralMatcher raw_literals;         // matched before normalization
  LiteralMatcher normalized_literals;  // matched after it (their text already normalized)
  // id -> text: byte-level form for vocabulary tokens, literal text for added/control tokens.
  std::vector<std::string> pieces;
  std::vector<bool> piece_is_literal;  // text is written as is (not byte-level)
  std::vector<bool> is_control;
  std::vector<int32_t> prefix_ids;  // added with add_special (BOS)
  std::vector<int32_t> suffix_ids;  // added with add_special (EOS, when a template asks)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  explicit ByteLevelBpeTokenizer(ByteLevelBpeSpec spec);

  std::vector<int32_t> Encode(std::string_view text, bool add_special) const override;
  std::string TokenBytes(int32_t id) const override;
  int64_t VocabSize() const override { return static_cast<int64_t>(spec_.pieces.size()); }
  int32_t BosId() const override { return spec_.bos_id; }
  int32_t EosId() const override { return spec_.eos_id; }
  bool AddBos() const override { return !spec_.prefix_ids.empty(); }
  bool IsControl(int32_t id) const override;

 private:
  ByteLevelBpeSpec spec_;
  std::vector<std::string> token_bytes_;  // id -> raw bytes, precomputed
};

}  // namespace ts::tok
