// Inputs and process figures of `tokenswift bench` that are not measurements: the prompt ids, the
// --tree shape, untrained draft heads for tests, and the per-mode peak RSS.
//
// Prompt ids: the source sequence (ids parsed from a --prompt-ids file, or a text tokenized) is
// repeated and cut to exactly n ids, e.g. source {5, 6, 7}, n = 7 -> {5, 6, 7, 5, 6, 7, 5}, so a
// short text gives a prompt of any length and another engine can run on the same ids.
//
// Peak RSS per mode (Linux): writing "5" to /proc/self/clear_refs resets the kernel's resident
// high-water mark to the current RSS; VmHWM in /proc/self/status is then the peak since the
// reset. Where the write is refused, callers fall back to getrusage's process-wide peak.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/model/config.h"

namespace ts::cli {

// "1,3,3,3" -> {1, 3, 3, 3}: at most 4 levels (the model's head + 3 draft heads), widths in
// [1, 16]. BadInput naming --tree otherwise.
StatusOr<std::vector<int>> ParseTreeShape(const std::string& text);

// Whitespace-separated token ids, each in [0, vocab). BadInput naming --prompt-ids and `file`.
StatusOr<std::vector<int32_t>> ParsePromptIds(const std::string& text, const std::string& file,
                                              int64_t vocab);

// `source` repeated and cut to n ids (empty when source is).
std::vector<int32_t> RepeatToLength(const std::vector<int32_t>& source, int64_t n);

// Untrained random heads (WriteRandomHeads with `seed`) for `config`: written to a temporary
// file, loaded (mapped), and the file removed.
StatusOr<std::unique_ptr<DraftHeads>> LoadRandomHeads(const ModelConfig& config, uint64_t seed);

// Resets the peak RSS; false when the kernel refused (then PeakRssBytes is process-wide).
bool ResetPeakRss();
// VmHWM in bytes (the peak since the last reset), or getrusage's peak where VmHWM is missing.
int64_t PeakRssSinceResetBytes();

}  // namespace ts::cli
