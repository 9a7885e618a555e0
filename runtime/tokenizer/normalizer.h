// Text normalization applied before pre-tokenization (HF tokenizer.json "normalizer").
//
// Only Unicode NFC is supported (Qwen2/Qwen2.5 files: {"type": "NFC"}, or a Sequence of NFC).
// NFC composes canonically equivalent sequences, so a decomposed "e" + U+0301 becomes the single
// code point U+00E9 and tokenizes exactly like a precomposed "é":
//
//   "cafe\u0301" (6 bytes) -> "caf\u00e9" (5 bytes)
//
// The work is done by ICU (Normalizer2, UTF-8 in and out). Text that is already in NFC, which is
// nearly all text, is detected by a quick check and returned without a copy.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ts::tok {

class Normalizer {
 public:
  enum class Kind { kNone, kNfc };

  // ICU takes int32_t lengths, so longer text is normalized in pieces of at most this many bytes,
  // each ending right before a code point that nothing before it can combine with.
  static constexpr size_t kDefaultMaxPieceBytes = size_t{1} << 30;

  Normalizer() = default;
  // `max_piece_bytes` is smaller only in tests (to reach the piecewise path with small text).
  explicit Normalizer(Kind kind, size_t max_piece_bytes = kDefaultMaxPieceBytes)
      : kind_(kind), max_piece_bytes_(max_piece_bytes) {}

  Kind kind() const { return kind_; }
  bool empty() const { return kind_ == Kind::kNone; }

  // The normalized form of `text` (valid UTF-8). Returns `text` itself when nothing changes;
  // otherwise the result is written into `storage` and a view of it is returned.
  std::string_view Apply(std::string_view text, std::string* storage) const;

 private:
  Kind kind_ = Kind::kNone;
  size_t max_piece_bytes_ = kDefaultMaxPieceBytes;
};

}  // namespace ts::tok
