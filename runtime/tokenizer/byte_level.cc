#include "runtime/tokenizer/byte_level.h"

#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

const ByteLevelAlphabet& ByteLevelAlphabet::Get() {
  static const ByteLevelAlphabet* const kAlphabet = new ByteLevelAlphabet();
  return *kAlphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  codepoint_to_byte_.fill(-1);
  uint32_t next_extra = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next_extra++;
    AppendUtf8(cp, &byte_to_utf8_[b]);
    codepoint_to_byte_[cp] = b;
  }
}

void ByteLevelAlphabet::EncodeBytes(std::string_view raw, std::string* out) const {
  for (char c : raw) out->append(byte_to_utf8_[static_cast<unsigned char>(c)]);
}

std::optional<std::string> ByteLevelAlphabet::DecodeToBytes(std::string_view byte_level) const {
  std::string out;
  out.reserve(byte_level.size());
  size_t pos = 0;
  while (pos < byte_level.size()) {
    if (WellFormedUtf8Length(byte_level, pos) == 0) return std::nullopt;
    const uint32_t cp = NextCodepoint(byte_level, &pos);
    if (cp >= codepoint_to_byte_.size() || codepoint_to_byte_[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(codepoint_to_byte_[cp]));
  }
  return out;
}

}  // namespace ts::tok
