// Deadlines that nest, and sleeping that tests can replace.
//
// A Deadline is a point on the monotonic clock. child() never reaches past its parent: a
// per-node retry budget of 10 minutes under a cluster-wide deadline 2 minutes away ends in 2
// minutes. A Sleeper waits; ClockSleeper advances a ManualClock instead, so code that backs
// off can be tested exactly and instantly.
#pragma once

#include <algorithm>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace gantry::core::resilience {

class Deadline {
 public:
  static Deadline infinite() { return Deadline(MonoTime::max()); }
  static Deadline at(MonoTime t) { return Deadline(t); }
  static Deadline after(const Clock& c, Duration d) { return Deadline(saturating_add(c.now(), d)); }

  // The earlier of this deadline and `d` from now.
  Deadline child(const Clock& c, Duration d) const { return child_at(c.now(), d); }
  // The earlier of this deadline and `d` from `now` (a time the caller has already read).
  Deadline child_at(MonoTime now, Duration d) const { return Deadline(std::min(at_, saturating_add(now, d))); }
  Deadline earliest(Deadline o) const { return Deadline(std::min(at_, o.at_)); }

  bool is_infinite() const { return at_ == MonoTime::max(); }
  bool expired(const Clock& c) const { return c.now() >= at_; }
  // Zero once expired; Duration::max() when infinite.
  Duration remaining(const Clock& c) const {
    if (is_infinite()) return Duration::max();
    auto now = c.now();
    return now >= at_ ? Duration::zero() : at_ - now;
  }
  MonoTime time() const { return at_; }

 private:
  explicit Deadline(MonoTime t) : at_(t) {}
  static MonoTime saturating_add(MonoTime t, Duration d) {
    if (d >= MonoTime::max() - t) return MonoTime::max();
    return t + d;
  }
  MonoTime at_;
};

class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void sleep_for(Duration d) = 0;
  // Sleeps for real.
  static Sleeper& real();
};

class RealSleeper final : public Sleeper {
 public:
  void sleep_for(Duration d) override { std::this_thread::sleep_for(d); }
};

// For tests: "sleeping" moves the manual clock forward and records how long.
class ClockSleeper final : public Sleeper {
 public:
  explicit ClockSleeper(ManualClock& c) : clock_(c) {}
  void sleep_for(Duration d) override {
    slept_.push_back(d);
    clock_.advance(d);
  }
  const std::vector<Duration>& slept() const { return slept_; }

 private:
  ManualClock& clock_;
  std::vector<Duration> slept_;
};

inline Sleeper& Sleeper::real() {
  static RealSleeper s;
  return s;
}

}  // namespace gantry::core::resilience
