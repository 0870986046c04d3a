#include "core/resilience/circuit_breaker.h"

#include <gtest/gtest.h>

#include <sched.h>

#include <thread>

namespace gantry::core::resilience {
namespace {

using namespace std::chrono_literals;

Status fail() { return unavailable("connection refused"); }

TEST(CircuitBreaker, OpensAfterThresholdConsecutiveFailures) {
  ManualClock clock;
  CircuitBreaker b("t1", {3, 10s, 1, 0}, clock);
  EXPECT_EQ(b.call(fail).code(), Code::kUnavailable);
  EXPECT_EQ(b.call(fail).code(), Code::kUnavailable);
  EXPECT_TRUE(b.call([] { return Status(); }).is_ok());  // a success resets the count
  EXPECT_EQ(b.call(fail).code(), Code::kUnavailable);
  EXPECT_EQ(b.call(fail).code(), Code::kUnavailable);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.call(fail).code(), Code::kUnavailable);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, OpenRejectsFastWithoutCalling) {
  ManualClock clock;
  CircuitBreaker b("t2", {1, 10s, 1, 0}, clock);
  (void)b.call(fail);
  int calls = 0;
  Status s = b.call([&] { ++calls; return Status(); });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(s.code(), Code::kCircuitOpen);
  EXPECT_EQ(s.where(), "t2");
  clock.advance(9999ms);
  EXPECT_EQ(b.call([&] { ++calls; return Status(); }).code(), Code::kCircuitOpen);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(b.stats().rejections, 2u);
}

TEST(CircuitBreaker, HalfOpenAdmitsTrialsSuccessCloses) {
  ManualClock clock;
  CircuitBreaker b("t3", {1, 10s, 1, 0}, clock);
  (void)b.call(fail);
  clock.advance(10s);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  auto trial = b.acquire();
  ASSERT_TRUE(trial.is_ok());
  auto second = b.acquire();  // only one trial at a time
  EXPECT_EQ(second.status().code(), Code::kCircuitOpen);
  trial->success();
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_TRUE(b.acquire().is_ok());
}

TEST(CircuitBreaker, HalfOpenFailureReopensForAnotherRecoveryTimeout) {
  ManualClock clock;
  CircuitBreaker b("t4", {2, 10s, 2, 0}, clock);
  (void)b.call(fail);
  (void)b.call(fail);
  clock.advance(10s);
  auto t1 = b.acquire();
  auto t2 = b.acquire();  // half_open_max_calls = 2
  ASSERT_TRUE(t1.is_ok());
  ASSERT_TRUE(t2.is_ok());
  EXPECT_EQ(b.acquire().status().code(), Code::kCircuitOpen);
  t1->failure();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  t2->success();  // a late trial success does not close a breaker that reopened
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock.advance(9s);
  EXPECT_EQ(b.acquire().status().code(), Code::kCircuitOpen);
  clock.advance(1s);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  auto stats = b.stats();
  ASSERT_EQ(stats.changes.size(), 3u);
  EXPECT_EQ(stats.changes[0].to, BreakerState::kOpen);
  EXPECT_EQ(stats.changes[1].to, BreakerState::kHalfOpen);
  EXPECT_EQ(stats.changes[2].to, BreakerState::kOpen);
}

TEST(CircuitBreaker, BadInputDoesNotOpen) {
  ManualClock clock;
  CircuitBreaker b("t5", {1, 10s, 1, 0}, clock);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.call([] { return invalid_argument("no such region"); }).code(), Code::kInvalidArgument);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, UnresolvedPermitCountsAsFailure) {
  ManualClock clock;
  CircuitBreaker b("t6", {1, 10s, 1, 0}, clock);
  { auto p = b.acquire(); }
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, MaxConcurrentRejectsTheExcessInAnyState) {
  ManualClock clock;
  CircuitBreaker b("t7", {5, 10s, 1, 2}, clock);
  auto p1 = b.acquire();
  auto p2 = b.acquire();
  ASSERT_TRUE(p1.is_ok() && p2.is_ok());
  auto p3 = b.acquire();
  EXPECT_EQ(p3.status().code(), Code::kResourceExhausted);
  p1->success();
  EXPECT_TRUE(b.acquire().is_ok());  // a slot came free (and this permit resolves as failure)
}

TEST(CircuitBreaker, MaxConcurrentHoldsUnderThreads) {
  CircuitBreaker b("t8", {1000000, 10s, 1, 3});
  std::atomic<int> inside{0}, most{0}, rejected{0};
  // Until the first rejection, callers that got in stay in, so the limit is certainly reached
  // however the threads are scheduled (on 2 cores they may otherwise never overlap 4 deep).
  auto until = std::chrono::steady_clock::now() + 10s;
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Status s = b.call([&] {
          int n = ++inside;
          int m = most.load();
          while (n > m && !most.compare_exchange_weak(m, n)) {}
          while (rejected.load() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
          std::this_thread::yield();
          --inside;
          return Status();
        });
        if (s.code() == Code::kResourceExhausted) ++rejected;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_GT(rejected.load(), 0);
  auto st = b.stats();
  EXPECT_EQ(st.successes + st.rejections, 16000u);
}

TEST(CircuitBreaker, WindowStatistics) {
  // The window is kept per CPU: pin this thread to one so all calls land in one window.
  cpu_set_t old, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof old, &old), 0);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  ManualClock clock;
  CircuitBreaker b("t9", {100000, 10s, 1, 0}, clock);
  for (int i = 0; i < 1500; ++i) (void)b.call([] { return Status(); });
  for (int i = 0; i < 10; ++i) (void)b.call(fail);
  auto st = b.stats();
  EXPECT_EQ(st.successes, 1500u);
  EXPECT_EQ(st.failures, 10u);
  EXPECT_EQ(st.window_successes + st.window_failures, 1000u);  // the last 1000 calls
  EXPECT_EQ(st.window_failures, 10u);
  sched_setaffinity(0, sizeof old, &old);
}

TEST(BreakerRegistry, PresetsAndOverrides) {
  ManualClock clock;
  BreakerRegistry r({}, clock);
  auto& ec2 = r.get("ec2");
  EXPECT_EQ(ec2.config().failure_threshold, 5);
  EXPECT_EQ(ec2.config().recovery_timeout, 45s);
  EXPECT_EQ(ec2.config().max_concurrent, 8);
  EXPECT_EQ(r.get("s3").config().max_concurrent, 15);
  EXPECT_EQ(r.get("ssm").config().failure_threshold, 2);
  EXPECT_EQ(r.get("ssm").config().recovery_timeout, 60s);
  EXPECT_EQ(&r.get("ec2"), &ec2);
  EXPECT_EQ(r.all().size(), 3u);

  BreakerOverrides o;
  config::Schema schema;
  bind(schema, &o);
  config::Inputs in;
  in.env = [](const std::string& n) -> std::optional<std::string> {
    if (n == "GOMAN_CIRCUIT_BREAKER_FAILURE_THRESHOLD") return "9";
    if (n == "GANTRY_CIRCUIT_BREAKER_RECOVERY_TIMEOUT") return "2m";
    return std::nullopt;
  };
  ASSERT_TRUE(schema.load(in).is_ok());
  BreakerRegistry r2(o, clock);
  EXPECT_EQ(r2.get("ec2").config().failure_threshold, 9);
  EXPECT_EQ(r2.get("ec2").config().recovery_timeout, 2min);
  EXPECT_EQ(r2.get("ec2").config().max_concurrent, 8);
}

}  // namespace
}  // namespace gantry::core::resilience
