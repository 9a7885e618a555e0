// UTF-8 helpers shared by the tokenizers.
//
// Invalid input policy (both tokenizer families): before pre-tokenization every byte that does not
// begin a well-formed UTF-8 sequence (Unicode Table 3-7: no overlongs, no surrogates, nothing past
// U+10FFFF, no truncated sequences) is replaced by U+FFFD, one replacement per byte. This is what
// llama.cpp does for byte-level BPE and, for lone bad bytes, what HF `tokenizers` sees after
// Python's `bytes.decode(errors="replace")`. (For a truncated multi-byte sequence Python writes
// one U+FFFD, llama.cpp and we write one per byte.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ts::tok {

// Length of the well-formed UTF-8 sequence at text[pos], or 0 when it is not well formed.
size_t WellFormedUtf8Length(std::string_view text, size_t pos);

// `text` with every byte outside a well-formed sequence replaced by U+FFFD. Returns `text`
// unchanged (no copy into `storage`) when it is already valid.
std::string_view SanitizeUtf8(std::string_view text, std::string* storage);

// Appends the UTF-8 encoding of `cp` (at most U+10FFFF) to `out`.
void AppendUtf8(uint32_t cp, std::string* out);

// Decodes the code point at text[*pos] of valid UTF-8 and advances *pos.
uint32_t NextCodepoint(std::string_view text, size_t* pos);

// Length implied by a lead byte alone (1 for continuation/invalid bytes), as SentencePiece-style
// tokenizers split text into characters.
inline size_t Utf8LengthFromLead(unsigned char lead) {
  static constexpr unsigned char kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace ts::tok
