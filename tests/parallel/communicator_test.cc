#include "parallel/communicator.h"

#include <gtest/gtest.h>

#include <vector>

namespace ts {
namespace {

TEST(BetterOf, LargerValueThenLowerIndexAndNoCandidateLoses) {
  EXPECT_EQ(BetterOf({1.0, 7}, {2.0, 9}).index, 9);
  EXPECT_EQ(BetterOf({2.0, 7}, {2.0, 3}).index, 3);
  EXPECT_EQ(BetterOf({2.0, 3}, {2.0, 7}).index, 3);
  EXPECT_EQ(BetterOf({5.0, -1}, {-9.0, 4}).index, 4);
  EXPECT_EQ(BetterOf({-9.0, 4}, {5.0, -1}).index, 4);
}

TEST(LocalCommunicator, CollectivesAreTheIdentity) {
  auto comm = MakeCommunicator("local", CommOptions{});
  ASSERT_TRUE(comm.ok());
  Communicator& c = **comm;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  std::vector<float> x = {1.5f, -2.0f};
  ASSERT_TRUE(c.AllReduceSum(x.data(), x.size()).ok());
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f}));
  int mine = 42, all = 0;
  ASSERT_TRUE(c.AllGather(&mine, sizeof(mine), &all).ok());
  EXPECT_EQ(all, 42);
  EXPECT_TRUE(c.Broadcast(&mine, sizeof(mine), 0).ok());
  EXPECT_FALSE(c.Broadcast(&mine, sizeof(mine), 1).ok());
  auto best = c.MaxReduce({3.0, 5});
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->index, 5);
  EXPECT_TRUE(c.Barrier().ok());
}

TEST(MakeCommunicator, RejectsUnknownKindsAndBadTimeouts) {
  auto bad = MakeCommunicator("carrier-pigeon", CommOptions{});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--comm: expected local, mpi or nccl, got 'carrier-pigeon'");
  CommOptions zero;
  zero.timeout_seconds = 0;
  EXPECT_FALSE(MakeCommunicator("local", zero).ok());
}

}  // namespace
}  // namespace ts
