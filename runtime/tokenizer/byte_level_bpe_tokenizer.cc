#include "runtime/tokenizer/byte_level_bpe_tokenizer.h"

#include <deque>
#include <utility>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/string_map.h"
#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

namespace {
// Bound on the per-call word cache; it is cleared when full.
constexpr size_t kMaxCachedWords = 1 << 18;
}  // namespace

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(ByteLevelBpeSpec spec) : spec_(std::move(spec)) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  token_bytes_.resize(spec_.pieces.size());
  for (size_t id = 0; id < spec_.pieces.size(); ++id) {
    const std::string& piece = spec_.pieces[id];
    if (id < spec_.piece_is_literal.size() && spec_.piece_is_literal[id]) {
      token_bytes_[id] = piece;
    } else if (auto bytes = alphabet.DecodeToBytes(piece)) {
      token_bytes_[id] = std::move(*bytes);
    } else {
      token_bytes_[id] = piece;  // not byte-level text: written as is
    }
  }
}

bool ByteLevelBpeTokenizer::IsControl(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < spec_.is_control.size() && spec_.is_control[id];
}

std::string ByteLevelBpeTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) return {};
  return token_bytes_[id];
}

std::vector<int32_t> ByteLevelBpeTokenizer::Encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special) ids.insert(ids.end(), spec_.prefix_ids.begin(), spec_.prefix_ids.end());

  std::vector<Fragment> fragments{{text, -1}};
  std::vector<Fragment> next;
  if (!spec_.raw_literals.empty()) {
    spec_.raw_literals.Split(fragments, &next);
    std::swap(fragments, next);
  }
  std::deque<std::string> normalized_storage;  // stable addresses: fragments point into it
  if (!spec_.normalizer.empty()) {
    for (Fragment& frag : fragments) {
      if (frag.id >= 0) continue;
      frag.text = SanitizeUtf8(frag.text, &normalized_storage.emplace_back());
      frag.text = spec_.normalizer.Apply(frag.text, &normalized_storage.emplace_back());
    }
  }
  if (!spec_.normalized_literals.empty()) {
    next.clear();
    spec_.normalized_literals.Split(fragments, &next);
    std::swap(fragments, next);
  }

  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  StringMap<std::vector<int32_t>> cache;  // raw word -> ids
  std::string sanitized;
  std::string byte_level;
  std::vector<std::string_view> words;
  for (const Fragment& frag : fragments) {
    if (frag.id >= 0) {
      ids.push_back(frag.id);
      continue;
    }
    const std::string_view valid = SanitizeUtf8(frag.text, &sanitized);
    words.clear();
    spec_.pre_tokenizer.Split(valid, &words);
    for (std::string_view word : words) {
      if (auto it = cache.find(word); it != cache.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        continue;
      }
      byte_level.clear();
      alphabet.EncodeBytes(word, &byte_level);
      std::vector<int32_t> word_ids;
      spec_.model.EncodeWord(byte_level, &word_ids);
      ids.insert(ids.end(), word_ids.begin(), word_ids.end());
      if (cache.size() >= kMaxCachedWords) cache.clear();
      cache.emplace(std::string(word), std::move(word_ids));
    }
  }
  if (add_special) ids.insert(ids.end(), spec_.suffix_ids.begin(), spec_.suffix_ids.end());
  return ids;
}

}  // namespace ts::tok
