#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

size_t WellFormedUtf8Length(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (pos + len > text.size()) return 0;
  if (byte(pos + 1) < lo || byte(pos + 1) > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
  }
  return len;
}

std::string_view SanitizeUtf8(std::string_view text, std::string* storage) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t len = WellFormedUtf8Length(text, pos);
    if (len == 0) break;
    pos += len;
  }
  if (pos == text.size()) return text;
  storage->assign(text.substr(0, pos));
  while (pos < text.size()) {
    const size_t len = WellFormedUtf8Length(text, pos);
    if (len == 0) {
      storage->append("\xEF\xBF\xBD");
      ++pos;
    } else {
      storage->append(text.substr(pos, len));
      pos += len;
    }
  }
  return *storage;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t NextCodepoint(std::string_view text, size_t* pos) {
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(text[i]));
  };
  const uint32_t b0 = b(*pos);
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const uint32_t cp = ((b0 & 0x1F) << 6) | (b(*pos + 1) & 0x3F);
    *pos += 2;
    return cp;
  }
  if (b0 < 0xF0) {
    const uint32_t cp = ((b0 & 0x0F) << 12) | ((b(*pos + 1) & 0x3F) << 6) | (b(*pos + 2) & 0x3F);
    *pos += 3;
    return cp;
  }
  const uint32_t cp = ((b0 & 0x07) << 18) | ((b(*pos + 1) & 0x3F) << 12) |
                      ((b(*pos + 2) & 0x3F) << 6) | (b(*pos + 3) & 0x3F);
  *pos += 4;
  return cp;
}

}  // namespace ts::tok
