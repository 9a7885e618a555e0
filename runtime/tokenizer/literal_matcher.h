// Finds added/special tokens written literally in text, before any pre-tokenization.
//
// Leftmost-longest: the earliest match wins, and among matches starting there the longest (HF's
// AddedVocabulary uses Aho-Corasick with LeftmostLongest). "a<|im_end|>b" with "<|im_end|>"
// -> [text "a", token <|im_end|>, text "b"].
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ts::tok {

struct Fragment {
  std::string_view text;  // the text, or the literal that matched
  int32_t id = -1;        // the token id; -1 for plain text
};

class LiteralMatcher {
 public:
  void Add(std::string text, int32_t id);  // empty text is ignored
  bool empty() const { return count_ == 0; }

  // Splits each plain-text fragment of `in` around matches; token fragments pass through.
  void Split(const std::vector<Fragment>& in, std::vector<Fragment>* out) const;

 private:
  struct Entry {
    std::string text;
    int32_t id;
  };
  // Entries by first byte, longest first.
  std::array<std::vector<Entry>, 256> by_first_byte_;
  size_t count_ = 0;
};

}  // namespace ts::tok
