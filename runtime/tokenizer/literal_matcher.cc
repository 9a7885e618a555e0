#include "runtime/tokenizer/literal_matcher.h"

#include <algorithm>
#include <utility>

namespace ts::tok {

void LiteralMatcher::Add(std::string text, int32_t id) {
  if (text.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(text[0])];
  for (Entry& e : bucket) {
    if (e.text == text) {  // the same literal twice: the later id wins
      e.id = id;
      return;
    }
  }
  bucket.push_back({std::move(text), id});
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
  ++count_;
}

void LiteralMatcher::Split(const std::vector<Fragment>& in, std::vector<Fragment>* out) const {
  for (const Fragment& frag : in) {
    if (frag.id >= 0 || count_ == 0) {
      out->push_back(frag);
      continue;
    }
    const std::string_view text = frag.text;
    size_t plain_begin = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      const Entry* hit = nullptr;
      for (const Entry& e : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
        if (text.compare(pos, e.text.size(), e.text) == 0) {
          hit = &e;
          break;
        }
      }
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      if (pos > plain_begin) out->push_back({text.substr(plain_begin, pos - plain_begin), -1});
      out->push_back({text.substr(pos, hit->text.size()), hit->id});
      pos += hit->text.size();
      plain_begin = pos;
    }
    if (plain_begin < text.size()) out->push_back({text.substr(plain_begin), -1});
  }
}

}  // namespace ts::tok
