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
}  // namespace gantry::core
