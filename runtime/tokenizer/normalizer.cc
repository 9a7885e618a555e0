#include "runtime/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/utypes.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "runtime/tokenizer/utf8.h"

namespace ts::tok {

namespace {

// True when every byte is ASCII: ASCII text is always in NFC.
bool IsAscii(std::string_view text) {
  unsigned char any = 0;
  for (char c : text) any |= static_cast<unsigned char>(c);
  return any < 0x80;
}

bool IsLeadByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

// True when nothing before text[pos] (a code point start) can combine with what follows.
bool BoundaryAt(const icu::Normalizer2& nfc, std::string_view text, size_t pos) {
  return nfc.hasBoundaryBefore(static_cast<UChar32>(NextCodepoint(text, &pos)));
}

// Where to end the piece starting at `text`: at an NFC boundary, so that pieces normalize
// independently; the last one at or before `max_bytes`, else the first after it within what ICU
// takes (only a run of combining marks that long, not real text, is cut anywhere else).
size_t PieceEnd(const icu::Normalizer2& nfc, std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text.size();
  for (size_t end = max_bytes; end > 0; --end) {
    if (IsLeadByte(text[end]) && BoundaryAt(nfc, text, end)) return end;
  }
  const size_t limit = std::min<size_t>(text.size(), INT32_MAX - 4);
  size_t end = max_bytes + 1;
  while (end < limit && !(IsLeadByte(text[end]) && BoundaryAt(nfc, text, end))) ++end;
  while (end < text.size() && !IsLeadByte(text[end])) ++end;
  return end;
}

}  // namespace

std::string_view Normalizer::Apply(std::string_view text, std::string* storage) const {
  if (kind_ == Kind::kNone || IsAscii(text)) return text;
  UErrorCode status = U_ZERO_ERROR;
  // ICU builds the NFC instance once and shares it between threads; with ICU's built-in data it
  // cannot fail, and if it ever did the text would pass through unchanged.
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) return text;
  if (text.size() <= max_piece_bytes_) {
    const icu::StringPiece whole(text.data(), static_cast<int32_t>(text.size()));
    if (nfc->isNormalizedUTF8(whole, status) && U_SUCCESS(status)) return text;
    status = U_ZERO_ERROR;
  }
  storage->clear();
  storage->reserve(text.size());
  icu::StringByteSink<std::string> sink(storage);
  for (std::string_view rest = text; !rest.empty();) {
    const size_t end = PieceEnd(*nfc, rest, max_piece_bytes_);
    const icu::StringPiece piece(rest.data(), static_cast<int32_t>(end));
    nfc->normalizeUTF8(/*options=*/0, piece, sink, /*edits=*/nullptr, status);
    if (U_FAILURE(status)) return text;
    rest.remove_prefix(end);
  }
  return *storage;
}

}  // namespace ts::tok
