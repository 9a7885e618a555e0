// Text <-> token ids. Implementations: HF tokenizer.json byte-level BPE, GGUF gpt2 (byte-level
// BPE) and GGUF llama (SentencePiece) vocabularies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime/tokenizer/vocab.h"

namespace ts {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. Special/added tokens written literally in the text (e.g. "<|im_start|>")
  // map to their ids. With add_special, BOS is prepended when the model asks for it, exactly as
  // HF `tokenizer(text)` / llama.cpp `llama_tokenize(..., add_special=true)` do.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special) const = 0;
  // The raw bytes one token stands for (may be an incomplete UTF-8 sequence; control tokens
  // give their literal text, e.g. "<|im_end|>").
  virtual std::string TokenBytes(int32_t id) const = 0;
  // Concatenated bytes of `ids` (invalid UTF-8 is passed through, not repaired).
  std::string Decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += TokenBytes(id);
    return out;
  }
  virtual int64_t VocabSize() const = 0;
  virtual int32_t BosId() const = 0;  // -1 when none
  virtual int32_t EosId() const = 0;  // -1 when none
  virtual bool AddBos() const = 0;
  virtual bool IsControl(int32_t id) const = 0;  // special token (not normal text)
};

// tokenizer.json from an HF model directory.
StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json_path);
// A vocabulary embedded in a GGUF file; `source` names the file in error messages.
StatusOr<std::unique_ptr<Tokenizer>> MakeGgufTokenizer(VocabData vocab, const std::string& source);

}  // namespace ts
