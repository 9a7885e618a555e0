#include "runtime/decode/ngram_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace ts {
namespace {

using Cont = std::array<int32_t, NgramTable::kContinuationLen>;

// Straightforward reference: a map of every (key, continuation) window with its count, the stream
// index of its first occurrence (insertion) and of its last; TopK sorts the whole bucket. When
// full, a new window first evicts the half that ranks lowest by (count, last occurrence) and
// halves the rest (rounding up), as the header of ngram_table.h says.
class ReferenceTable {
 public:
  explicit ReferenceTable(int32_t capacity) : capacity_(capacity) {}

  void AddStream(const std::vector<int32_t>& s) {
    for (size_t i = 0; i + NgramTable::kContinuationLen < s.size(); ++i) {
      Cont c;
      for (int j = 0; j < NgramTable::kContinuationLen; ++j) c[j] = s[i + 1 + j];
      auto key = std::make_pair(s[i], c);
      auto it = windows_.find(key);
      if (it != windows_.end()) {
        ++it->second.count;
        it->second.last = static_cast<int64_t>(i);
        continue;
      }
      if (static_cast<int32_t>(windows_.size()) == capacity_) Evict();
      windows_[key] = {1, static_cast<int64_t>(i), static_cast<int64_t>(i)};
    }
  }

  std::vector<NgramTable::Continuation> TopK(int32_t token, int k) const {
    std::vector<std::pair<std::pair<int32_t, int64_t>, Cont>> bucket;  // ((count, first), cont)
    for (const auto& [key, w] : windows_) {
      if (key.first == token) bucket.push_back({{w.count, w.first}, key.second});
    }
    std::sort(bucket.begin(), bucket.end(), [](const auto& a, const auto& b) {
      if (a.first.first != b.first.first) return a.first.first > b.first.first;
      return a.first.second < b.first.second;
    });
    std::vector<NgramTable::Continuation> out;
    for (int i = 0; i < k && i < static_cast<int>(bucket.size()); ++i) {
      out.push_back({bucket[i].second, bucket[i].first.first});
    }
    return out;
  }

  int64_t evicted() const { return evicted_; }
  size_t distinct() const { return windows_.size(); }

 private:
  struct Window {
    int32_t count;
    int64_t first, last;
  };
  void Evict() {
    std::vector<std::pair<std::pair<int32_t, int64_t>, std::pair<int32_t, Cont>>> all;
    for (const auto& [key, w] : windows_) all.push_back({{w.count, w.last}, key});
    std::sort(all.begin(), all.end());
    const size_t drop = std::max<size_t>(1, all.size() / 2);
    for (size_t i = 0; i < drop; ++i) windows_.erase(all[i].second);
    evicted_ += static_cast<int64_t>(drop);
    for (auto& [key, w] : windows_) w.count = (w.count + 1) / 2;
  }

  int32_t capacity_;
  std::map<std::pair<int32_t, Cont>, Window> windows_;
  int64_t evicted_ = 0;
};

std::vector<NgramTable::Continuation> Query(const NgramTable& table, int32_t token, int k) {
  std::vector<NgramTable::Continuation> out(std::max(k, 0) + 3);
  const int n = table.TopK(token, k, out);
  out.resize(n);
  return out;
}

void ExpectSame(const std::vector<NgramTable::Continuation>& got,
                const std::vector<NgramTable::Continuation>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << what << " rank " << i;
    EXPECT_EQ(got[i].count, want[i].count) << what << " rank " << i;
  }
}

std::vector<int32_t> RandomStream(std::mt19937& rng, int vocab, int len) {
  // Skewed so some windows repeat often and counts tie.
  std::vector<int32_t> s(len);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::bernoulli_distribution repeat(0.3);
  for (int i = 0; i < len; ++i) {
    s[i] = (i >= 5 && repeat(rng)) ? s[i - 5] : tok(rng);
  }
  return s;
}

TEST(NgramTable, WorkedExampleFromHeader) {
  NgramTable table({.vocab_size = 10, .capacity = 64, .max_top_k = 4});
  const std::vector<int32_t> s = {5, 7, 1, 2, 3, 5, 7, 1, 2, 3, 9};
  table.Add(s);
  EXPECT_EQ(table.fed(), 11);
  EXPECT_EQ(table.distinct_windows(), 6);
  auto top5 = Query(table, 5, 4);
  ASSERT_EQ(top5.size(), 1u);
  EXPECT_EQ(top5[0].tokens, (Cont{7, 1, 2, 3}));
  EXPECT_EQ(top5[0].count, 2);
  auto top7 = Query(table, 7, 4);
  ASSERT_EQ(top7.size(), 2u);
  EXPECT_EQ(top7[0].tokens, (Cont{1, 2, 3, 5}));  // tie: seen first
  EXPECT_EQ(top7[1].tokens, (Cont{1, 2, 3, 9}));
  EXPECT_EQ(Query(table, 9, 4).size(), 0u);  // 9 has no continuation yet
}

TEST(NgramTable, TiesBreakByFirstSeenThenCountOvertakes) {
  NgramTable table({.vocab_size = 10, .capacity = 64, .max_top_k = 2});
  // Key 0 with continuations A = 1111, B = 2222, C = 3333 (separated by 9s).
  table.Add(std::vector<int32_t>{0, 1, 1, 1, 1, 9, 0, 2, 2, 2, 2, 9, 0, 3, 3, 3, 3, 9});
  auto top = Query(table, 0, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].tokens, (Cont{1, 1, 1, 1}));
  EXPECT_EQ(top[1].tokens, (Cont{2, 2, 2, 2}));
  // C reaches 2: it overtakes A and B (count 1).
  table.Add(std::vector<int32_t>{0, 3, 3, 3, 3, 9});
  top = Query(table, 0, 2);
  EXPECT_EQ(top[0].tokens, (Cont{3, 3, 3, 3}));
  EXPECT_EQ(top[0].count, 2);
  EXPECT_EQ(top[1].tokens, (Cont{1, 1, 1, 1}));
  // B reaches 2: tie with C, C was seen after B, so B goes first; A drops out of the top 2.
  table.Add(std::vector<int32_t>{0, 2, 2, 2, 2, 9});
  top = Query(table, 0, 2);
  EXPECT_EQ(top[0].tokens, (Cont{2, 2, 2, 2}));
  EXPECT_EQ(top[1].tokens, (Cont{3, 3, 3, 3}));
}

TEST(NgramTable, MatchesReferenceOnRandomStreams) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 60; ++trial) {
    const int vocab = 2 + trial % 5;  // 2..6: many collisions and ties
    const int len = static_cast<int>(rng() % 1500);
    const int max_top_k = 1 + trial % 7;
    const std::vector<int32_t> s = RandomStream(rng, vocab, len);
    NgramTable table({.vocab_size = vocab, .capacity = 1 << 14, .max_top_k = max_top_k});
    // Feed in random chunks: windows straddling chunks must count.
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t n = std::min<size_t>(s.size() - pos, rng() % 9);
      table.Add(std::span<const int32_t>(s).subspan(pos, n));
      pos += n;
    }
    ReferenceTable ref(1 << 14);
    ref.AddStream(s);
    EXPECT_EQ(table.distinct_windows(), static_cast<int32_t>(ref.distinct()));
    for (int32_t t = -1; t <= vocab; ++t) {
      for (int k : {0, 1, 3, max_top_k, max_top_k + 4}) {
        ExpectSame(Query(table, t, k), ref.TopK(t, std::min(k, max_top_k)),
                   "trial " + std::to_string(trial) + " token " + std::to_string(t) + " k " +
                       std::to_string(k));
      }
    }
  }
}

TEST(NgramTable, OutputSpanShorterThanK) {
  NgramTable table({.vocab_size = 3, .capacity = 256, .max_top_k = 8});
  std::mt19937 rng(7);
  const auto s = RandomStream(rng, 3, 400);
  table.Add(s);
  std::vector<NgramTable::Continuation> out(2);
  EXPECT_EQ(table.TopK(0, 8, out), 2);
  ReferenceTable ref(256);
  ref.AddStream(s);
  ExpectSame(out, ref.TopK(0, 2), "short out");
}

TEST(NgramTable, AddUpToFeedsOnlyTokensOlderThanWindow) {
  std::mt19937 rng(99);
  const auto stream = RandomStream(rng, 4, 3000);
  const int64_t prompt_len = 200, window = 256;
  NgramTable table({.vocab_size = 4, .capacity = 4096, .max_top_k = 5});
  table.AddUpTo(stream, prompt_len);  // after prefill: the whole prompt
  EXPECT_EQ(table.fed(), prompt_len);
  // Steps commit 1..6 tokens; after each, feed what is older than the window.
  int64_t committed = prompt_len;
  while (committed < static_cast<int64_t>(stream.size())) {
    committed = std::min<int64_t>(stream.size(), committed + 1 + rng() % 6);
    table.AddUpTo(std::span<const int32_t>(stream).first(committed),
                  std::max(prompt_len, committed - window));
    EXPECT_EQ(table.fed(), std::max(prompt_len, committed - window));
  }
  table.AddUpTo(stream, 10);  // going backwards is a no-op
  EXPECT_EQ(table.fed(), static_cast<int64_t>(stream.size()) - window);
  ReferenceTable ref(4096);
  ref.AddStream(std::vector<int32_t>(stream.begin(), stream.end() - window));
  for (int32_t t = 0; t < 4; ++t) ExpectSame(Query(table, t, 5), ref.TopK(t, 5), "addupto");
}

TEST(NgramTable, FullTableEvictsAndAgesLikeTheReference) {
  std::mt19937 rng(5);
  for (int capacity : {1, 2, 7, 30, 200}) {
    for (int vocab : {3, 5, 40}) {
      const auto s = RandomStream(rng, vocab, 3000);
      NgramTable table({.vocab_size = vocab, .capacity = capacity, .max_top_k = 4});
      // In pieces, checking after each: eviction rounds fall inside and between Add calls.
      for (size_t begin = 0; begin < s.size(); begin += 500) {
        table.AddUpTo(s, static_cast<int64_t>(begin) + 500);
        ReferenceTable fresh(capacity);  // fed the whole prefix each time
        fresh.AddStream(std::vector<int32_t>(s.begin(), s.begin() + table.fed()));
        const std::string what =
            "capacity " + std::to_string(capacity) + " vocab " + std::to_string(vocab);
        EXPECT_EQ(table.distinct_windows(), static_cast<int32_t>(fresh.distinct())) << what;
        EXPECT_EQ(table.evicted_windows(), fresh.evicted()) << what;
        for (int32_t t = 0; t < vocab; ++t) ExpectSame(Query(table, t, 4), fresh.TopK(t, 4), what);
      }
      EXPECT_GT(table.eviction_rounds(), 0);
    }
  }
}

// A job past 300K tokens: the table's memory does not grow, evictions keep it learning, and a
// phrase that only starts repeating after the table filled up is found.
TEST(NgramTable, LongJobKeepsLearningInFlatMemory) {
  const int32_t vocab = 49152;  // SmolLM2's
  NgramTable table({.vocab_size = vocab, .capacity = 1 << 18, .max_top_k = 20});
  const int64_t bytes = table.bytes();
  EXPECT_LT(bytes, 32 << 20);
  std::mt19937 rng(9);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  std::vector<int32_t> chunk(10000);
  const std::vector<int32_t> phrase = {101, 202, 303, 404, 505};
  int64_t fed = 0;
  int64_t phrases = 0;
  while (fed < 400000) {
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = tok(rng);
    if (fed >= 300000) {
      // After 300K tokens: the phrase 8 times per chunk, among fresh random text.
      for (size_t at = 100; at + phrase.size() < chunk.size(); at += 1200) {
        std::copy(phrase.begin(), phrase.end(), chunk.begin() + at);
        ++phrases;
      }
    }
    table.Add(chunk);
    fed += static_cast<int64_t>(chunk.size());
    EXPECT_EQ(table.bytes(), bytes) << "after " << fed << " tokens";
    EXPECT_LE(table.distinct_windows(), 1 << 18);
  }
  EXPECT_EQ(table.fed(), 400000);
  EXPECT_GE(table.eviction_rounds(), 1);
  EXPECT_GT(table.evicted_windows(), 100000);
  std::vector<NgramTable::Continuation> out(20);
  ASSERT_GE(table.TopK(101, 20, out), 1);
  EXPECT_EQ(out[0].tokens, (Cont{202, 303, 404, 505}));
  EXPECT_GE(out[0].count, phrases / 2);  // at most one halving since it began
}

TEST(NgramTable, ShortStreamsAndOutOfRangeKeys) {
  NgramTable table({.vocab_size = 4, .capacity = 16, .max_top_k = 3});
  table.Add(std::vector<int32_t>{1, 2, 3, 1});  // 4 tokens: no complete window
  EXPECT_EQ(table.distinct_windows(), 0);
  EXPECT_EQ(Query(table, 1, 3).size(), 0u);
  table.Add(std::vector<int32_t>{2});  // completes (1 -> 2 3 1 2)
  EXPECT_EQ(Query(table, 1, 3).size(), 1u);
  // Key 17 is outside the vocabulary: its windows are ignored, continuation tokens may be anything.
  table.Add(std::vector<int32_t>{17, 0, 0, 0, 0});
  EXPECT_EQ(Query(table, 17, 3).size(), 0u);
  auto top3 = Query(table, 3, 3);  // (3 -> 1 2 17 0)
  ASSERT_EQ(top3.size(), 1u);
  EXPECT_EQ(top3[0].tokens, (Cont{1, 2, 17, 0}));
  EXPECT_EQ(Query(table, -1, 3).size(), 0u);
}

TEST(NgramTable, ClearForgetsEverything) {
  std::mt19937 rng(3);
  const auto a = RandomStream(rng, 4, 500), b = RandomStream(rng, 4, 500);
  NgramTable table({.vocab_size = 4, .capacity = 100, .max_top_k = 4});
  table.Add(a);
  table.Clear();
  EXPECT_EQ(table.fed(), 0);
  table.Add(b);
  ReferenceTable ref(100);
  ref.AddStream(b);
  EXPECT_EQ(table.evicted_windows(), ref.evicted());
  for (int32_t t = 0; t < 4; ++t) ExpectSame(Query(table, t, 4), ref.TopK(t, 4), "clear");
}

}  // namespace
}  // namespace ts
