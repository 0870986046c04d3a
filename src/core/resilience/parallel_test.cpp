#include "core/resilience/parallel.h"

#include <gtest/gtest.h>

#include <latch>
#include <set>
#include <thread>

#include "core/resilience/batch.h"

namespace gantry::core::resilience {
namespace {

using namespace std::chrono_literals;

struct InFlight {
  std::atomic<int> now{0}, most{0};
  void enter() {
    int n = ++now;
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {}
  }
  void leave() { --now; }
};

TEST(Parallel, NeverExceedsTheLimitUnderLoad) {
  ParallelManager pm({"t", 3, 10min});
  InFlight f;
  std::vector<Operation> ops;
  for (int i = 0; i < 200; ++i)
    ops.push_back({"op" + std::to_string(i), [&, i](const OpContext& ctx) {
                     EXPECT_EQ(ctx.index, static_cast<size_t>(i));
                     f.enter();
                     if (i < 3) {  // the first three meet: the manager must run three at once
                       auto until = std::chrono::steady_clock::now() + 5s;
                       while (f.now.load() < 3 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
                     }
                     std::this_thread::sleep_for(std::chrono::microseconds(200 + (i % 7) * 100));
                     f.leave();
                     return i % 10 == 0 ? unavailable("flaky") : Status();
                   }});
  auto rep = pm.run(std::move(ops));
  EXPECT_LE(f.most.load(), 3);
  EXPECT_EQ(f.most.load(), 3);  // and uses it
  EXPECT_EQ(rep.max_in_flight, 3);
  EXPECT_EQ(rep.succeeded, 180);
  EXPECT_EQ(rep.failed, 20);
  ASSERT_EQ(rep.results.size(), 200u);
  EXPECT_EQ(rep.results[10].name, "op10");
  EXPECT_EQ(rep.results[10].status.code(), Code::kUnavailable);
  EXPECT_GT(rep.efficiency, 0.3);
  EXPECT_LE(rep.efficiency, 1.0);
  EXPECT_EQ(pm.in_flight(), 0);
}

TEST(Parallel, LimitChangesWhileRunning) {
  ParallelManager pm({"t", 2, 10min});
  InFlight f;
  std::atomic<bool> gate{false}, lowered{false};
  std::atomic<int> above_after_lower{0};
  std::vector<Operation> ops;
  for (int i = 0; i < 40; ++i)
    ops.push_back({"op", [&](const OpContext&) {
                     f.enter();
                     if (lowered && f.now.load() > 1) ++above_after_lower;
                     while (!gate) std::this_thread::sleep_for(1ms);  // hold until released
                     f.leave();
                     return Status();
                   }});
  std::thread runner([&] { (void)pm.run(std::move(ops)); });
  auto wait_in_flight = [&](int n) {
    for (int spins = 0; spins < 5000 && pm.in_flight() != n; ++spins) std::this_thread::sleep_for(1ms);
    return pm.in_flight();
  };
  EXPECT_EQ(wait_in_flight(2), 2);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(f.most.load(), 2);  // held at the limit
  pm.set_concurrency(5);        // raised: three more start at once
  EXPECT_EQ(wait_in_flight(5), 5);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(f.most.load(), 5);
  pm.set_concurrency(1);  // lowered: nothing new starts until in flight < 1
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(pm.in_flight(), 5);
  lowered = true;  // from here on, every operation that starts must be alone
  gate = true;
  runner.join();
  EXPECT_EQ(above_after_lower.load(), 0);
}

TEST(Parallel, TimeoutCancelsTheOperation) {
  ManualClock clock;
  ParallelManager pm({"t", 2, 10s}, clock);
  std::atomic<bool> saw_stop{false};
  std::latch running(1);
  std::vector<Operation> ops;
  ops.push_back({"stuck", [&](const OpContext& ctx) {
                   running.count_down();
                   while (!ctx.stop.stop_requested()) std::this_thread::sleep_for(1ms);
                   saw_stop = true;
                   return Status();  // ignored: it already timed out
                 }});
  std::atomic<bool> quick_done{false};
  ops.push_back({"quick", [&](const OpContext&) {
                   quick_done = true;
                   return Status();
                 }});
  std::thread mover([&] {
    running.wait();
    while (!quick_done) std::this_thread::sleep_for(1ms);
    while (pm.in_flight() > 1) std::this_thread::sleep_for(1ms);  // quick has returned
    clock.advance(11s);
    pm.wake();
  });
  auto rep = pm.run(std::move(ops));
  mover.join();
  EXPECT_TRUE(saw_stop);
  EXPECT_EQ(rep.results[0].status.code(), Code::kDeadlineExceeded);
  EXPECT_TRUE(rep.results[1].status.is_ok());
  EXPECT_EQ(rep.failed, 1);
}

// Efficiency is exact with a manual clock: every operation spans the same manual second.
TEST(Parallel, EfficiencyIsBusyTimeOverCapacity) {
  for (int limit : {4, 8}) {  // 8 > 4 operations: capacity is capped by the operation count
    ManualClock clock;
    ParallelManager pm({"t", limit, 10min}, clock);
    std::atomic<bool> go{false};
    std::vector<Operation> ops;
    for (int i = 0; i < 4; ++i)
      ops.push_back({"op", [&](const OpContext&) {
                       while (!go) std::this_thread::sleep_for(1ms);
                       return Status();
                     }});
    std::thread mover([&] {
      while (pm.in_flight() < 4) std::this_thread::sleep_for(1ms);
      clock.advance(1s);
      go = true;
    });
    auto rep = pm.run(std::move(ops));
    mover.join();
    EXPECT_EQ(rep.succeeded, 4);
    EXPECT_EQ(rep.wall, 1s);
    EXPECT_DOUBLE_EQ(rep.efficiency, 1.0) << limit;
  }
  // Two at a time, each op 1 s, four ops: two waves, 2 s wall, 4 s busy / (2 × 2 s) = 100%;
  // a third wave of one op would halve the last wave's use.
  ManualClock clock;
  ParallelManager pm({"t", 2, 10min}, clock);
  std::atomic<int> released{0};
  std::vector<Operation> ops;
  for (int i = 0; i < 3; ++i)
    ops.push_back({"op", [&, i](const OpContext&) {
                     while (released.load() <= i / 2) std::this_thread::sleep_for(1ms);
                     return Status();
                   }});
  std::thread mover([&] {
    for (int wave = 0; wave < 2; ++wave) {
      int expect = wave == 0 ? 2 : 1;
      while (pm.in_flight() < expect) std::this_thread::sleep_for(1ms);
      clock.advance(1s);
      ++released;
      while (pm.in_flight() >= expect && wave == 0) std::this_thread::sleep_for(1ms);
    }
  });
  auto rep = pm.run(std::move(ops));
  mover.join();
  EXPECT_EQ(rep.wall, 2s);
  EXPECT_DOUBLE_EQ(rep.efficiency, 3.0 / 4.0);  // 3 s busy over 2 slots × 2 s
}

TEST(Batch, CoversEveryItemExactlyOnceAndReportsPerItemErrors) {
  std::vector<int> items(95);
  for (int i = 0; i < 95; ++i) items[i] = i;
  std::mutex mu;
  std::multiset<int> seen;
  auto rep = run_batches(items, {"t", 10, 5min, 3}, [&](std::span<const int> batch, const OpContext&) {
    std::vector<Status> st;
    std::lock_guard lock(mu);
    for (int v : batch) {
      seen.insert(v);
      st.push_back(v % 13 == 0 ? invalid_argument("item " + std::to_string(v)) : Status());
    }
    return st;
  });
  EXPECT_EQ(rep.batches, 10u);
  ASSERT_EQ(seen.size(), 95u);
  for (int i = 0; i < 95; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
  ASSERT_EQ(rep.items.size(), 95u);
  EXPECT_EQ(rep.items[26].message(), "item 26");
  EXPECT_EQ(rep.failed, 8);  // 0, 13, 26, …, 91
  EXPECT_EQ(rep.succeeded, 87);
}

TEST(Batch, WholeBatchFailureAndWrongCountApplyToItsItems) {
  auto rep = run_batches(25, {"t", 10, 5min, 2}, [](size_t b, size_t e, const OpContext&) -> std::vector<Status> {
    if (b == 0) return {unavailable("ec2 throttled")};  // the whole first batch
    if (b == 10) return {Status()};                      // wrong count for 10 items
    return std::vector<Status>(e - b);
  });
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(rep.items[i].code(), Code::kUnavailable);
  for (size_t i = 10; i < 20; ++i) EXPECT_EQ(rep.items[i].code(), Code::kInternal);
  for (size_t i = 20; i < 25; ++i) EXPECT_TRUE(rep.items[i].is_ok());
  EXPECT_EQ(rep.failed, 20);
}

}  // namespace
}  // namespace gantry::core::resilience
