#include "core/resilience/circuit_breaker.h"

#include <sched.h>

#include <algorithm>
#include <thread>

#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/retry.h"

namespace gantry::core::resilience {

namespace {
const log::Logger circuit_breaker_log("circuit");

// Statistics are striped per CPU, so threads running on different CPUs never write the same
// cache line. (Striping per thread collided: threads come and go, and a counter modulo the
// slot count soon puts a new thread on a busy thread's slot.) glibc answers sched_getcpu from
// rseq, for a few nanoseconds.
unsigned cpu_slot(unsigned slots) {
  int cpu = sched_getcpu();
  return cpu < 0 ? 0u : static_cast<unsigned>(cpu) % slots;
}

unsigned slot_count() {
  unsigned n = std::thread::hardware_concurrency();
  return std::clamp(n, 1u, 64u);
}
}  // namespace

std::string_view state_name(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed: return "closed";
    case BreakerState::kHalfOpen: return "half-open";
    case BreakerState::kOpen: return "open";
  }
  return "?";
}

CircuitBreaker::CircuitBreaker(std::string name, BreakerConfig cfg, const Clock& clock)
    : name_(std::move(name)), cfg_(cfg), clock_(clock), n_slots_(slot_count()), slots_(new Slot[n_slots_]) {
  auto& reg = metrics::Registry::global();
  state_gauge_ = &reg.gauge("resilience_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                            {"service"}).with({name_});
  rejected_counter_ = &reg.counter("resilience_circuit_rejections_total",
                                   "Calls a circuit breaker refused without trying them.", {"service"}).with({name_});
  state_gauge_->set(0);
}

CircuitBreaker::~CircuitBreaker() = default;

bool CircuitBreaker::counts_as_failure(const Status& s) {
  return !s.is_ok() && (is_retryable(s) || s.code() == Code::kInternal);
}

void CircuitBreaker::Permit::resolve(const Status& s) {
  if (CircuitBreaker::counts_as_failure(s)) failure();
  else success();
}

void CircuitBreaker::record(Outcome o) {
  Slot& s = slots_[cpu_slot(n_slots_)];
  switch (o) {
    case kSuccess: s.successes.fetch_add(1, std::memory_order_relaxed); break;
    case kFailure: s.failures.fetch_add(1, std::memory_order_relaxed); break;
    case kRejected: s.rejections.fetch_add(1, std::memory_order_relaxed); break;
    default: break;
  }
  uint32_t p = s.pos.fetch_add(1, std::memory_order_relaxed);
  s.ring[p % kWindow].store(o, std::memory_order_relaxed);
}

void CircuitBreaker::release_concurrency() {
  if (cfg_.max_concurrent > 0) in_flight_.fetch_sub(1, std::memory_order_acq_rel);
}

Status CircuitBreaker::reject(Code code, std::string_view why) {
  record(kRejected);
  rejected_counter_->inc();
  return Status(code, std::string(why), name_);
}

Result<CircuitBreaker::Permit> CircuitBreaker::acquire() {
  if (cfg_.max_concurrent > 0) {
    if (in_flight_.fetch_add(1, std::memory_order_acq_rel) >= cfg_.max_concurrent) {
      in_flight_.fetch_sub(1, std::memory_order_acq_rel);
      return reject(Code::kResourceExhausted, "too many calls in flight (max_concurrent " +
                                                  std::to_string(cfg_.max_concurrent) + ")");
    }
  }
  auto s = static_cast<BreakerState>(state_.load(std::memory_order_acquire));
  if (s == BreakerState::kClosed) return Permit(this, false);
  if (s == BreakerState::kOpen) {
    int64_t since = now_ns() - opened_at_ns_.load(std::memory_order_acquire);
    if (since < std::chrono::nanoseconds(cfg_.recovery_timeout).count()) {
      release_concurrency();
      return reject(Code::kCircuitOpen, "circuit open");
    }
    transition(BreakerState::kOpen, BreakerState::kHalfOpen);
    s = static_cast<BreakerState>(state_.load(std::memory_order_acquire));
    if (s == BreakerState::kClosed) return Permit(this, false);
    if (s == BreakerState::kOpen) {  // another thread's trial failed meanwhile
      release_concurrency();
      return reject(Code::kCircuitOpen, "circuit open");
    }
  }
  // half-open: admit up to half_open_max_calls trials
  if (half_open_admitted_.fetch_add(1, std::memory_order_acq_rel) >= cfg_.half_open_max_calls) {
    half_open_admitted_.fetch_sub(1, std::memory_order_acq_rel);
    release_concurrency();
    return reject(Code::kCircuitOpen, "circuit half-open: trial call in progress");
  }
  return Permit(this, true);
}

void CircuitBreaker::on_success(bool trial) {
  if (trial) {
    transition(BreakerState::kHalfOpen, BreakerState::kClosed);
  } else if (consecutive_failures_.load(std::memory_order_relaxed) != 0) {
    // Written only when it changes, so the success path leaves this cache line shared.
    consecutive_failures_.store(0, std::memory_order_relaxed);
  }
  record(kSuccess);
  release_concurrency();
}

void CircuitBreaker::on_failure(bool trial) {
  if (trial) {
    transition(BreakerState::kHalfOpen, BreakerState::kOpen);
  } else {
    int n = consecutive_failures_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n >= cfg_.failure_threshold && state_.load(std::memory_order_acquire) == static_cast<uint8_t>(BreakerState::kClosed))
      transition(BreakerState::kClosed, BreakerState::kOpen);
  }
  record(kFailure);
  release_concurrency();
}

void CircuitBreaker::transition(BreakerState from, BreakerState to) {
  {
    std::lock_guard lock(mu_);
    if (state_.load(std::memory_order_acquire) != static_cast<uint8_t>(from)) return;  // someone else moved it
    if (to == BreakerState::kOpen) opened_at_ns_.store(now_ns(), std::memory_order_release);
    if (to == BreakerState::kHalfOpen || to == BreakerState::kOpen) half_open_admitted_.store(0, std::memory_order_release);
    if (to == BreakerState::kClosed) consecutive_failures_.store(0, std::memory_order_release);
    state_.store(static_cast<uint8_t>(to), std::memory_order_release);
    changes_.push_back({clock_.wall_now(), from, to});
    if (changes_.size() > 100) changes_.pop_front();
  }
  state_gauge_->set(static_cast<double>(static_cast<int>(to)));
  static auto& transitions = metrics::Registry::global().counter(
      "resilience_circuit_transitions_total", "Circuit breaker state changes.", {"service", "to"});
  transitions.with({name_, std::string(state_name(to))}).inc();
  log::Fields f = {{"service", name_}, {"from", state_name(from)}, {"to", state_name(to)},
                   {"failure_threshold", cfg_.failure_threshold},
                   {"recovery_timeout_ms", static_cast<long long>(cfg_.recovery_timeout.count())}};
  if (to == BreakerState::kOpen) circuit_breaker_log.warn("[CIRCUIT] opened", f);
  else circuit_breaker_log.info(to == BreakerState::kClosed ? "[CIRCUIT] closed" : "[CIRCUIT] half-open: trying again", f);
}

BreakerState CircuitBreaker::state() const {
  auto s = static_cast<BreakerState>(state_.load(std::memory_order_acquire));
  if (s == BreakerState::kOpen &&
      now_ns() - opened_at_ns_.load(std::memory_order_acquire) >= std::chrono::nanoseconds(cfg_.recovery_timeout).count())
    return BreakerState::kHalfOpen;
  return s;
}

BreakerStats CircuitBreaker::stats() const {
  BreakerStats st;
  st.state = state();
  for (unsigned i = 0; i < n_slots_; ++i) {
    const Slot& s = slots_[i];
    st.successes += s.successes.load(std::memory_order_relaxed);
    st.failures += s.failures.load(std::memory_order_relaxed);
    st.rejections += s.rejections.load(std::memory_order_relaxed);
    for (auto& o : s.ring) {
      switch (o.load(std::memory_order_relaxed)) {
        case kSuccess: ++st.window_successes; break;
        case kFailure: ++st.window_failures; break;
        case kRejected: ++st.window_rejections; break;
        default: break;
      }
    }
  }
  std::lock_guard lock(mu_);
  st.changes.assign(changes_.begin(), changes_.end());
  return st;
}

void bind(config::Schema& s, BreakerOverrides* o) {
  s.add("circuit_breaker_failure_threshold", &o->failure_threshold,
        "consecutive failures that open a breaker (0 = each service's preset)")
      .env("GANTRY_CIRCUIT_BREAKER_FAILURE_THRESHOLD")
      .env("GOMAN_CIRCUIT_BREAKER_FAILURE_THRESHOLD")
      .range(0, 1000);
  s.add("circuit_breaker_recovery_timeout", &o->recovery_timeout,
        "how long an open breaker waits before a trial call (0 = each service's preset)")
      .env("GANTRY_CIRCUIT_BREAKER_RECOVERY_TIMEOUT")
      .env("GOMAN_CIRCUIT_BREAKER_RECOVERY_TIMEOUT")
      .range(0, 86'400'000);
}

BreakerConfig BreakerRegistry::preset(std::string_view service) {
  using ms = std::chrono::milliseconds;
  if (service == "ec2") return {5, ms(45'000), 1, 8};
  if (service == "s3") return {3, ms(10'000), 1, 15};
  if (service == "ssm") return {2, ms(60'000), 1, 3};
  if (service == "postgres") return {5, ms(10'000), 1, 0};
  if (service == "redis") return {5, ms(5'000), 1, 0};
  if (service == "nats") return {5, ms(5'000), 1, 0};
  if (service == "rabbitmq") return {5, ms(10'000), 1, 0};
  if (service == "ssh" || service.substr(0, 4) == "ssh:") return {3, ms(30'000), 1, 10};  // "ssh:<host>": one per host
  if (service == "http-target") return {5, ms(30'000), 1, 0};
  return {5, ms(30'000), 1, 0};
}

CircuitBreaker& BreakerRegistry::get(std::string_view service) {
  std::lock_guard lock(mu_);
  for (auto& b : breakers_)
    if (b->name() == service) return *b;
  BreakerConfig cfg = preset(service);
  if (o_.failure_threshold > 0) cfg.failure_threshold = o_.failure_threshold;
  if (o_.recovery_timeout.count() > 0) cfg.recovery_timeout = o_.recovery_timeout;
  breakers_.push_back(std::make_unique<CircuitBreaker>(std::string(service), cfg, clock_));
  return *breakers_.back();
}

std::vector<const CircuitBreaker*> BreakerRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<const CircuitBreaker*> out;
  for (auto& b : breakers_) out.push_back(b.get());
  return out;
}

}  // namespace gantry::core::resilience
