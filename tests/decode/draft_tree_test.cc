#include "runtime/decode/draft_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace ts {
namespace {

using Path = std::vector<int32_t>;  // tokens from depth 1 down to a node (root excluded)

// The token path of node i (root excluded), from parent pointers.
Path NodePath(const DraftTree& tree, int i) {
  Path p;
  for (; i > 0; i = tree.parents()[i]) p.push_back(tree.tokens()[i]);
  std::reverse(p.begin(), p.end());
  return p;
}

// Every node's children carry distinct tokens (the trie property AcceptPath relies on).
void ExpectSiblingsDistinct(const DraftTree& tree) {
  for (int i = 0; i < tree.size(); ++i) {
    std::set<int32_t> seen;
    for (int32_t c : tree.Children(i)) {
      EXPECT_EQ(tree.parents()[c], i);
      EXPECT_TRUE(seen.insert(tree.tokens()[c]).second)
          << "node " << i << " has two children " << tree.tokens()[c];
    }
  }
}

// All static-tree paths, as Medusa's cartesian product of ranks, in the documented order.
std::vector<Path> StaticPaths(const std::vector<int>& shape,
                              const std::vector<std::vector<int32_t>>& topk) {
  std::vector<Path> paths, level = {Path{}};
  for (size_t d = 0; d < shape.size() && d < topk.size(); ++d) {
    std::vector<Path> next;
    for (const Path& p : level) {
      for (int r = 0; r < shape[d] && r < static_cast<int>(topk[d].size()); ++r) {
        Path q = p;
        q.push_back(topk[d][r]);
        next.push_back(q);
      }
    }
    paths.insert(paths.end(), next.begin(), next.end());
    level = next;
  }
  return paths;
}

// Reference trie: the set of all prefixes of all root-to-leaf strings (each prefix once).
std::set<Path> AllPrefixes(const std::vector<Path>& paths, size_t max_depth) {
  std::set<Path> out;
  for (const Path& p : paths) {
    for (size_t len = 1; len <= std::min(p.size(), max_depth); ++len) {
      out.insert(Path(p.begin(), p.begin() + len));
    }
  }
  return out;
}

struct Inputs {
  std::vector<std::vector<int32_t>> topk;
  std::vector<Path> branches;
};

void Build(DraftTree& tree, int32_t root, int32_t cached_len, const Inputs& in) {
  std::array<std::span<const int32_t>, 8> lists;
  for (size_t d = 0; d < in.topk.size(); ++d) lists[d] = in.topk[d];
  tree.Reset(root, cached_len);
  tree.AddHeadTree(std::span<const std::span<const int32_t>>(lists.data(), in.topk.size()));
  for (const Path& b : in.branches) tree.AddBranch(b);
  tree.Finalize();
}

// Random inputs over a small vocabulary so branches collide with the static tree and each other.
Inputs RandomInputs(std::mt19937& rng, int vocab, int n_branches) {
  Inputs in;
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  for (int d = 0; d < 4; ++d) {
    std::vector<int32_t> all(vocab);
    for (int v = 0; v < vocab; ++v) all[v] = v;
    std::shuffle(all.begin(), all.end(), rng);
    all.resize(std::min(vocab, 3));  // a top-k list: distinct tokens
    in.topk.push_back(all);
  }
  for (int b = 0; b < n_branches; ++b) {
    Path p(1 + rng() % 6);  // up to 6: longer than max_depth is cut
    for (auto& t : p) t = tok(rng);
    if (rng() % 2) p[0] = in.topk[0][0];  // like TokenSwift: keyed by head 0's top-1
    in.branches.push_back(p);
  }
  return in;
}

TEST(DraftTree, StaticShape1333IsFortyDraftNodesBreadthFirst) {
  DraftTree tree(DraftTreeOptions{});
  const Inputs in{{{100}, {200, 201, 202}, {300, 301, 302}, {400, 401, 402}}, {}};
  Build(tree, 7, 50, in);
  ASSERT_EQ(tree.size(), 41);
  EXPECT_EQ(tree.tokens()[0], 7);
  EXPECT_EQ(tree.parents()[0], -1);
  EXPECT_EQ(tree.tokens()[1], 100);
  EXPECT_EQ(tree.parents()[1], 0);
  for (int i = 2; i <= 4; ++i) {
    EXPECT_EQ(tree.tokens()[i], 200 + (i - 2));
    EXPECT_EQ(tree.parents()[i], 1);
  }
  for (int i = 5; i <= 13; ++i) {
    EXPECT_EQ(tree.tokens()[i], 300 + (i - 5) % 3);
    EXPECT_EQ(tree.parents()[i], 2 + (i - 5) / 3);
    EXPECT_EQ(tree.depths()[i], 3);
  }
  for (int i = 14; i <= 40; ++i) {
    EXPECT_EQ(tree.tokens()[i], 400 + (i - 14) % 3);
    EXPECT_EQ(tree.parents()[i], 5 + (i - 14) / 3);
    EXPECT_EQ(tree.positions()[i], 54);
    EXPECT_EQ(tree.slots()[i], 50 + i);
    EXPECT_EQ(tree.origins()[i], DraftTree::kFromHeads);
  }
  EXPECT_EQ(tree.origins()[0], 0);
  // Same order as the Medusa-style cartesian enumeration.
  const auto paths = StaticPaths({1, 3, 3, 3}, in.topk);
  ASSERT_EQ(paths.size(), 40u);
  for (int i = 1; i <= 40; ++i) EXPECT_EQ(NodePath(tree, i), paths[i - 1]) << i;
}

TEST(DraftTree, MaskMatchesHeaderExample) {
  DraftTree tree(DraftTreeOptions{.static_shape = {}, .max_depth = 4, .max_nodes = 8});
  tree.Reset(/*root_token=*/1, /*cached_len=*/10);
  tree.AddBranch(std::vector<int32_t>{2, 3});  // nodes 1 (a), 2 (b)
  tree.AddBranch(std::vector<int32_t>{4});     // node 3 (c)
  tree.Finalize();
  auto v = [](auto s) { return std::vector<int32_t>(s.begin(), s.end()); };
  EXPECT_EQ(v(tree.positions()), (std::vector<int32_t>{10, 11, 12, 11}));
  EXPECT_EQ(v(tree.slots()), (std::vector<int32_t>{10, 11, 12, 13}));
  EXPECT_EQ(v(tree.prefix_len()), (std::vector<int32_t>{10, 10, 10, 10}));
  EXPECT_EQ(v(tree.extra_begin()), (std::vector<int32_t>{0, 1, 3, 6, 8}));
  EXPECT_EQ(v(tree.extra_slots()), (std::vector<int32_t>{10, 10, 11, 10, 11, 12, 10, 13}));
  const AttentionMask m = tree.mask();
  EXPECT_EQ(m.prefix_len, tree.prefix_len().data());
  EXPECT_EQ(m.extra_begin[4], 8);
  EXPECT_EQ(m.extra_slots[7], 13);
  EXPECT_EQ(v(tree.Children(0)), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(v(tree.Children(1)), (std::vector<int32_t>{2}));
  EXPECT_TRUE(tree.Children(2).empty());
}

TEST(DraftTree, TrieMergeMatchesAllPrefixesReference) {
  std::mt19937 rng(2025);
  DraftTree tree(DraftTreeOptions{.max_depth = 5, .max_nodes = 512});
  for (int trial = 0; trial < 200; ++trial) {
    const int vocab = 2 + trial % 6;
    const Inputs in = RandomInputs(rng, vocab, static_cast<int>(rng() % 25));
    Build(tree, 99, 1000, in);
    std::vector<Path> all = StaticPaths({1, 3, 3, 3}, in.topk);
    all.insert(all.end(), in.branches.begin(), in.branches.end());
    const std::set<Path> want = AllPrefixes(all, 5);
    std::set<Path> got;
    for (int i = 1; i < tree.size(); ++i) got.insert(NodePath(tree, i));
    EXPECT_EQ(static_cast<size_t>(tree.size() - 1), want.size()) << "trial " << trial;
    EXPECT_EQ(got, want) << "trial " << trial;
    ExpectSiblingsDistinct(tree);
    // Origins: heads bit iff a static prefix; n-gram bit iff a branch prefix.
    const std::set<Path> heads = AllPrefixes(StaticPaths({1, 3, 3, 3}, in.topk), 5);
    const std::set<Path> ngram = AllPrefixes(in.branches, 5);
    for (int i = 1; i < tree.size(); ++i) {
      const Path p = NodePath(tree, i);
      EXPECT_EQ((tree.origins()[i] & DraftTree::kFromHeads) != 0, heads.count(p) == 1);
      EXPECT_EQ((tree.origins()[i] & DraftTree::kFromNgram) != 0, ngram.count(p) == 1);
    }
  }
}

TEST(DraftTree, ArraysMatchParentPointerReference) {
  std::mt19937 rng(11);
  DraftTree tree(DraftTreeOptions{.max_depth = 5, .max_nodes = 96});
  for (int trial = 0; trial < 200; ++trial) {
    const Inputs in = RandomInputs(rng, 3 + trial % 5, static_cast<int>(rng() % 30));
    const int32_t cached_len = static_cast<int32_t>(rng() % 5000);
    Build(tree, 5, cached_len, in);
    std::vector<int32_t> begin = {0}, extra;
    for (int i = 0; i < tree.size(); ++i) {
      EXPECT_LT(tree.parents()[i], i);  // topological order
      std::vector<int32_t> anc;
      int depth = 0;
      for (int a = i; a >= 0; a = tree.parents()[a]) anc.push_back(cached_len + a);
      depth = static_cast<int>(anc.size()) - 1;
      std::reverse(anc.begin(), anc.end());
      extra.insert(extra.end(), anc.begin(), anc.end());
      begin.push_back(static_cast<int32_t>(extra.size()));
      EXPECT_EQ(tree.depths()[i], depth);
      EXPECT_EQ(tree.positions()[i], cached_len + depth);
      EXPECT_EQ(tree.slots()[i], cached_len + i);
      EXPECT_EQ(tree.prefix_len()[i], cached_len);
    }
    EXPECT_EQ(std::vector<int32_t>(tree.extra_begin().begin(), tree.extra_begin().end()), begin);
    EXPECT_EQ(std::vector<int32_t>(tree.extra_slots().begin(), tree.extra_slots().end()), extra);
    // Children lists are the inverse of parent pointers, in creation order.
    for (int p = 0; p < tree.size(); ++p) {
      std::vector<int32_t> want;
      for (int c = 0; c < tree.size(); ++c) {
        if (tree.parents()[c] == p) want.push_back(c);
      }
      EXPECT_EQ(std::vector<int32_t>(tree.Children(p).begin(), tree.Children(p).end()), want);
    }
  }
}

// Hand-made tree: root r=1; static [1,2]: a=10 (node 1), b=20 (2), c=21 (3);
// branches [10, 20, 30] (node 4 under b), [10, 40, 41] (nodes 5, 6 under a).
class AcceptPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Build(tree_, 1, 100,
          Inputs{{{10}, {20, 21}}, {Path{10, 20, 30}, Path{10, 40, 41}, Path{10, 20, 30}}});
    ASSERT_EQ(tree_.size(), 7);
    ASSERT_EQ(NodePath(tree_, 4), (Path{10, 20, 30}));
    ASSERT_EQ(NodePath(tree_, 6), (Path{10, 40, 41}));
  }
  std::vector<int32_t> Targets(std::map<int, int32_t> at) {
    std::vector<int32_t> t(tree_.size(), 777);  // 777 matches no node
    for (auto [node, token] : at) t[node] = token;
    return t;
  }
  DraftTree tree_{DraftTreeOptions{.static_shape = {1, 2}, .max_depth = 4, .max_nodes = 16}};
};

TEST_F(AcceptPathTest, NoMatchAcceptsRootOnly) {
  const auto targets = Targets({{0, 11}});
  const auto acc = tree_.AcceptPath(targets);
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()), (std::vector<int32_t>{0}));
  EXPECT_EQ(acc.bonus_token, 11);
}

TEST_F(AcceptPathTest, FullDepthThroughStaticThenNgram) {
  const auto targets = Targets({{0, 10}, {1, 20}, {2, 30}, {4, 55}});
  const auto acc = tree_.AcceptPath(targets);
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()),
            (std::vector<int32_t>{0, 1, 2, 4}));
  EXPECT_EQ(acc.bonus_token, 55);
  EXPECT_EQ(tree_.origins()[1], DraftTree::kFromHeads | DraftTree::kFromNgram);
  EXPECT_EQ(tree_.origins()[4], DraftTree::kFromNgram);
}

TEST_F(AcceptPathTest, MatchInNgramOnlyBranch) {
  const auto targets = Targets({{0, 10}, {1, 40}, {5, 41}, {6, 8}});
  const auto acc = tree_.AcceptPath(targets);
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()),
            (std::vector<int32_t>{0, 1, 5, 6}));
  EXPECT_EQ(acc.bonus_token, 8);
  EXPECT_EQ(tree_.origins()[5], DraftTree::kFromNgram);
}

TEST_F(AcceptPathTest, StopsAtLeafOrMismatchMidway) {
  // Node 3 (21) is a leaf: its target is the bonus.
  auto acc = tree_.AcceptPath(Targets({{0, 10}, {1, 21}, {3, 5}}));
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()),
            (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(acc.bonus_token, 5);
  // Target 30 at node 1 exists only deeper (under node 2): not a child of 1, so stop.
  acc = tree_.AcceptPath(Targets({{0, 10}, {1, 30}}));
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(acc.bonus_token, 30);
}

TEST(DraftTree, DuplicateProposalsNeverMakeDuplicateSiblings) {
  DraftTree tree(DraftTreeOptions{.max_depth = 5, .max_nodes = 64});
  // Duplicate tokens inside a top-k list and repeated branches all merge.
  Build(tree, 0, 0,
        Inputs{{{1}, {2, 2, 3}, {4, 4, 4}, {5}}, {Path{1, 2, 4, 5}, Path{1, 2, 4, 5}, Path{1, 3}}});
  ExpectSiblingsDistinct(tree);
  EXPECT_EQ(tree.size(), 1 + 1 + 2 + 2 + 2);  // r, 1, {2,3}, {4 under 2, 4 under 3}, {5, 5}
  const auto acc = tree.AcceptPath(std::vector<int32_t>{1, 2, 4, 9, 5, 9, 6, 9});
  EXPECT_EQ(std::vector<int32_t>(acc.path.begin(), acc.path.end()),
            (std::vector<int32_t>{0, 1, 2, 4, 6}));
  EXPECT_EQ(acc.bonus_token, 6);
}

// Naive reference for the budget rule: paths in creation order (static breadth first, then
// branches in order), a node created only while fewer than max_nodes exist.
std::vector<Path> ReferenceCreationOrder(const Inputs& in, int max_nodes, size_t max_depth) {
  std::vector<Path> nodes = {Path{}};
  auto add = [&](const Path& p) {
    if (std::find(nodes.begin(), nodes.end(), p) != nodes.end()) return true;
    if (static_cast<int>(nodes.size()) == max_nodes) return false;
    nodes.push_back(p);
    return true;
  };
  bool full = false;
  for (const Path& p : StaticPaths({1, 3, 3, 3}, in.topk)) {
    if (!full && !add(p)) full = true;
  }
  for (const Path& b : in.branches) {
    for (size_t len = 1; len <= std::min(b.size(), max_depth); ++len) {
      if (!add(Path(b.begin(), b.begin() + len))) break;
    }
  }
  return nodes;
}

TEST(DraftTree, NodeBudgetIsRespectedDeterministically) {
  std::mt19937 rng(77);
  for (int trial = 0; trial < 200; ++trial) {
    const int max_nodes = 1 + static_cast<int>(rng() % 70);
    DraftTree tree(DraftTreeOptions{.max_depth = 5, .max_nodes = max_nodes});
    const Inputs in = RandomInputs(rng, 2 + trial % 6, static_cast<int>(rng() % 25));
    Build(tree, 3, 42, in);
    ASSERT_LE(tree.size(), max_nodes);
    const auto want = ReferenceCreationOrder(in, max_nodes, 5);
    ASSERT_EQ(static_cast<size_t>(tree.size()), want.size()) << "trial " << trial;
    for (int i = 1; i < tree.size(); ++i) EXPECT_EQ(NodePath(tree, i), want[i]) << trial;
    ExpectSiblingsDistinct(tree);
    // Rebuilding gives identical arrays.
    const std::vector<int32_t> tokens(tree.tokens().begin(), tree.tokens().end());
    const std::vector<int32_t> parents(tree.parents().begin(), tree.parents().end());
    Build(tree, 3, 42, in);
    EXPECT_EQ(std::vector<int32_t>(tree.tokens().begin(), tree.tokens().end()), tokens);
    EXPECT_EQ(std::vector<int32_t>(tree.parents().begin(), tree.parents().end()), parents);
  }
}

TEST(DraftTree, DefaultBudgetCutsStaticTreeBreadthFirst) {
  DraftTree tree(DraftTreeOptions{.max_nodes = 20});
  Build(tree, 7, 0, Inputs{{{100}, {200, 201, 202}, {300, 301, 302}, {400, 401, 402}}, {}});
  ASSERT_EQ(tree.size(), 20);  // root + 1 + 3 + 9 + the first 6 of depth 4
  for (int i = 14; i < 20; ++i) EXPECT_EQ(tree.depths()[i], 4);
  EXPECT_EQ(tree.parents()[19], 6);
  // A branch through existing nodes is flagged but creates nothing.
  EXPECT_EQ(tree.AddBranch(std::vector<int32_t>{100, 200, 300, 999}), 0);
  tree.Finalize();
  EXPECT_EQ(tree.origins()[5], DraftTree::kFromHeads | DraftTree::kFromNgram);
}

}  // namespace
}  // namespace ts

namespace ts {
namespace {

// AddChild (the planner's node-by-node builder) merges into the trie like AddBranch: the same
// token under the same parent is one node that collects both origins; budget and depth stop it.
TEST(DraftTree, AddChildMergesAndRespectsBudgetAndDepth) {
  DraftTree tree(DraftTreeOptions{.max_depth = 2, .max_nodes = 5});
  tree.Reset(7, 10);
  const int a = tree.AddChild(0, 100, DraftTree::kFromHeads);
  const int b = tree.AddChild(a, 200, DraftTree::kFromHeads);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_EQ(tree.AddChild(0, 100, DraftTree::kFromNgram), a);  // merged, not a new node
  EXPECT_EQ(tree.origins()[a], DraftTree::kFromHeads | DraftTree::kFromNgram);
  EXPECT_EQ(tree.AddChild(b, 300, DraftTree::kFromNgram), -1);  // below max_depth
  EXPECT_EQ(tree.AddChild(0, 101, DraftTree::kFromHeads), 3);
  EXPECT_EQ(tree.AddChild(3, 201, DraftTree::kFromHeads), 4);
  EXPECT_EQ(tree.AddChild(0, 102, DraftTree::kFromHeads), -1);  // budget of 5 rows
  // The node-by-node tree equals the same paths added as branches.
  DraftTree ref(DraftTreeOptions{.max_depth = 2, .max_nodes = 5});
  ref.Reset(7, 10);
  ref.AddBranch(std::vector<int32_t>{100, 200}, DraftTree::kFromHeads);
  ref.AddBranch(std::vector<int32_t>{101, 201}, DraftTree::kFromHeads);
  EXPECT_EQ(std::vector<int32_t>(tree.tokens().begin(), tree.tokens().end()),
            std::vector<int32_t>(ref.tokens().begin(), ref.tokens().end()));
  EXPECT_EQ(std::vector<int32_t>(tree.parents().begin(), tree.parents().end()),
            std::vector<int32_t>(ref.parents().begin(), ref.parents().end()));
  EXPECT_EQ(std::vector<int32_t>(tree.extra_slots().begin(), tree.extra_slots().end()),
            std::vector<int32_t>(ref.extra_slots().begin(), ref.extra_slots().end()));
}

}  // namespace
}  // namespace ts
