// Injected time and randomness. Anything that waits, expires or jitters takes a Clock& and a
// Random&, so tests drive time by hand (ManualClock) and fix the jitter (FixedRandom) instead
// of sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>
#include <cstdint>
#include <mutex>
#include <random>

namespace gantry::core {

using Duration = std::chrono::nanoseconds;
using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// Milliseconds since the Unix epoch: the unit of the wire formats' and tables' timestamps.
inline int64_t unix_ms(WallTime t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime now() const noexcept = 0;       // for intervals and deadlines
  virtual WallTime wall_now() const noexcept = 0;  // for timestamps shown to people
  // The same clock as now(), read cheaply with a resolution of a few milliseconds (it may lag
  // now() by that much): for budgets, TTLs and timeouts checked on hot paths.
  virtual MonoTime now_coarse() const noexcept { return now(); }
  // The process-wide real clock.
  static Clock& real();
};

class SystemClock final : public Clock {
 public:
  MonoTime now() const noexcept override { return std::chrono::steady_clock::now(); }
  MonoTime now_coarse() const noexcept override;
  WallTime wall_now() const noexcept override { return std::chrono::system_clock::now(); }
};

// Time moves only when a test says so. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime wall_start = WallTime(std::chrono::seconds(1'700'000'000)))
      : mono_(0), wall_offset_(wall_start.time_since_epoch().count()) {}
  MonoTime now() const noexcept override { return MonoTime(Duration(mono_.load(std::memory_order_acquire))); }
  WallTime wall_now() const noexcept override {
    return WallTime(std::chrono::duration_cast<WallTime::duration>(
        Duration(mono_.load(std::memory_order_acquire)) + WallTime::duration(wall_offset_)));
  }
  void advance(Duration d) noexcept { mono_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> mono_;
  int64_t wall_offset_;
};

// A source of uniform numbers in [0, 1).
class Random {
 public:
  virtual ~Random() = default;
  virtual double uniform() noexcept = 0;
  // A process-wide, thread-safe generator seeded from the OS.
  static Random& real();
};

class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : gen_(seed) {}
  double uniform() noexcept override {
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(gen_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 gen_;
};

// Always the same value: makes jittered sequences exact in tests.
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(double v) : v_(v) {}
  double uniform() noexcept override { return v_; }

 private:
  double v_;
};

// Seconds since the Unix epoch as a double, for JSON and metrics.
inline double to_unix_seconds(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
// RFC 3339 with milliseconds in UTC: 2026-11-22T10:00:00.123Z
std::string rfc3339(WallTime t);
// Go's time.RFC3339Nano in UTC: nanoseconds with trailing zeros dropped (and no fraction at
// all on a whole second): 2026-11-22T10:00:00.1234567Z. Shapes the originals wrote this way
// keep it.
std::string rfc3339_nano(WallTime t);
// Parses RFC 3339 (2026-11-22T10:00:00Z, fractional seconds, a numeric offset or Z, 't'/' '
// as separator). nullopt when malformed or out of range.
std::optional<WallTime> parse_rfc3339(std::string_view text);

}  // namespace gantry::core
