// Retry with exponential backoff, jitter and nested deadlines.
//
// Attempt n (n >= 1 after the first try) waits min(base × multiplier^(n-1), max_delay), then
// ± jitter (default ±25%, or "full jitter": uniform in [0, that]). The whole operation never
// outlives the policy's timeout nor the caller's own deadline: a child budget never exceeds
// its parent's remaining time. Only retryable failures are retried (is_retryable).
//
//   auto r = retry(RetryPolicy::cloud(), [&](const Attempt& a) -> Result<Instance> {
//     return provider.create(spec, a.deadline);
//   }, {.parent = cluster_deadline, .operation = "ec2.run_instances"});
//
// The success path allocates nothing. The schedule itself (Backoff) is a plain object that
// tests drive with a ManualClock and a FixedRandom; retry() and co_retry() (resilience/asio.h)
// are loops around it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/clock.h"
#include "core/config.h"
#include "core/resilience/deadline.h"
#include "core/status.h"

namespace gantry::core::resilience {

struct RetryPolicy {
  std::string name = "default";
  int max_retries = 3;  // retries after the first attempt; -1 = unlimited within the timeout
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{30'000};
  double multiplier = 2.0;
  std::chrono::milliseconds timeout{300'000};
  double jitter = 0.25;      // ± this fraction of the delay
  bool full_jitter = false;  // instead: uniform in [0, delay]

  // The presets (retries / base / max / multiplier / timeout):
  static RetryPolicy standard();        // "default": 3 / 1 s / 30 s / 2 / 5 min
  static RetryPolicy cloud();           // "cloud" (the guide's AWS): 5 / 500 ms / 64 s / 2 / 10 min
  static RetryPolicy critical();        // "critical": 7 / 2 s / 2 min / 2 / 20 min
  static RetryPolicy high_frequency();  // "high_frequency": 2 / 100 ms / 2 s / 1.5 / 30 s
  // "reconnect": unlimited / 100 ms / 5 s / 2 / no timeout. The one policy every bus and store
  // client's reconnection loop follows (with the service's breaker preset where it has one).
  static RetryPolicy reconnect();
  static std::optional<RetryPolicy> preset(std::string_view name);

  // The delay before retry n (n >= 1) before jitter.
  Duration nominal_delay(int n) const;
  // The delay before retry n with jitter drawn from u in [0, 1).
  Duration delay(int n, double u) const;
};

// Binds <prefix>_max_retries and <prefix>_base_delay with GANTRY_RETRY_MAX_RETRIES,
// GANTRY_RETRY_BASE_DELAY and the guide's GOMAN_RETRY_* names.
void bind(config::Schema& s, RetryPolicy* p, const std::string& prefix = "retry");

// Throttling, timeouts, unavailability (refused, reset, DNS), I/O and aborted conflicts are
// worth retrying; bad input, auth, not-found, an open circuit and bugs are not.
bool is_retryable(const Status& s);
// 408, 429 and 5xx except 501 are retryable; other 4xx are not.
bool is_retryable_http_status(int status);
// The Status an HTTP error status stands for (429 -> kResourceExhausted, 5xx -> kUnavailable,
// 408/504 -> kDeadlineExceeded, 401 -> kUnauthenticated, 403 -> kPermissionDenied,
// 404 -> kNotFound, 409 -> kAborted, other 4xx -> kInvalidArgument).
Status status_from_http(int status, std::string message);

struct Attempt {
  int number;         // 1 for the first try
  Deadline deadline;  // the budget left for the whole operation; pass it down
};

// The schedule of one operation's attempts.
class Backoff {
 public:
  Backoff(const RetryPolicy& p, const Clock& c, Random& r, Deadline parent = Deadline::infinite(),
          const std::function<bool(const Status&)>* retryable = nullptr)
      : p_(p), clock_(c), random_(r), start_(c.now_coarse()), deadline_(parent.child_at(start_, p.timeout)),
        retryable_(retryable) {}

  const Deadline& deadline() const { return deadline_; }
  // Whether no time is left for another attempt (the first is judged by the start time, so
  // a call that succeeds at once reads the clock only once).
  bool out_of_time() const { return attempts_ == 0 ? deadline_.time() <= start_ : deadline_.expired(clock_); }
  int attempts() const { return attempts_; }
  Attempt current() const { return {attempts_ + 1, deadline_}; }

  // Records a failed attempt. Returns the wait before the next attempt, or the Status to give
  // up with: the failure itself when it is not retryable or the retries are spent; a
  // kDeadlineExceeded naming the failure when the wait would cross the deadline.
  Result<Duration> next(const Status& failure);

 private:
  const RetryPolicy& p_;
  const Clock& clock_;
  Random& random_;
  MonoTime start_;
  Deadline deadline_;
  const std::function<bool(const Status&)>* retryable_;
  int attempts_ = 0;
};

struct RetryOptions {
  const Clock* clock = &Clock::real();
  Random* random = &Random::real();
  Sleeper* sleeper = &Sleeper::real();
  Deadline parent = Deadline::infinite();
  std::string_view operation = {};                        // for logs and metrics
  std::function<bool(const Status&)> retryable = nullptr;  // default: is_retryable
};

namespace detail {
template <class R>
Status status_of(const R& r) {
  if constexpr (std::is_same_v<R, Status>) return r;
  else return r.status();
}
template <class R>
bool ok_of(const R& r) { return r.is_ok(); }

// What a retry loop does after a failed attempt; shared by retry() and co_retry().
struct Step {
  bool give_up;
  bool return_failure;  // give up with the attempt's own result (else with `status`)
  Duration wait;
  Status status;
};
// Records the failure on the schedule; logs and counts the retry or the giving up.
Step after_failure(Backoff& b, const RetryPolicy& p, const RetryOptions& o, const Status& failure);
// The Status to give up with when no time is left for another attempt (logged and counted).
Status out_of_time(const Backoff& b, const RetryPolicy& p, const RetryOptions& o);
}  // namespace detail

// Runs fn until it succeeds or the policy gives up. fn takes `const Attempt&` (or nothing)
// and returns Status or Result<T>; retry returns the same type.
template <class F>
auto retry(const RetryPolicy& p, F&& fn, const RetryOptions& o = {}) {
  auto call = [&](const Attempt& a) {
    if constexpr (std::is_invocable_v<F&, const Attempt&>) return fn(a);
    else return fn();
  };
  using R = decltype(call(std::declval<const Attempt&>()));
  Backoff b(p, *o.clock, *o.random, o.parent, o.retryable ? &o.retryable : nullptr);
  for (;;) {
    if (b.out_of_time()) return R(detail::out_of_time(b, p, o));
    R r = call(b.current());
    if (detail::ok_of(r)) return r;
    detail::Step step = detail::after_failure(b, p, o, detail::status_of(r));
    if (step.give_up) {
      if (step.return_failure) return r;  // moved: R may be move-only
      return R(std::move(step.status));
    }
    o.sleeper->sleep_for(step.wait);
  }
}

}  // namespace gantry::core::resilience
