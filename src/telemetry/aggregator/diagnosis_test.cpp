#include <gtest/gtest.h>

#include "telemetry/aggregator/schema.h"

namespace gantry::telemetry::aggregator {
namespace {

// A steady path: dns 10, tcp 10, tls 10, ttfb 50 ms (p95), 1000 kbps (p50), a little noise.
std::vector<WindowStats> steady(int n) {
  std::vector<WindowStats> out;
  for (int i = 0; i < n; ++i) {
    double j = (i % 2) * 0.5;
    out.push_back({i, 6, 10 + j, 10 + j, 10 + j, 50 + j, 1000 + j});
  }
  return out;
}

WindowStats now(double dns, double tcp, double tls, double ttfb, double tput, int64_t success = 6) {
  return {100, success, dns, tcp, tls, ttfb, tput};
}

TEST(Diagnosis, EachLabelFromACraftedHistory) {
  auto base = steady(10);
  EXPECT_EQ(diagnose(now(200, 10, 10, 50, 1000), base), "dns-bound");
  EXPECT_EQ(diagnose(now(10, 30, 25, 50, 1000), base), "handshake-bound");
  EXPECT_EQ(diagnose(now(10, 10, 10, 400, 1000), base), "server-bound");
  EXPECT_EQ(diagnose(now(10, 10, 10, 50, 500), base), "throughput-bound");
  EXPECT_EQ(diagnose(now(10.2, 10.2, 10.2, 50.2, 1000), base), std::nullopt);
}

TEST(Diagnosis, FirstMatchWins) {
  // DNS dominates and handshakes are slow too: dns-bound comes first.
  EXPECT_EQ(diagnose(now(500, 40, 40, 50, 1000), steady(5)), "dns-bound");
  // A slow server with slow handshakes is a handshake problem, not the server's.
  EXPECT_EQ(diagnose(now(10, 40, 40, 400, 1000), steady(5)), "handshake-bound");
}

TEST(Diagnosis, TooLittleHistoryOrTooFewSuccessesGiveNoLabel) {
  EXPECT_EQ(diagnose(now(200, 10, 10, 50, 1000), steady(2)), std::nullopt);   // 3 baseline windows needed
  EXPECT_EQ(diagnose(now(200, 10, 10, 50, 1000, 4), steady(10)), std::nullopt);  // 5 successes needed
  EXPECT_EQ(diagnose(now(200, 10, 10, 50, 1000), steady(3)), "dns-bound");
}

TEST(Diagnosis, ThresholdsAreConfigurable) {
  Thresholds t;
  t.throughput_drop = 0.6;
  EXPECT_EQ(diagnose(now(10, 10, 10, 50, 500), steady(10), t), std::nullopt);
  EXPECT_EQ(diagnose(now(10, 10, 10, 50, 300), steady(10), t), "throughput-bound");
}

// A quiet loopback path: sub-millisecond timings with almost no spread. A 0.3 ms wobble is
// many sigmas and a 100% rise, but not a diagnosis; the original's rules (floor 0) label it.
TEST(Diagnosis, RisesBelowTheAbsoluteFloorAreNoise) {
  std::vector<WindowStats> quiet;
  for (int i = 0; i < 10; ++i) quiet.push_back({i, 6, 0.05, 0.1, 0.2, 0.5, 50000});
  WindowStats wobble = now(0.05, 0.3, 0.4, 0.5, 50000);
  EXPECT_EQ(diagnose(wobble, quiet), std::nullopt);
  Thresholds original;
  original.min_change_ms = 0;
  EXPECT_EQ(diagnose(wobble, quiet, original), "handshake-bound");
  EXPECT_EQ(diagnose(now(0.05, 3, 4, 0.5, 50000), quiet), "handshake-bound");  // a real rise still counts
  EXPECT_EQ(diagnose(now(0.05, 0.1, 0.2, 1.2, 50000), quiet), std::nullopt);     // +0.7 ms ttfb
  EXPECT_EQ(diagnose(now(0.05, 0.1, 0.2, 5, 50000), quiet), "server-bound");
}

}  // namespace
}  // namespace gantry::telemetry::aggregator
