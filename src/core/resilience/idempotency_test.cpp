#include "core/resilience/idempotency.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <stdexcept>
#include <thread>

namespace gantry::core::resilience {
namespace {

using namespace std::chrono_literals;

IdempotencyKey key(int i) { return idempotency_key("create-instance", "{\"index\":" + std::to_string(i) + "}"); }

TEST(Idempotency, KeysAreStableAndDistinct) {
  EXPECT_EQ(to_hex(idempotency_key("", "")), to_hex(idempotency_key("", "")));
  EXPECT_NE(idempotency_key("ab", "c"), idempotency_key("a", "bc"));
  // SHA-256("op\0p") computed independently (printf 'op\0p' | sha256sum).
  EXPECT_EQ(to_hex(idempotency_key("op", "p")), "3393967f6906118320d3aa6a209c758cc5238589de4cf0bbb0124653567e770e");
}

TEST(Idempotency, CanonicalJsonSortsKeys) {
  auto a = canonical_json(R"({"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":null}})");
  auto b = canonical_json(R"({ "a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1 })");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, R"({"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1})");
  EXPECT_EQ(canonical_json("{nope").status().code(), Code::kInvalidArgument);
}

TEST(Idempotency, SecondCallIsAHit) {
  ManualClock clock;
  IdempotencyStore<int> store({"t1"}, clock);
  int runs = 0;
  auto op = [&]() -> Result<int> { return ++runs * 10; };
  EXPECT_EQ(*store.run(key(1), op), 10);
  EXPECT_EQ(*store.run(key(1), op), 10);
  EXPECT_EQ(*store.run(key(2), op), 20);
  EXPECT_EQ(runs, 2);
  auto st = store.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 2u);
  EXPECT_EQ(st.entries, 2u);
}

TEST(Idempotency, ConcurrentCallersOfOneKeyRunItOnce) {
  IdempotencyStore<std::string> store({"t2"});
  std::atomic<int> runs{0};
  std::latch inside(1), release(1);
  std::vector<std::thread> ts;
  std::vector<std::string> got(8);
  ts.emplace_back([&] {
    got[0] = *store.run(key(7), [&]() -> Result<std::string> {
      ++runs;
      inside.count_down();
      release.wait();  // hold the operation open while the others arrive
      return std::string("i-0abc");
    });
  });
  inside.wait();
  for (int t = 1; t < 8; ++t)
    ts.emplace_back([&, t] { got[t] = *store.run(key(7), [&]() -> Result<std::string> { ++runs; return std::string("dup"); }); });
  // Let the joiners reach the store before releasing the first run.
  for (int spins = 0; spins < 1000 && store.stats().joined < 7; ++spins) std::this_thread::sleep_for(1ms);
  release.count_down();
  for (auto& t : ts) t.join();
  EXPECT_EQ(runs.load(), 1);
  for (auto& g : got) EXPECT_EQ(g, "i-0abc");
  EXPECT_EQ(store.stats().joined, 7u);
}

TEST(Idempotency, FailuresAreNotCachedAndAreRetried) {
  ManualClock clock;
  IdempotencyStore<int> store({"t3"}, clock);
  int runs = 0;
  auto r1 = store.run(key(1), [&]() -> Result<int> { ++runs; return unavailable("throttled"); });
  EXPECT_EQ(r1.status().code(), Code::kUnavailable);
  EXPECT_FALSE(store.peek(key(1)));
  auto r2 = store.run(key(1), [&]() -> Result<int> { ++runs; return 5; });
  EXPECT_EQ(*r2, 5);
  EXPECT_EQ(runs, 2);
}

TEST(Idempotency, ExpiredEntriesAreGoneAfterSweep) {
  ManualClock clock;
  IdempotencyStore<int> store({"t4", 2h}, clock);
  int runs = 0;
  auto op = [&]() -> Result<int> { return ++runs; };
  (void)store.run(key(1), op);
  (void)store.run(key(2), op, 30min);  // a shorter TTL for this one
  clock.advance(31min);
  EXPECT_EQ(store.sweep(), 1u);
  EXPECT_FALSE(store.peek(key(2)));
  EXPECT_TRUE(store.peek(key(1)));
  clock.advance(90min);  // 2 h 1 min
  EXPECT_FALSE(store.peek(key(1)));  // expired even before a sweep
  EXPECT_EQ(store.sweep(), 1u);
  EXPECT_EQ(store.stats().entries, 0u);
  EXPECT_EQ(*store.run(key(1), op), 3);  // runs again
}

TEST(Idempotency, LruBoundHolds) {
  ManualClock clock;
  IdempotencyStore<int> store({"t5", 2h, 160}, clock);  // 10 per shard
  for (int i = 0; i < 5000; ++i) (void)store.run(key(i), [&]() -> Result<int> { return i; });
  auto st = store.stats();
  EXPECT_LE(st.entries, 160u);
  EXPECT_GE(st.evictions, 5000u - 160u);
  EXPECT_TRUE(store.peek(key(4999)));  // the most recent survive
  EXPECT_FALSE(store.peek(key(0)));
}

TEST(Idempotency, RecentlyUsedSurvivesEviction) {
  ManualClock clock;
  IdempotencyStore<int> big({"t7", 2h, 32}, clock);  // 2 per shard
  std::vector<IdempotencyKey> same;
  for (int i = 0; same.size() < 3; ++i)
    if (key(i)[8] % 16 == 0) same.push_back(key(i));
  auto op = [] () -> Result<int> { return 1; };
  (void)big.run(same[0], op);
  (void)big.run(same[1], op);
  (void)big.run(same[0], op);  // same[0] is now the most recent
  (void)big.run(same[2], op);  // evicts the least recent: same[1]
  EXPECT_TRUE(big.peek(same[0]));
  EXPECT_FALSE(big.peek(same[1]));
  EXPECT_TRUE(big.peek(same[2]));
}

// A throwing operation used to leave its key pending forever: every later call with that key
// waited without end.
TEST(Idempotency, ThrowingOperationFailsItsRunAndTheKeyRunsAgain) {
  IdempotencyStore<int> store({"t-throw"});
  auto r = store.run(key(40), []() -> Result<int> { throw std::runtime_error("api exploded"); });
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_NE(r.status().to_string().find("api exploded"), std::string::npos);
  std::atomic<bool> finished{false};
  std::thread again([&] {
    auto r2 = store.run(key(40), []() -> Result<int> { return 3; });
    EXPECT_TRUE(r2.is_ok() && *r2 == 3);
    finished = true;
  });
  for (int i = 0; i < 200 && !finished; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(finished.load());
  again.join();
}

// Joining a running operation used to wait without limit.
TEST(Idempotency, JoiningWaitsAtMostTheJoinTimeout) {
  IdempotencyStore<int>::Options o;
  o.name = "t-join";
  o.join_timeout = 50ms;
  IdempotencyStore<int> store(o);
  std::latch inside(1), release(1);
  std::thread owner([&] {
    auto r = store.run(key(41), [&]() -> Result<int> {
      inside.count_down();
      release.wait();
      return 9;
    });
    EXPECT_TRUE(r.is_ok());
  });
  inside.wait();
  auto t0 = std::chrono::steady_clock::now();
  auto joined = store.run(key(41), []() -> Result<int> { return -1; });
  EXPECT_EQ(joined.status().code(), Code::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  release.count_down();
  owner.join();
  EXPECT_EQ(*store.run(key(41), []() -> Result<int> { return -1; }), 9);  // the owner's result was cached
}

}  // namespace
}  // namespace gantry::core::resilience
