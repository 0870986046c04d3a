#include "core/resilience/retry.h"

#include <cmath>

#include "core/log.h"
#include "core/metrics.h"

namespace gantry::core::resilience {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::hours;

RetryPolicy RetryPolicy::standard() { return {"default", 3, seconds(1), seconds(30), 2.0, minutes(5)}; }
RetryPolicy RetryPolicy::cloud() { return {"cloud", 5, milliseconds(500), seconds(64), 2.0, minutes(10)}; }
RetryPolicy RetryPolicy::critical() { return {"critical", 7, seconds(2), minutes(2), 2.0, minutes(20)}; }
RetryPolicy RetryPolicy::high_frequency() {
  return {"high_frequency", 2, milliseconds(100), seconds(2), 1.5, seconds(30)};
}

RetryPolicy RetryPolicy::reconnect() {
  return {"reconnect", -1, milliseconds(100), seconds(5), 2.0, hours(24 * 365 * 100)};
}

std::optional<RetryPolicy> RetryPolicy::preset(std::string_view name) {
  if (name == "default") return standard();
  if (name == "cloud" || name == "aws") return cloud();
  if (name == "critical") return critical();
  if (name == "high_frequency" || name == "high-frequency") return high_frequency();
  if (name == "reconnect") return reconnect();
  return std::nullopt;
}

Duration RetryPolicy::nominal_delay(int n) const {
  if (n < 1) return Duration::zero();
  // Computed in double seconds: 2^60 ns overflows long before a sane max_delay caps it.
  double d = std::chrono::duration<double>(base_delay).count() * std::pow(multiplier, n - 1);
  double cap = std::chrono::duration<double>(max_delay).count();
  if (!(d < cap)) d = cap;  // also catches inf/nan
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(d));
}

Duration RetryPolicy::delay(int n, double u) const {
  double d = std::chrono::duration<double>(nominal_delay(n)).count();
  if (full_jitter) d *= u;
  else d *= 1.0 + jitter * (2.0 * u - 1.0);
  if (d < 0) d = 0;
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(d));
}

void bind(config::Schema& s, RetryPolicy* p, const std::string& prefix) {
  s.add(prefix + "_max_retries", &p->max_retries, "retries after the first attempt (-1 = until the timeout)")
      .env("GANTRY_RETRY_MAX_RETRIES")
      .env("GOMAN_RETRY_MAX_RETRIES")
      .range(-1, 1000);
  s.add(prefix + "_base_delay", &p->base_delay, "first retry delay")
      .env("GANTRY_RETRY_BASE_DELAY")
      .env("GOMAN_RETRY_BASE_DELAY")
      .range(0, 3'600'000);
}

bool is_retryable(const Status& s) {
  switch (s.code()) {
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
    case Code::kResourceExhausted:
    case Code::kAborted:
    case Code::kIoError: return true;
    default: return false;
  }
}

bool is_retryable_http_status(int status) {
  return status == 408 || status == 429 || (status >= 500 && status != 501 && status <= 599);
}

Status status_from_http(int status, std::string message) {
  Code c = Code::kInvalidArgument;
  if (status == 429) c = Code::kResourceExhausted;
  else if (status == 408 || status == 504) c = Code::kDeadlineExceeded;
  else if (status == 501) c = Code::kInternal;
  else if (status >= 500) c = Code::kUnavailable;
  else if (status == 401) c = Code::kUnauthenticated;
  else if (status == 403) c = Code::kPermissionDenied;
  else if (status == 404) c = Code::kNotFound;
  else if (status == 409) c = Code::kAborted;
  else if (status < 400) c = Code::kInternal;  // not an error status: a caller bug
  return Status(c, "HTTP " + std::to_string(status) + (message.empty() ? "" : ": " + message));
}

Result<Duration> Backoff::next(const Status& failure) {
  ++attempts_;
  bool retryable = retryable_ ? (*retryable_)(failure) : is_retryable(failure);
  if (!retryable) return failure;
  if (p_.max_retries >= 0 && attempts_ > p_.max_retries) return failure;
  Duration wait = p_.delay(attempts_, random_.uniform());
  if (!deadline_.is_infinite() && wait >= deadline_.remaining(clock_)) {
    return Status(Code::kDeadlineExceeded, "retry budget spent after " + std::to_string(attempts_) +
                                               " attempt(s); last error: " + failure.to_string());
  }
  return wait;
}

namespace detail {

namespace {
const log::Logger retry_log("retry");
metrics::Family<metrics::Counter>& retries() {
  static auto& f = metrics::Registry::global().counter("resilience_retries_total", "Retries made, by policy.", {"policy"});
  return f;
}
metrics::Family<metrics::Counter>& give_ups() {
  static auto& f = metrics::Registry::global().counter("resilience_retry_give_ups_total",
                                                      "Operations that failed after retrying, by policy.", {"policy"});
  return f;
}
}  // namespace

Step after_failure(Backoff& b, const RetryPolicy& p, const RetryOptions& o, const Status& failure) {
  Result<Duration> wait = b.next(failure);
  if (!wait.is_ok()) {
    give_ups().with({p.name}).inc();
    retry_log.warn("[RETRY] giving up", {{"policy", p.name}, {"operation", o.operation}, {"attempts", b.attempts()},
                                  {"error", wait.status().to_string()}});
    // next() answers the failure itself when it is not worth retrying; keep the caller's result.
    bool same = wait.status().code() == failure.code() && wait.status().message() == failure.message();
    return {true, same, Duration::zero(), same ? Status() : wait.status()};
  }
  retries().with({p.name}).inc();
  retry_log.info("[RETRY] attempt failed; retrying",
          {{"policy", p.name}, {"operation", o.operation}, {"attempt", b.attempts()},
           {"wait_ms", log::ms(*wait)}, {"error", failure.to_string()}});
  return {false, false, *wait, Status()};
}

Status out_of_time(const Backoff& b, const RetryPolicy& p, const RetryOptions& o) {
  Status s(Code::kDeadlineExceeded, "no time left for attempt " + std::to_string(b.attempts() + 1), o.operation);
  give_ups().with({p.name}).inc();
  retry_log.warn("[RETRY] giving up", {{"policy", p.name}, {"operation", o.operation}, {"attempts", b.attempts()},
                                {"error", s.to_string()}});
  return s;
}

}  // namespace detail

}  // namespace gantry::core::resilience
