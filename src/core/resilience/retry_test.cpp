#include "core/resilience/retry.h"

#include <gtest/gtest.h>

namespace gantry::core::resilience {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

std::vector<ms> schedule(const RetryPolicy& p, double u, int n) {
  std::vector<ms> out;
  for (int i = 1; i <= n; ++i) out.push_back(std::chrono::duration_cast<ms>(p.delay(i, u)));
  return out;
}

TEST(RetryPolicy, PresetsAsSpecified) {
  auto d = RetryPolicy::standard();
  EXPECT_EQ(d.max_retries, 3);
  EXPECT_EQ(d.base_delay, 1s);
  EXPECT_EQ(d.max_delay, 30s);
  EXPECT_EQ(d.multiplier, 2.0);
  EXPECT_EQ(d.timeout, 5min);
  auto c = RetryPolicy::cloud();
  EXPECT_EQ(c.max_retries, 5);
  EXPECT_EQ(c.base_delay, 500ms);
  EXPECT_EQ(c.max_delay, 64s);
  EXPECT_EQ(c.timeout, 10min);
  auto k = RetryPolicy::critical();
  EXPECT_EQ(k.max_retries, 7);
  EXPECT_EQ(k.base_delay, 2s);
  EXPECT_EQ(k.max_delay, 2min);
  EXPECT_EQ(k.timeout, 20min);
  auto h = RetryPolicy::high_frequency();
  EXPECT_EQ(h.max_retries, 2);
  EXPECT_EQ(h.base_delay, 100ms);
  EXPECT_EQ(h.max_delay, 2s);
  EXPECT_EQ(h.multiplier, 1.5);
  EXPECT_EQ(h.timeout, 30s);
  EXPECT_EQ(RetryPolicy::preset("aws")->name, "cloud");
  EXPECT_FALSE(RetryPolicy::preset("nope"));
}

// u = 0.5 is the middle of the jitter range: exactly the nominal delays.
TEST(RetryPolicy, ExactSequencesWithoutJitterOffset) {
  EXPECT_EQ(schedule(RetryPolicy::standard(), 0.5, 7), (std::vector<ms>{1s, 2s, 4s, 8s, 16s, 30s, 30s}));
  EXPECT_EQ(schedule(RetryPolicy::cloud(), 0.5, 9),
            (std::vector<ms>{500ms, 1s, 2s, 4s, 8s, 16s, 32s, 64s, 64s}));
  EXPECT_EQ(schedule(RetryPolicy::critical(), 0.5, 8), (std::vector<ms>{2s, 4s, 8s, 16s, 32s, 64s, 120s, 120s}));
  EXPECT_EQ(schedule(RetryPolicy::high_frequency(), 0.5, 10),
            (std::vector<ms>{100ms, 150ms, 225ms, 337ms, 506ms, 759ms, 1139ms, 1708ms, 2s, 2s}));
}

TEST(RetryPolicy, JitterBoundsAndFullJitter) {
  auto p = RetryPolicy::standard();
  EXPECT_EQ(schedule(p, 0.0, 3), (std::vector<ms>{750ms, 1500ms, 3s}));      // -25%
  EXPECT_EQ(schedule(p, 0.999999, 1)[0].count(), 1249);                      // just under +25%
  p.full_jitter = true;
  EXPECT_EQ(schedule(p, 0.25, 3), (std::vector<ms>{250ms, 500ms, 1s}));
  p.full_jitter = false;
  p.jitter = 0;
  EXPECT_EQ(schedule(p, 0.9, 2), (std::vector<ms>{1s, 2s}));
  EXPECT_EQ(p.nominal_delay(200), 30s);  // no overflow far out
}

TEST(Retry, RetriesRetryableErrorsWithExactWaits) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  FixedRandom rnd(0.5);
  int calls = 0;
  Status s = retry(
      RetryPolicy::standard(),
      [&](const Attempt& a) -> Status {
        EXPECT_EQ(a.number, calls + 1);
        return ++calls < 3 ? unavailable("connection refused") : Status();
      },
      {.clock = &clock, .random = &rnd, .sleeper = &sleeper});
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(sleeper.slept(), (std::vector<Duration>{1s, 2s}));
}

TEST(Retry, StopsAfterMaxRetriesWithTheLastError) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  FixedRandom rnd(0.5);
  int calls = 0;
  Result<int> r = retry(
      RetryPolicy::high_frequency(), [&]() -> Result<int> { ++calls; return Status(Code::kResourceExhausted, "429"); },
      {.clock = &clock, .random = &rnd, .sleeper = &sleeper});
  EXPECT_EQ(calls, 3);  // first try + 2 retries
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(sleeper.slept(), (std::vector<Duration>{100ms, 150ms}));
}

TEST(Retry, NonRetryableErrorsAreNotRetried) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  int calls = 0;
  Status s = retry(RetryPolicy::critical(), [&] { ++calls; return invalid_argument("bad instance type"); },
                   {.clock = &clock, .sleeper = &sleeper});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(sleeper.slept().empty());
}

TEST(Retry, UnlimitedRetriesEndAtTheTimeout) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  FixedRandom rnd(0.5);
  RetryPolicy p = RetryPolicy::high_frequency();
  p.max_retries = -1;  // 30 s budget
  int calls = 0;
  Status s = retry(p, [&] { ++calls; return unavailable("down"); }, {.clock = &clock, .random = &rnd, .sleeper = &sleeper});
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_NE(s.to_string().find("last error: unavailable: down"), std::string::npos) << s.to_string();
  // 100+150+225+337.5+506.25+759.4+1139+1708.6 ms, then 2 s waits while they fit in 30 s.
  Duration total{};
  for (auto d : sleeper.slept()) total += d;
  EXPECT_LE(total, 30s);
  EXPECT_GT(total, 28s);
  EXPECT_EQ(calls, static_cast<int>(sleeper.slept().size()) + 1);
}

TEST(Retry, ChildDeadlineNeverOutlivesTheParent) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  FixedRandom rnd(0.5);
  Deadline parent = Deadline::after(clock, 5s);  // a cluster-wide budget
  int calls = 0;
  Status s = retry(
      RetryPolicy::critical(),  // would allow 20 min on its own
      [&](const Attempt& a) -> Status {
        ++calls;
        EXPECT_LE(a.deadline.time(), parent.time());
        return unavailable("ssh refused");
      },
      {.clock = &clock, .random = &rnd, .sleeper = &sleeper, .parent = parent});
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(sleeper.slept(), (std::vector<Duration>{2s}));  // 2 s fits in 5 s; the next 4 s would not
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(Deadline::after(clock, 1h).child(clock, 10min).remaining(clock), 10min);
  EXPECT_EQ(parent.child(clock, 10min).time(), parent.time());
}

TEST(Retry, ExpiredParentMeansNoAttempt) {
  ManualClock clock;
  Deadline parent = Deadline::after(clock, 1s);
  clock.advance(2s);
  int calls = 0;
  Status s = retry(RetryPolicy::standard(), [&] { ++calls; return Status(); }, {.clock = &clock, .parent = parent});
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded);
}

TEST(Retry, Classification) {
  EXPECT_TRUE(is_retryable(unavailable("refused")));
  EXPECT_TRUE(is_retryable(Status(Code::kDeadlineExceeded, "t")));
  EXPECT_TRUE(is_retryable(Status(Code::kResourceExhausted, "throttled")));
  EXPECT_FALSE(is_retryable(invalid_argument("x")));
  EXPECT_FALSE(is_retryable(Status(Code::kUnauthenticated, "x")));
  EXPECT_FALSE(is_retryable(Status(Code::kCircuitOpen, "x")));
  EXPECT_FALSE(is_retryable(Status()));
  for (int s : {408, 429, 500, 502, 503, 504}) EXPECT_TRUE(is_retryable_http_status(s)) << s;
  for (int s : {200, 400, 401, 403, 404, 409, 422, 501}) EXPECT_FALSE(is_retryable_http_status(s)) << s;
  for (int s : {408, 429, 500, 503}) EXPECT_TRUE(is_retryable(status_from_http(s, ""))) << s;
  for (int s : {400, 401, 403, 404, 422}) EXPECT_FALSE(is_retryable(status_from_http(s, ""))) << s;
  EXPECT_EQ(status_from_http(429, "slow down").to_string(), "resource exhausted: HTTP 429: slow down");
}

TEST(Retry, CustomClassifier) {
  ManualClock clock;
  ClockSleeper sleeper(clock);
  int calls = 0;
  Status s = retry(RetryPolicy::standard(), [&] { ++calls; return Status(Code::kNotFound, "not yet"); },
                   {.clock = &clock, .sleeper = &sleeper,
                    .retryable = [](const Status& st) { return st.code() == Code::kNotFound; }});
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(s.code(), Code::kNotFound);
}

TEST(Retry, EnvironmentOverrides) {
  RetryPolicy p = RetryPolicy::cloud();
  config::Schema schema("x");
  bind(schema, &p);
  config::Inputs in;
  in.env = [](const std::string& n) -> std::optional<std::string> {
    if (n == "GOMAN_RETRY_MAX_RETRIES") return "9";
    if (n == "GANTRY_RETRY_BASE_DELAY") return "250ms";
    return std::nullopt;
  };
  ASSERT_TRUE(schema.load(in).is_ok());
  EXPECT_EQ(p.max_retries, 9);
  EXPECT_EQ(p.base_delay, 250ms);
  EXPECT_EQ(p.max_delay, 64s);
}

}  // namespace
}  // namespace gantry::core::resilience
