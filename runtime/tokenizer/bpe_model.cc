#include "runtime/tokenizer/bpe_model.h"

#include <queue>

#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

bool BpeModel::AddMerge(std::string_view left, std::string_view right) {
  const int32_t a = TokenId(left);
  const int32_t b = TokenId(right);
  std::string joined(left);
  joined.append(right);
  const int32_t c = TokenId(joined);
  if (a < 0 || b < 0 || c < 0) return false;
  merges_.try_emplace(PairKey(a, b), Merge{static_cast<int32_t>(merges_.size()), c});
  return true;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = TokenId(word); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  struct Symbol {
    int32_t id;    // -1: a character outside the vocabulary
    int32_t prev;  // index of the previous live symbol, -1 at the start
    int32_t next;  // index of the next live symbol, -1 at the end
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t pos = 0; pos < word.size();) {
    const size_t len =
        std::min(Utf8LengthFromLead(static_cast<unsigned char>(word[pos])), word.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({TokenId(word.substr(pos, len)), index - 1, index + 1, true});
    pos += len;
  }
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int32_t left;  // symbol index
    int32_t left_id;
    int32_t right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto try_push = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0 || symbols[left].id < 0 || symbols[right].id < 0) return;
    auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, symbols[left].id, symbols[right].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) try_push(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    if (!left.alive || left.id != c.left_id || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (right.id != c.right_id) continue;
    left.id = merges_.find(PairKey(c.left_id, c.right_id))->second.result;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    try_push(left.prev);
    try_push(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      out->push_back(symbols[i].id);
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

}  // namespace ts::tok
