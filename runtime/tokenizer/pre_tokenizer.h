// Regex pre-tokenization: text -> pieces that BPE encodes independently.
//
// A pipeline is a list of regex steps. Each step splits every piece of the previous step; with
// the "isolated" behaviour both the matches and the text between matches become pieces, with
// "removed" only the text between matches does (HF `Split` semantics; llama.cpp applies its
// `regex_exprs` the same way). Patterns run under PCRE2 with UTF + UCP (\p{L}, \s are Unicode)
// and JIT. A lookahead never sees past the end of the piece it runs on.
//
//   steps = [\p{N} isolated, kGpt2Pattern isolated]
//   "it's 42!" -> ["it", "'s", " ", "4", "2", "!"]
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ts::tok {

// The patterns of the original tokenizer.json files.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// HF `Digits` pre-tokenizer.
inline constexpr std::string_view kDigitsIndividualPattern = R"(\p{N})";
inline constexpr std::string_view kDigitsContiguousPattern = R"(\p{N}+)";

enum class SplitBehavior { kIsolated, kRemoved };

class PreTokenizer {
 public:
  PreTokenizer();
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Appends a step; fails (BadInput naming `where`) when the pattern does not compile.
  Status AddStep(std::string_view pattern, SplitBehavior behavior, std::string_view where);
  bool empty() const { return steps_.empty(); }

  // Pieces of `text` (valid UTF-8), as views into it, appended to `pieces`.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  struct Step;
  std::vector<std::unique_ptr<Step>> steps_;
};

}  // namespace ts::tok
