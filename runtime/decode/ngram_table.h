// NgramTable: token -> its most frequent 4-token continuations, for TokenSwift's n-gram branches
// (DESIGN.md 1.2 and 1.5).
//
// The table sees one token stream (prompt, then committed tokens) and counts every window of
// 1 + kContinuationLen tokens as "key token -> 4-token continuation". Example with the stream
//   5 7 1 2 3 5 7 1 2 3 9
// the windows are (5 -> 7 1 2 3), (7 -> 1 2 3 5), (1 -> 2 3 5 7), (2 -> 3 5 7 1), (3 -> 5 7 1 2),
// (5 -> 7 1 2 3), (7 -> 1 2 3 9); so TopK(5) = {7 1 2 3: count 2} and
// TopK(7) = {1 2 3 5: 1, 1 2 3 9: 1} (equal counts: first seen first).
//
// Feeding. Add() appends tokens to the stream the table has seen so far; windows that straddle
// two Add() calls are counted (the last 4 tokens are kept), so Add(a); Add(b) == Add(a ++ b).
// Each token completes at most one window: O(1) amortised per position (one hash probe, then a
// bounded bubble in the key's top list).
//
// When to feed (DESIGN.md 1.5: preloaded from the prompt, then only committed tokens older than
// the penalty window W). The caller keeps the whole committed stream and calls AddUpTo, which
// feeds stream[fed(), end) and does nothing when end <= fed():
//   table.AddUpTo(stream, prompt_len);                                   // after prefill
//   table.AddUpTo(stream, std::max(prompt_len, stream.size() - W));      // after every step
// With W = 1024 and 5000 committed tokens after a 200-token prompt, tokens [0, 3976) have been fed.
//
// Ranking. TopK orders by count (descending), ties by first-seen order (the window that occurred
// earlier in the stream first): deterministic, independent of hashing. Each key token keeps its
// own top list of max_top_k entries, updated incrementally on every count: counts grow by one at a
// time, so an entry outside the list can only displace the list's last entry; the list is always
// exactly the top max_top_k of that key's bucket and TopK never sorts the bucket.
//
// Memory is fixed at construction: `capacity` distinct windows (hash slots 2x that), one top list
// per distinct key token (at most min(vocab_size, capacity) lists of max_top_k entries), and an
// index buffer for eviction. Nothing allocates after construction, however long the stream.
//
// When full, the table keeps learning (a 300K-token job writes more distinct windows than the
// default 2^18): a window never seen before triggers one eviction round, which
//   1. drops the half of the windows that rank lowest by (count, then the stream position where
//      the window last occurred; older goes first), so rare and stale windows leave;
//   2. halves the survivors' counts, rounding up (aging: the text written since then weighs as much
//      as all that came before, so the table follows a long job's drift);
//   3. rebuilds the hash slots and top lists (O(capacity log capacity), once per capacity/2 new
//      windows: amortised O(log capacity) per token);
// and then counts the new window. Survivors keep their first-seen order for tie-breaking.
// Example (capacity 4): windows A:5 (last seen at 10), B:1 (at 2), C:1 (at 7), D:2 (at 3), then a
// new E at 12: B and C go (lowest counts), A becomes 3 and D 1, E enters with 1.
// Windows whose key token is outside [0, vocab_size) are ignored.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace ts {

class NgramTable {
 public:
  static constexpr int kContinuationLen = 4;

  struct Continuation {
    std::array<int32_t, kContinuationLen> tokens{};
    int32_t count = 0;
  };

  struct Options {
    int32_t vocab_size = 0;      // key tokens are in [0, vocab_size)
    int32_t capacity = 1 << 18;  // distinct (key, continuation) windows kept
    int32_t max_top_k = 20;      // longest list TopK can return (DESIGN.md default k = 20)
  };

  explicit NgramTable(const Options& options);

  // Appends `tokens` to the stream and counts every window it completes.
  void Add(std::span<const int32_t> tokens);
  // Feeds stream[fed(), end): `stream` is the caller's whole stream (its first fed() tokens must be
  // the ones already fed). No-op when end <= fed().
  void AddUpTo(std::span<const int32_t> stream, int64_t end);

  // Writes up to min(k, max_top_k, out.size()) continuations of `token` into out, best first;
  // returns how many. Unknown or out-of-range tokens return 0.
  int TopK(int32_t token, int k, std::span<Continuation> out) const;

  // Forgets everything (same capacity). Not for the hot path: O(capacity).
  void Clear();

  int64_t fed() const { return fed_; }  // stream tokens fed so far
  int32_t distinct_windows() const { return num_entries_; }
  int64_t evicted_windows() const { return evicted_; }  // dropped by eviction rounds so far
  int64_t eviction_rounds() const { return eviction_rounds_; }
  // Bytes the table holds (fixed at construction).
  int64_t bytes() const;
  const Options& options() const { return options_; }

 private:
  struct Entry {
    std::array<int32_t, kContinuationLen> tokens;
    int32_t key;
    int32_t count;
    int32_t top_pos;    // index in its key's top list, or -1
    int64_t last_seen;  // fed() when the window last occurred
  };

  // Counts the window (key -> cont): finds or inserts its entry, then updates key's top list.
  void Count(int32_t key, const std::array<int32_t, kContinuationLen>& cont);
  // Entry index a ranks before entry b: higher count, or equal count and seen first (entries are
  // numbered in first-seen order).
  bool Before(int32_t a, int32_t b) const {
    return entries_[a].count > entries_[b].count ||
           (entries_[a].count == entries_[b].count && a < b);
  }
  void Promote(int32_t entry);
  // One eviction round (see the header comment).
  void Evict();
  // Inserts entry e (key, tokens set) into the hash slots.
  void InsertSlot(int32_t e);

  Options options_;
  std::vector<int32_t> slots_;  // (2^m >= 2 * capacity) entry index or -1; linear probing
  uint64_t slot_mask_ = 0;
  std::vector<Entry> entries_;  // (capacity) in first-seen order
  std::vector<int32_t> order_;  // (capacity) eviction scratch
  int32_t num_entries_ = 0;
  std::vector<int32_t> list_of_key_;  // (vocab_size) top-list index of a key token, or -1
  std::vector<int32_t> top_;          // (num lists, max_top_k) entry indices, best first
  std::vector<int32_t> top_size_;     // (num lists)
  int32_t num_lists_ = 0;
  std::array<int32_t, kContinuationLen> tail_{};  // last kContinuationLen tokens fed, oldest first
  int64_t fed_ = 0;
  int64_t evicted_ = 0;
  int64_t eviction_rounds_ = 0;
};

}  // namespace ts
