#include "runtime/tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581
constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;
constexpr int32_t kTypeByte = 6;

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const VocabData& vocab)
    : tokens_(vocab.tokens),
      types_(vocab.token_types),
      scores_(vocab.scores),
      bos_id_(vocab.bos_id),
      eos_id_(vocab.eos_id),
      unk_id_(vocab.unk_id),
      add_bos_(vocab.add_bos),
      add_space_prefix_(vocab.add_space_prefix) {
  types_.resize(tokens_.size(), 1);
  scores_.resize(tokens_.size(), 0.0f);
  byte_ids_.fill(-1);
  token_bytes_.resize(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const std::string& text = tokens_[i];
    ids_.insert_or_assign(text, id);
    unsigned int byte = 0;
    const bool is_byte_text = text.size() == 6 && text.compare(0, 3, "<0x") == 0 &&
                              text[5] == '>' && std::sscanf(text.c_str() + 3, "%2X", &byte) == 1;
    if (is_byte_text) byte_ids_[byte] = id;
    if (types_[i] == kTypeControl || types_[i] == kTypeUserDefined) {
      literals_.Add(text, id);
      token_bytes_[i] = text;
    } else if (types_[i] == kTypeByte && is_byte_text) {
      token_bytes_[i] = std::string(1, static_cast<char>(byte));
    } else if (types_[i] == 2) {  // unknown: its text
      token_bytes_[i] = text;
    } else {
      token_bytes_[i] = ReplaceAll(text, kSpaceMark, " ");
    }
  }
}

bool SentencePieceTokenizer::IsControl(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < types_.size() && types_[id] == kTypeControl;
}

std::string SentencePieceTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) return {};
  return token_bytes_[id];
}

std::vector<int32_t> SentencePieceTokenizer::Encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special && AddBos()) ids.push_back(bos_id_);
  std::vector<Fragment> fragments;
  literals_.Split({{text, -1}}, &fragments);
  bool prev_literal = true;  // the start counts as "after a literal token"
  for (const Fragment& frag : fragments) {
    if (frag.id >= 0) {
      ids.push_back(frag.id);
      prev_literal = true;
      continue;
    }
    std::string prefixed = (add_space_prefix_ && prev_literal) ? " " : "";
    prefixed.append(frag.text);
    EncodeFragment(ReplaceAll(prefixed, " ", kSpaceMark), &ids);
    prev_literal = false;
  }
  return ids;
}

void SentencePieceTokenizer::EncodeFragment(std::string_view text,
                                            std::vector<int32_t>* out) const {
  if (text.empty()) return;
  struct Symbol {
    size_t begin, len;  // len 0: merged into its left neighbour
    int32_t prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len =
        std::min(Utf8LengthFromLead(static_cast<unsigned char>(text[pos])), text.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({pos, len, index - 1, index + 1});
    pos += len;
  }
  symbols.back().next = -1;

  struct Bigram {
    float score;
    int32_t left, right;
    size_t len;
    bool operator<(const Bigram& o) const {  // max score first, then leftmost
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Bigram> queue;
  const auto try_push = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t right = symbols[left].next;
    const size_t len = symbols[left].len + symbols[right].len;
    auto it = ids_.find(text.substr(symbols[left].begin, len));
    if (it == ids_.end()) return;
    queue.push({scores_[it->second], left, right, len});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) try_push(i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.next != b.right || left.len + right.len != b.len) {
      continue;
    }
    left.len = b.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = b.left;
    try_push(left.prev);
    try_push(b.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].begin, symbols[i].len);
    if (auto it = ids_.find(piece); it != ids_.end()) {
      out->push_back(it->second);
      continue;
    }
    for (char c : piece) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id >= 0) {
        out->push_back(id);
      } else if (unk_id_ >= 0) {
        out->push_back(unk_id_);
      }
    }
  }
}

}  // namespace ts::tok
