// A tokenizer vocabulary as a model file carries it (GGUF tokenizer.ggml.* keys), independent of
// the file format. HF tokenizer.json is parsed by the tokenizer itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ts {

struct VocabData {
  std::string model;                // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;                  // pre-tokenizer name: "smollm", "llama-bpe", "qwen2", ...
  std::vector<std::string> tokens;  // token id -> piece
  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<int32_t> token_types;
  std::vector<float> scores;        // SentencePiece scores (empty for gpt2)
  std::vector<std::string> merges;  // "a b" pairs, in rank order (gpt2)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;
  bool add_space_prefix = false;
};

}  // namespace ts
