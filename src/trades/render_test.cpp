#include "trades/render.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

namespace gantry::trades {
namespace {

TEST(AppendFigure, TwelveSignificantDigitsAndNoNoise) {
  auto fig = [](double v) {
    std::string s;
    append_figure(s, v);
    return s;
  };
  EXPECT_EQ(fig(12.300000000000001), "12.3");
  EXPECT_EQ(fig(0.1 + 0.2), "0.3");
  EXPECT_EQ(fig(0), "0");
  EXPECT_EQ(fig(-0.0), "0");
  EXPECT_EQ(fig(1500), "1500");
  EXPECT_EQ(fig(-2.5), "-2.5");
  EXPECT_EQ(fig(0.000012), "0.000012");
  EXPECT_EQ(fig(9.9999999999996), "10");
  EXPECT_EQ(fig(123456789012345.0), "123456789012000");
  EXPECT_EQ(fig(1e300), "1e+300");
  EXPECT_EQ(fig(std::numeric_limits<double>::infinity()), "null");
  // Whatever the value, the text reads back as the value rounded to 12 digits.
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200'000; ++i) {
    double v = std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(rng() % 120) - 100) * (rng() % 2 ? 1 : -1);
    char want[64];
    std::snprintf(want, sizeof want, "%.12g", v);
    std::string got = fig(v);
    // Equal, or one unit apart in the twelfth digit where the value sits on a rounding tie.
    double g = std::strtod(got.c_str(), nullptr), w = std::strtod(want, nullptr);
    ASSERT_LE(std::abs(g - w), std::abs(w) * 1.0000001e-11) << got << " vs " << want;
    ASSERT_LE(got.size(), 20u) << got;  // sign, "0.", up to 5 zeros, 12 digits
  }
}

}  // namespace
}  // namespace gantry::trades
