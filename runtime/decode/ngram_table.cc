#include "runtime/decode/ngram_table.h"

#include <algorithm>

#include "common/hash_random.h"

namespace ts {
namespace {

uint64_t HashWindow(int32_t key, const std::array<int32_t, NgramTable::kContinuationLen>& cont) {
  uint64_t h = SplitMix64(static_cast<uint32_t>(key));
  for (int32_t t : cont) h = SplitMix64(h ^ static_cast<uint32_t>(t));
  return h;
}

}  // namespace

NgramTable::NgramTable(const Options& options) : options_(options) {
  options_.vocab_size = std::max(options_.vocab_size, 0);
  options_.capacity = std::max(options_.capacity, 1);
  options_.max_top_k = std::max(options_.max_top_k, 1);
  uint64_t n_slots = 1;
  while (n_slots < 2 * static_cast<uint64_t>(options_.capacity)) n_slots <<= 1;
  slots_.assign(n_slots, -1);
  slot_mask_ = n_slots - 1;
  entries_.resize(options_.capacity);
  order_.resize(options_.capacity);
  list_of_key_.assign(options_.vocab_size, -1);
  const int32_t max_lists = std::min(options_.vocab_size, options_.capacity);
  top_.resize(static_cast<size_t>(max_lists) * options_.max_top_k);
  top_size_.resize(max_lists);
}

void NgramTable::Clear() {
  std::fill(slots_.begin(), slots_.end(), -1);
  std::fill(list_of_key_.begin(), list_of_key_.end(), -1);
  num_entries_ = 0;
  num_lists_ = 0;
  fed_ = 0;
  evicted_ = 0;
  eviction_rounds_ = 0;
}

int64_t NgramTable::bytes() const {
  return static_cast<int64_t>(
      slots_.capacity() * sizeof(int32_t) + entries_.capacity() * sizeof(Entry) +
      order_.capacity() * sizeof(int32_t) + list_of_key_.capacity() * sizeof(int32_t) +
      top_.capacity() * sizeof(int32_t) + top_size_.capacity() * sizeof(int32_t));
}

void NgramTable::Add(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    if (fed_ >= kContinuationLen) {
      // Window (tail_[0] -> tail_[1..3], t): key is the token 4 positions before t.
      const std::array<int32_t, kContinuationLen> cont = {tail_[1], tail_[2], tail_[3], t};
      Count(tail_[0], cont);
    }
    // Shift the tail; before 4 tokens are fed, fill it from the front.
    if (fed_ < kContinuationLen) {
      tail_[fed_] = t;
    } else {
      for (int i = 0; i + 1 < kContinuationLen; ++i) tail_[i] = tail_[i + 1];
      tail_[kContinuationLen - 1] = t;
    }
    ++fed_;
  }
}

void NgramTable::AddUpTo(std::span<const int32_t> stream, int64_t end) {
  end = std::min<int64_t>(end, static_cast<int64_t>(stream.size()));
  if (end <= fed_) return;
  Add(stream.subspan(fed_, end - fed_));
}

void NgramTable::Count(int32_t key, const std::array<int32_t, kContinuationLen>& cont) {
  if (key < 0 || key >= options_.vocab_size) return;
  const uint64_t hash = HashWindow(key, cont);
  uint64_t slot = hash & slot_mask_;
  while (true) {
    const int32_t e = slots_[slot];
    if (e < 0) break;
    if (entries_[e].key == key && entries_[e].tokens == cont) {
      ++entries_[e].count;
      entries_[e].last_seen = fed_;
      Promote(e);
      return;
    }
    slot = (slot + 1) & slot_mask_;
  }
  // A window never seen before.
  if (num_entries_ == options_.capacity) {
    Evict();
    slot = hash & slot_mask_;
    while (slots_[slot] >= 0) slot = (slot + 1) & slot_mask_;
  }
  const int32_t e = num_entries_++;
  entries_[e] = Entry{cont, key, 1, -1, fed_};
  slots_[slot] = e;
  if (list_of_key_[key] < 0) {
    // num_lists_ < min(vocab, capacity): each list holds at least one distinct entry.
    list_of_key_[key] = num_lists_;
    top_size_[num_lists_] = 0;
    ++num_lists_;
  }
  Promote(e);
}

void NgramTable::InsertSlot(int32_t e) {
  uint64_t slot = HashWindow(entries_[e].key, entries_[e].tokens) & slot_mask_;
  while (slots_[slot] >= 0) slot = (slot + 1) & slot_mask_;
  slots_[slot] = e;
}

void NgramTable::Evict() {
  const int32_t n = num_entries_;
  const int32_t drop = std::max(1, n / 2);
  // 1. The `drop` lowest-ranked windows by (count, last_seen) are marked with count 0.
  for (int32_t i = 0; i < n; ++i) order_[i] = i;
  std::nth_element(order_.begin(), order_.begin() + (drop - 1), order_.begin() + n,
                   [&](int32_t a, int32_t b) {
                     const Entry& x = entries_[a];
                     const Entry& y = entries_[b];
                     return x.count != y.count ? x.count < y.count : x.last_seen < y.last_seen;
                   });
  for (int32_t i = 0; i < drop; ++i) entries_[order_[i]].count = 0;
  // 2. Survivors move to the front in first-seen order, counts halved (rounding up).
  int32_t kept = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (entries_[i].count == 0) continue;
    Entry& x = entries_[kept++];
    x = entries_[i];
    x.count = (x.count + 1) / 2;
    x.top_pos = -1;
  }
  num_entries_ = kept;
  evicted_ += n - kept;
  ++eviction_rounds_;
  // 3. Hash slots and top lists from scratch. Lists: each key's entries sorted by rank, the first
  // max_top_k kept; built from the entries sorted by (key's first appearance, rank).
  std::fill(slots_.begin(), slots_.end(), -1);
  std::fill(list_of_key_.begin(), list_of_key_.end(), -1);
  num_lists_ = 0;
  for (int32_t e = 0; e < kept; ++e) InsertSlot(e);
  for (int32_t i = 0; i < kept; ++i) order_[i] = i;
  std::sort(order_.begin(), order_.begin() + kept, [&](int32_t a, int32_t b) {
    if (entries_[a].key != entries_[b].key) return entries_[a].key < entries_[b].key;
    return Before(a, b);
  });
  for (int32_t i = 0; i < kept; ++i) {
    const int32_t e = order_[i];
    const int32_t key = entries_[e].key;
    if (list_of_key_[key] < 0) {
      list_of_key_[key] = num_lists_;
      top_size_[num_lists_] = 0;
      ++num_lists_;
    }
    const int32_t list = list_of_key_[key];
    int32_t& size = top_size_[list];
    if (size < options_.max_top_k) {
      top_[static_cast<size_t>(list) * options_.max_top_k + size] = e;
      entries_[e].top_pos = size++;
    }
  }
}

// Keeps list_of_key_[key]'s top list exactly the best max_top_k entries of that key after `entry`
// gained one count (or was inserted with count 1). Only `entry` changed rank, and only upwards:
//  - if it is in the list, bubble it towards the front;
//  - else if the list has room, append it and bubble (room means the list holds the whole bucket);
//  - else if it now ranks before the last entry, it replaces the last one and bubbles; otherwise
//    the list is unchanged.
// Example, max_top_k = 2, list [A:3, B:2], C goes 2 -> 3 (C seen after A and B): C beats B
// (count), not A (tie, A seen first): list becomes [A:3, C:3].
void NgramTable::Promote(int32_t entry) {
  const int32_t list = list_of_key_[entries_[entry].key];
  int32_t* top = top_.data() + static_cast<size_t>(list) * options_.max_top_k;
  int32_t& size = top_size_[list];
  int32_t pos = entries_[entry].top_pos;
  if (pos < 0) {
    if (size < options_.max_top_k) {
      pos = size++;
    } else if (Before(entry, top[size - 1])) {
      pos = size - 1;
      entries_[top[pos]].top_pos = -1;  // displaced
    } else {
      return;
    }
    top[pos] = entry;
  }
  while (pos > 0 && Before(entry, top[pos - 1])) {
    top[pos] = top[pos - 1];
    entries_[top[pos]].top_pos = pos;
    --pos;
  }
  top[pos] = entry;
  entries_[entry].top_pos = pos;
}

int NgramTable::TopK(int32_t token, int k, std::span<Continuation> out) const {
  if (token < 0 || token >= options_.vocab_size || list_of_key_[token] < 0) return 0;
  const int32_t list = list_of_key_[token];
  const int32_t* top = top_.data() + static_cast<size_t>(list) * options_.max_top_k;
  const int n = std::min({k, top_size_[list], static_cast<int>(out.size())});
  for (int i = 0; i < n; ++i) {
    out[i].tokens = entries_[top[i]].tokens;
    out[i].count = entries_[top[i]].count;
  }
  return std::max(n, 0);
}

}  // namespace ts
