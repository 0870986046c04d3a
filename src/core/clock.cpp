#include "core/clock.h"

#include <time.h>

#include <ctime>
#include <string>

namespace gantry::core {

MonoTime SystemClock::now_coarse() const noexcept {
  // steady_clock is CLOCK_MONOTONIC on Linux; the coarse variant shares its epoch.
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return MonoTime(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

Clock& Clock::real() {
  static SystemClock clock;
  return clock;
}

namespace {
class ThreadLocalRandom final : public Random {
 public:
  double uniform() noexcept override {
    thread_local std::mt19937_64 gen(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
  }
};
}  // namespace

Random& Random::real() {
  static ThreadLocalRandom r;
  return r;
}

std::string rfc3339(WallTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace gantry::core
