#include "core/thread_pool.h"

#include <atomic>

#include <gtest/gtest.h>

namespace gantry::core {
namespace {

TEST(ThreadPool, RunsEveryJobAndDrainsOnStop) {
  std::atomic<int> n{0};
  ThreadPool p(3, "t");
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(p.post([&] { n.fetch_add(1); }));
  p.stop();
  EXPECT_EQ(n.load(), 1000);
  EXPECT_FALSE(p.post([&] { n.fetch_add(1); }));
  EXPECT_EQ(n.load(), 1000);
}

TEST(ThreadPool, OneThreadKeepsSubmissionOrder) {
  std::vector<int> seen;
  ThreadPool p(1, "t");
  for (int i = 0; i < 100; ++i) p.post([&, i] { seen.push_back(i); });
  p.stop();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

}  // namespace
}  // namespace gantry::core
