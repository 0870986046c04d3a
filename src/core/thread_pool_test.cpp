#include "core/thread_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

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

// Stopping the pool from one of its jobs used to destroy that job's own joinable std::thread,
// which ends the process (std::terminate).
TEST(ThreadPool, StopFromOwnJobDoesNotEndTheProcess) {
  std::atomic<int> n{0};
  {
    ThreadPool p(2, "t");
    std::promise<void> stopped;
    ASSERT_TRUE(p.post([&] {
      p.stop();
      n.fetch_add(1);
      stopped.set_value();
    }));
    stopped.get_future().wait();
    EXPECT_FALSE(p.post([&] { n.fetch_add(100); }));
  }  // the destructor waits for the thread that stopped the pool
  EXPECT_EQ(n.load(), 1);
}

// A throwing job used to escape the thread's function and end the process.
TEST(ThreadPool, ThrowingJobIsContainedAndThePoolGoesOn) {
  std::atomic<int> n{0};
  ThreadPool p(1, "t");
  ASSERT_TRUE(p.post([] { throw std::runtime_error("job failed"); }));
  ASSERT_TRUE(p.post([] { throw 7; }));
  ASSERT_TRUE(p.post([&] { n.fetch_add(1); }));
  p.stop();
  EXPECT_EQ(n.load(), 1);
}

// The queue used to grow without bound.
TEST(ThreadPool, QueueIsBounded) {
  ThreadPool p(1, "t", 3);
  std::promise<void> release;
  std::shared_future<void> go = release.get_future().share();
  std::promise<void> running;
  ASSERT_TRUE(p.post([&running, go] {
    running.set_value();
    go.wait();
  }));
  running.get_future().wait();  // the thread is busy; what follows waits in the queue
  EXPECT_TRUE(p.post([] {}));
  EXPECT_TRUE(p.post([] {}));
  EXPECT_TRUE(p.post([] {}));
  EXPECT_FALSE(p.post([] {}));  // a fourth would exceed max_queued
  EXPECT_EQ(p.queued(), 3u);
  release.set_value();
  p.stop();
  EXPECT_EQ(p.queued(), 0u);
}

}  // namespace
}  // namespace gantry::core
