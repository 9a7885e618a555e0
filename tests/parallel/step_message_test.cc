#include "parallel/step_message.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace ts {
namespace {

// The wire format as step_message.h documents it, written out by hand: 32-bit little-endian
// words, FNV-1a (32-bit) over the bytes of the used words, zero padding.
std::vector<uint8_t> HandEncode(const std::vector<uint32_t>& words, size_t bytes) {
  std::vector<uint8_t> out(bytes, 0);
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < words.size(); ++i) {
    for (int b = 0; b < 4; ++b) {
      out[4 * i + b] = static_cast<uint8_t>(words[i] >> (8 * b));
      h = (h ^ out[4 * i + b]) * 16777619u;
    }
  }
  for (int b = 0; b < 4; ++b) out[4 * words.size() + b] = static_cast<uint8_t>(h >> (8 * b));
  return out;
}

// Root 7 at position 100; node 1 (token 8) under the root, node 2 (token 9) under node 1,
// node 3 (token 10) under the root.
TreeMessage SmallTree() {
  TreeMessage m;
  m.step = (int64_t{3} << 32) + 5;
  m.base_position = 100;
  m.tokens = {7, 8, 9, 10};
  m.parents = {-1, 0, 1, 0};
  m.positions = {100, 101, 102, 101};
  m.origins = {0, 1, 3, 2};
  return m;
}

TEST(StepCodec, TreeBytesAreTheDocumentedLayout) {
  const StepCodec codec(16);
  std::vector<uint8_t> buf(codec.bytes());
  ASSERT_TRUE(codec.Encode(SmallTree(), buf).ok());
  const std::vector<uint32_t> words = {0x4d545354,  1,   1,   5,   3, 4, 100,  // header
                                       7,           8,   9,   10,              // tokens
                                       0xffffffffu, 0,   1,   0,               // parents
                                       100,         101, 102, 101,             // positions
                                       0x02030100u};                           // origins, packed
  EXPECT_EQ(buf, HandEncode(words, codec.bytes()));
}

TEST(StepCodec, CommitBytesAreTheDocumentedLayout) {
  const StepCodec codec(8);
  CommitMessage m;
  m.step = 41;
  m.path = {0, 2, 5};
  m.next_kind = 2;
  m.next_nodes = 6;
  m.partial_action = 1;
  m.calibrate = true;
  std::vector<uint8_t> buf(codec.bytes());
  ASSERT_TRUE(codec.Encode(m, buf).ok());
  EXPECT_EQ(buf, HandEncode({0x4d545354, 1, 2, 41, 0, 3, 2, 6, 1, 1, 0, 2, 5}, codec.bytes()));
  CommitMessage back;
  ASSERT_TRUE(codec.Decode(buf, back).ok());
  EXPECT_EQ(back.step, 41);
  EXPECT_EQ(back.path, m.path);
  EXPECT_EQ(back.next_kind, 2);
  EXPECT_EQ(back.next_nodes, 6);
  EXPECT_EQ(back.partial_action, 1);
  EXPECT_TRUE(back.calibrate);
}

// Random trees of every size up to the capacity survive the round trip unchanged.
TEST(StepCodec, RandomTreesRoundTrip) {
  std::mt19937 rng(3);
  const int cap = 64;
  const StepCodec codec(cap);
  std::vector<uint8_t> buf(codec.bytes());
  for (int n = 1; n <= cap; ++n) {
    TreeMessage m;
    m.step = n * 1000;
    m.base_position = static_cast<int32_t>(rng() % 100000);
    for (int i = 0; i < n; ++i) {
      const int p = i == 0 ? -1 : static_cast<int>(rng() % i);
      m.tokens.push_back(static_cast<int32_t>(rng() % 150000));
      m.parents.push_back(p);
      m.positions.push_back(p < 0 ? m.base_position : m.positions[p] + 1);
      m.origins.push_back(static_cast<uint8_t>(rng() % 4));
    }
    ASSERT_TRUE(codec.Encode(m, buf).ok());
    TreeMessage back;
    const Status s = codec.Decode(buf, back);
    ASSERT_TRUE(s.ok()) << n << ": " << s;
    EXPECT_EQ(back.step, m.step);
    EXPECT_EQ(back.base_position, m.base_position);
    EXPECT_EQ(back.tokens, m.tokens);
    EXPECT_EQ(back.parents, m.parents);
    EXPECT_EQ(back.positions, m.positions);
    EXPECT_EQ(back.origins, m.origins);
  }
}

// Each kind of damage is refused with the field it concerns in the message.
TEST(StepCodec, DamagedMessagesNameTheField) {
  const StepCodec codec(16);
  std::vector<uint8_t> good(codec.bytes());
  ASSERT_TRUE(codec.Encode(SmallTree(), good).ok());
  TreeMessage out;
  auto expect = [&](std::vector<uint8_t> buf, const char* field) {
    const Status s = codec.Decode(buf, out);
    EXPECT_FALSE(s.ok()) << field;
    EXPECT_NE(std::string(s.message()).find(field), std::string::npos) << s;
  };
  auto with_word = [&](size_t i, uint32_t w) {
    std::vector<uint8_t> b = good;
    for (int k = 0; k < 4; ++k) b[4 * i + k] = static_cast<uint8_t>(w >> (8 * k));
    return b;
  };
  expect(with_word(0, 0), "magic");
  expect(with_word(1, 2), "version");
  expect(with_word(2, 2), "type");
  expect(with_word(5, 17), "nodes");
  expect(with_word(5, 0), "nodes");
  expect(with_word(8, 55), "checksum");  // a token changed in flight
  // Structurally wrong trees with a valid checksum (what a buggy coordinator would send).
  auto tree_with = [&](auto edit) {
    TreeMessage m = SmallTree();
    edit(m);
    std::vector<uint8_t> b(codec.bytes());
    EXPECT_TRUE(codec.Encode(m, b).ok());
    return b;
  };
  expect(tree_with([](TreeMessage& m) { m.parents[2] = 2; }), "parent");
  expect(tree_with([](TreeMessage& m) { m.parents[0] = 0; }), "parent");
  expect(tree_with([](TreeMessage& m) { m.positions[3] = 102; }), "position");
  expect(tree_with([](TreeMessage& m) { m.positions[0] = 99; }), "position");
  expect(std::vector<uint8_t>(good.begin(), good.end() - 4), "size");
  // A commit message is not a tree message.
  CommitMessage c;
  c.path = {0};
  std::vector<uint8_t> b(codec.bytes());
  ASSERT_TRUE(codec.Encode(c, b).ok());
  expect(b, "type");
  CommitMessage back;
  c.path = {0, 3, 2};
  ASSERT_TRUE(codec.Encode(c, b).ok());
  EXPECT_FALSE(codec.Decode(b, back).ok());  // path indices must increase
  c.path = {1, 3};
  ASSERT_TRUE(codec.Encode(c, b).ok());
  EXPECT_FALSE(codec.Decode(b, back).ok());  // the root comes first
  c.path = {0};
  c.next_nodes = 17;
  ASSERT_TRUE(codec.Encode(c, b).ok());
  EXPECT_FALSE(codec.Decode(b, back).ok());  // more rows than the tree capacity
}

TEST(StepCodec, TooLargeToEncode) {
  const StepCodec codec(4);
  TreeMessage m = SmallTree();
  m.tokens.push_back(11);
  m.parents.push_back(0);
  m.positions.push_back(101);
  m.origins.push_back(0);
  std::vector<uint8_t> buf(codec.bytes());
  EXPECT_FALSE(codec.Encode(m, buf).ok());
  CommitMessage c;
  c.path = {0, 1, 2, 3, 4};
  EXPECT_FALSE(codec.Encode(c, buf).ok());
}

}  // namespace
}  // namespace ts
