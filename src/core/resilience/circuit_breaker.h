// Circuit breaker: stop calling a dependency that keeps failing, and test it again after a
// while.
//
//   closed    calls pass; `failure_threshold` consecutive failures open the breaker
//   open      calls fail fast with kCircuitOpen until `recovery_timeout` has passed
//   half-open up to `half_open_max_calls` trial calls pass; a success closes the breaker,
//             a failure opens it again for another recovery_timeout
//
// `max_concurrent` (> 0) bounds calls in flight in every state; the excess is rejected at once
// with kResourceExhausted, never queued. Only failures that say the dependency is unwell count
// (is_retryable, or kInternal); bad input does not open a breaker.
//
//   auto r = breaker.call([&] { return provider.describe(id); });
//
// Thread-safe. The closed-state success path is a few relaxed atomic operations on the
// statistics slot of the CPU it runs on: no lock, no allocation, no line shared across CPUs. Transitions (rare) take a
// mutex, are logged with the tag [CIRCUIT] and exported as metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"

namespace gantry::core::metrics {
class Gauge;
class Counter;
}  // namespace gantry::core::metrics

namespace gantry::core::resilience {

struct BreakerConfig {
  int failure_threshold = 5;
  std::chrono::milliseconds recovery_timeout{30'000};
  int half_open_max_calls = 1;
  int max_concurrent = 0;  // 0 = unlimited
};

enum class BreakerState : uint8_t { kClosed = 0, kHalfOpen = 1, kOpen = 2 };
std::string_view state_name(BreakerState s);

struct BreakerStats {
  BreakerState state;
  // Over the most recent calls (the last 1000 made on each CPU).
  uint64_t window_successes = 0, window_failures = 0, window_rejections = 0;
  // Since the breaker was made.
  uint64_t successes = 0, failures = 0, rejections = 0;
  struct Change {
    WallTime at;
    BreakerState from, to;
  };
  std::vector<Change> changes;  // the last 100 state changes, oldest first
};

class CircuitBreaker {
 public:
  CircuitBreaker(std::string name, BreakerConfig cfg, const Clock& clock = Clock::real());
  ~CircuitBreaker();
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Admission to one call. Resolve it with success() or failure(); a permit dropped unresolved
  // counts as a failure (the call threw or was abandoned).
  class Permit {
   public:
    Permit(Permit&& o) noexcept : cb_(o.cb_), trial_(o.trial_) { o.cb_ = nullptr; }
    Permit& operator=(Permit&&) = delete;
    ~Permit() {
      if (cb_) cb_->on_failure(trial_);
    }
    void success() {
      if (cb_) cb_->on_success(trial_);
      cb_ = nullptr;
    }
    void failure() {
      if (cb_) cb_->on_failure(trial_);
      cb_ = nullptr;
    }
    // Resolves by outcome: failures that do not count (bad input) count as successes for the
    // breaker, since the dependency answered.
    void resolve(const Status& s);

   private:
    friend class CircuitBreaker;
    Permit(CircuitBreaker* cb, bool trial) : cb_(cb), trial_(trial) {}
    CircuitBreaker* cb_;
    bool trial_;
  };

  // A permit, or kCircuitOpen (open, or half-open with its trial calls taken) or
  // kResourceExhausted (max_concurrent reached).
  Result<Permit> acquire();

  // acquire(), run fn, resolve by its outcome. fn returns Status or Result<T>.
  template <class F>
  auto call(F&& fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    auto p = acquire();
    if (!p.is_ok()) return R(p.status());
    R r = fn();
    if constexpr (std::is_same_v<R, Status>) p->resolve(r);
    else p->resolve(r.is_ok() ? Status() : r.status());
    return r;
  }

  // The state now (an open breaker whose recovery time has passed reads as half-open).
  BreakerState state() const;
  BreakerStats stats() const;
  const std::string& name() const { return name_; }
  const BreakerConfig& config() const { return cfg_; }
  // Whether a failure counts toward opening (is_retryable or kInternal).
  static bool counts_as_failure(const Status& s);

 private:
  static constexpr int kWindow = 1000;
  enum Outcome : uint8_t { kNone = 0, kSuccess = 1, kFailure = 2, kRejected = 3 };
  struct alignas(64) Slot {
    std::atomic<uint64_t> successes{0}, failures{0}, rejections{0};
    std::atomic<uint32_t> pos{0};
    std::array<std::atomic<uint8_t>, kWindow> ring{};
  };

  void on_success(bool trial);
  void on_failure(bool trial);
  void record(Outcome o);
  void release_concurrency();
  Status reject(Code code, std::string_view why);
  void transition(BreakerState from, BreakerState to);
  int64_t now_ns() const { return clock_.now().time_since_epoch().count(); }

  const std::string name_;
  const BreakerConfig cfg_;
  const Clock& clock_;
  std::atomic<uint8_t> state_{static_cast<uint8_t>(BreakerState::kClosed)};
  alignas(64) std::atomic<int> consecutive_failures_{0};
  std::atomic<int64_t> opened_at_ns_{0};
  std::atomic<int> half_open_admitted_{0};
  alignas(64) std::atomic<int> in_flight_{0};
  const unsigned n_slots_;  // one per CPU
  std::unique_ptr<Slot[]> slots_;
  mutable std::mutex mu_;  // transitions and their history
  std::deque<BreakerStats::Change> changes_;
  metrics::Gauge* state_gauge_;
  metrics::Counter* rejected_counter_;
};

// Environment overrides applied to every breaker a registry makes.
struct BreakerOverrides {
  int failure_threshold = 0;                      // 0 = keep the preset
  std::chrono::milliseconds recovery_timeout{0};  // 0 = keep the preset
};
// GANTRY_CIRCUIT_BREAKER_FAILURE_THRESHOLD, GANTRY_CIRCUIT_BREAKER_RECOVERY_TIMEOUT (and GOMAN_).
void bind(config::Schema& s, BreakerOverrides* o);

// One breaker per named service, made on first use from its preset.
class BreakerRegistry {
 public:
  explicit BreakerRegistry(BreakerOverrides o = {}, const Clock& clock = Clock::real()) : o_(o), clock_(clock) {}
  // Presets (threshold / recovery / max concurrent): ec2 5/45 s/8, s3 3/10 s/15, ssm 2/60 s/3;
  // postgres 5/10 s, redis 5/5 s, nats 5/5 s, rabbitmq 5/10 s, ssh (and ssh:<host>) 3/30 s/10,
  // http-target 5/30 s; anything else 5/30 s.
  static BreakerConfig preset(std::string_view service);
  CircuitBreaker& get(std::string_view service);
  std::vector<const CircuitBreaker*> all() const;

 private:
  BreakerOverrides o_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<CircuitBreaker>> breakers_;
};

}  // namespace gantry::core::resilience
