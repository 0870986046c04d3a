#include "core/clock.h"

#include <gtest/gtest.h>

namespace gantry::core {
namespace {

TEST(Clock, ManualClockMovesOnlyWhenAdvanced) {
  ManualClock c;
  auto t0 = c.now();
  auto w0 = c.wall_now();
  EXPECT_EQ(c.now(), t0);
  c.advance(std::chrono::seconds(90));
  EXPECT_EQ(c.now() - t0, std::chrono::seconds(90));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(c.wall_now() - w0).count(), 90);
}

TEST(Clock, Rfc3339) {
  WallTime t{std::chrono::milliseconds(1'700'000'000'123)};
  EXPECT_EQ(rfc3339(t), "2023-11-14T22:13:20.123Z");
}

TEST(Clock, Rfc3339NanoDropsTrailingZerosLikeGo) {
  WallTime base{std::chrono::seconds(1'700'000'000)};
  EXPECT_EQ(rfc3339_nano(base), "2023-11-14T22:13:20Z");
  EXPECT_EQ(rfc3339_nano(base + std::chrono::milliseconds(120)), "2023-11-14T22:13:20.12Z");
  EXPECT_EQ(rfc3339_nano(base + std::chrono::nanoseconds(1)), "2023-11-14T22:13:20.000000001Z");
  EXPECT_EQ(rfc3339_nano(base - std::chrono::nanoseconds(1)), "2023-11-14T22:13:19.999999999Z");
}

TEST(Random, FixedAndSeeded) {
  FixedRandom f(0.25);
  EXPECT_EQ(f.uniform(), 0.25);
  SeededRandom a(7), b(7);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.uniform(), b.uniform());
  double v = Random::real().uniform();
  EXPECT_GE(v, 0.0);
  EXPECT_LT(v, 1.0);
}

}  // namespace
TEST(Rfc3339, ParsesWhatItFormatsAndOffsets) {
  WallTime t = WallTime(std::chrono::milliseconds(1795000000123));
  EXPECT_EQ(parse_rfc3339(rfc3339(t)), t);
  auto a = parse_rfc3339("2026-11-22T10:00:00Z");
  auto b = parse_rfc3339("2026-11-22T12:30:00+02:30");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_TRUE(parse_rfc3339("2026-11-22 10:00:00.123456789-05:00"));
}

TEST(Rfc3339, RejectsMalformed) {
  for (const char* bad : {"", "yesterday", "2026-11-22", "2026-11-22T10:00:00", "2026-02-31T10:00:00Z",
                          "2026-13-01T10:00:00Z", "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00Zjunk",
                          "2026-11-22T25:00:00Z",
                          // Beyond what 64-bit nanoseconds hold (found by fuzz/rfc3339: it overflowed).
                          "4052-11-22T07:00:00Z", "1000-01-01T00:00:00Z"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  EXPECT_TRUE(parse_rfc3339("2261-12-31T23:59:59Z"));
  // Before 1970 with a fraction (found by fuzz/rfc3339: written as ".-200").
  auto old = parse_rfc3339("1828-11-22T07:00:00.8z");
  ASSERT_TRUE(old);
  EXPECT_EQ(rfc3339(*old), "1828-11-22T07:00:00.800Z");
  EXPECT_TRUE(parse_rfc3339("1678-01-01T00:00:00Z"));
}

}  // namespace gantry::core
