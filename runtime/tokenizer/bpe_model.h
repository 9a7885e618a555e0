// Byte-pair encoding of one pre-tokenized word.
//
// The word (already in the byte-level alphabet) starts as one symbol per UTF-8 character. The
// adjacent pair with the lowest merge rank is merged (ties: leftmost first) until no pair of the
// word has a merge. A priority queue keeps this O(n log n) in the word length, so a 10K-character
// whitespace run is no problem. Characters missing from the vocabulary become `unk_id` or are
// dropped when there is none (HF BPE).
//
//   merges ["Ġ t", "h e", "Ġt he"]: "Ġthe" -> Ġ t h e -> Ġt h e -> Ġt he -> Ġthe
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer/string_map.h"

namespace ts::tok {

class BpeModel {
 public:
  // A token; when the same text is added twice the later id wins.
  void AddToken(std::string_view text, int32_t id) {
    vocab_.insert_or_assign(std::string(text), id);
  }
  // The next merge rank. False (and nothing added) when `left`, `right` or their concatenation is
  // not a token. A pair that is already present keeps its first (lower) rank.
  bool AddMerge(std::string_view left, std::string_view right);
  void set_ignore_merges(bool v) { ignore_merges_ = v; }
  void set_unk_id(int32_t id) { unk_id_ = id; }

  // -1 when absent.
  int32_t TokenId(std::string_view text) const {
    auto it = vocab_.find(text);
    return it == vocab_.end() ? -1 : it->second;
  }
  size_t merge_count() const { return merges_.size(); }

  // Appends the ids of `word` (byte-level form, valid UTF-8).
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  StringMap<int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
};

}  // namespace ts::tok
