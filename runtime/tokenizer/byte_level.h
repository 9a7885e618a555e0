// GPT-2 byte-level alphabet: every byte 0..255 is written as one printable code point, so a
// byte-level BPE vocabulary never holds raw spaces or control bytes. Printable Latin-1 bytes
// ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the other 68 bytes map, in
// order, to U+0100, U+0101, ... (space 0x20 -> U+0120 'Ġ', newline 0x0A -> U+010A 'Ċ').
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace ts::tok {

class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& Get();

  // UTF-8 of the code point standing for `byte`.
  const std::string& Encode(unsigned char byte) const { return byte_to_utf8_[byte]; }
  // Byte-level form of raw bytes (each byte becomes its code point's UTF-8).
  void EncodeBytes(std::string_view raw, std::string* out) const;
  // Raw bytes of a byte-level string; nullopt when a code point is outside the alphabet.
  std::optional<std::string> DecodeToBytes(std::string_view byte_level) const;

 private:
  ByteLevelAlphabet();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int, 512> codepoint_to_byte_;  // -1: not in the alphabet (all fit below U+0200)
};

}  // namespace ts::tok
