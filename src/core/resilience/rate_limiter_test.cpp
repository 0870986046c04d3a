#include "core/resilience/rate_limiter.h"

#include <gtest/gtest.h>

#include "core/metrics.h"

namespace gantry::core::resilience {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, BurstThenRefillAtRate) {
  ManualClock clock;
  RateLimiter rl("t", 10, 5, clock);  // 10/s, burst 5
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rl.take("client").allowed) << i;
  auto d = rl.take("client");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 100ms);  // one token at 10/s
  clock.advance(50ms);
  d = rl.take("client");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 50ms);
  clock.advance(50ms);
  EXPECT_TRUE(rl.take("client").allowed);
  EXPECT_FALSE(rl.take("client").allowed);
  clock.advance(10s);  // refills only up to the burst
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rl.take("client").allowed);
  EXPECT_FALSE(rl.take("client").allowed);
}

TEST(RateLimiter, DecisionsExportedAsMetrics) {
  ManualClock clock;
  RateLimiter rl("metrics-test", 1, 2, clock);
  for (int i = 0; i < 5; ++i) rl.take("c");
  std::string text = metrics::Registry::global().expose();
  EXPECT_NE(text.find("resilience_rate_limit_decisions_total{limiter=\"metrics-test\",result=\"allowed\"} 2"),
            std::string::npos) << text;
  EXPECT_NE(text.find("resilience_rate_limit_decisions_total{limiter=\"metrics-test\",result=\"limited\"} 3"),
            std::string::npos);
  EXPECT_NE(text.find("resilience_rate_limit_keys{limiter=\"metrics-test\"} 1"), std::string::npos);
}

TEST(RateLimiter, KeysAreIndependent) {
  ManualClock clock;
  RateLimiter rl("t", 1, 1, clock);
  EXPECT_TRUE(rl.take("a").allowed);
  EXPECT_FALSE(rl.take("a").allowed);
  EXPECT_TRUE(rl.take("b").allowed);
}

TEST(RateLimiter, IdleKeysAreEvictedWithoutChangingAnswers) {
  ManualClock clock;
  RateLimiter rl("t", 100, 10, clock);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(rl.take("k" + std::to_string(i)).allowed);
  EXPECT_EQ(rl.size(), 1000u);
  clock.advance(5ms);  // half a token back: not full yet
  EXPECT_EQ(rl.sweep(), 0u);
  clock.advance(100ms);  // full again
  EXPECT_EQ(rl.sweep(), 1000u);
  EXPECT_EQ(rl.size(), 0u);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(rl.take("k1").allowed);  // a fresh full bucket, as before
  EXPECT_FALSE(rl.take("k1").allowed);
}

TEST(RateLimiter, MemoryBoundedUnderManyKeys) {
  ManualClock clock;
  RateLimiter rl("t", 1, 5, clock, /*max_keys=*/1600);
  for (int i = 0; i < 100'000; ++i) {
    rl.take("client-" + std::to_string(i));
    clock.advance(1us);
  }
  EXPECT_LE(rl.size(), 1600u);
  // The most recent key is still tracked (its bucket is not full).
  EXPECT_FALSE(rl.take("client-99999", 5).allowed);
}

// A full shard used to sweep all its keys (O(n) under the shard lock) on every new key; it
// now evicts exactly one, so a full limiter stays exactly full.
TEST(RateLimiter, AFullShardEvictsOneKeyPerNewKey) {
  ManualClock clock;
  RateLimiter rl("t", 1, 5, clock, /*max_keys=*/64);  // 4 keys per shard
  for (int i = 0; i < 1000; ++i) {
    clock.advance(std::chrono::hours(1));  // every bucket refills: a sweep would drop them all
    rl.take("client-" + std::to_string(i));
  }
  EXPECT_EQ(rl.size(), 64u);
}

}  // namespace
}  // namespace gantry::core::resilience
