// SentencePiece-style tokenizer for GGUF "llama" vocabularies (Llama-1/2, Mistral, TinyLlama),
// following llama.cpp's SPM tokenizer, which is the reference for GGUF files:
//   1. control (type 3) and user-defined (type 4) tokens are cut out of the text literally;
//   2. each text fragment gets a leading space when add_space_prefix is set and it is the first
//      fragment or follows a literal token; spaces become U+2581 ("▁");
//   3. the fragment starts as one symbol per character (length from the UTF-8 lead byte), and the
//      adjacent pair whose concatenation is the token with the highest score is merged (ties:
//      leftmost first) until no concatenation is a token;
//   4. a symbol that is not a token is written as its bytes' <0xXX> tokens (byte fallback), or
//      unk when the vocabulary has no byte tokens.
// Invalid UTF-8 is not repaired here (llama.cpp does not either): it ends up in byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/literal_matcher.h"
#include "runtime/tokenizer/string_map.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/vocab.h"

namespace ts::tok {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `vocab` must already be validated (sizes of tokens, token_types, scores agree).
  explicit SentencePieceTokenizer(const VocabData& vocab);

  std::vector<int32_t> Encode(std::string_view text, bool add_special) const override;
  std::string TokenBytes(int32_t id) const override;
  int64_t VocabSize() const override { return static_cast<int64_t>(tokens_.size()); }
  int32_t BosId() const override { return bos_id_; }
  int32_t EosId() const override { return eos_id_; }
  bool AddBos() const override { return add_bos_ && bos_id_ >= 0; }
  bool IsControl(int32_t id) const override;

 private:
  void EncodeFragment(std::string_view escaped, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;
  std::vector<int32_t> types_;
  std::vector<float> scores_;
  std::vector<std::string> token_bytes_;
  StringMap<int32_t> ids_;
  std::array<int32_t, 256> byte_ids_;  // <0xXX> tokens, -1 when absent
  LiteralMatcher literals_;
  int32_t bos_id_, eos_id_, unk_id_;
  bool add_bos_, add_space_prefix_;
};

}  // namespace ts::tok
