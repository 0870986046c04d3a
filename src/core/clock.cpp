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
  // Floored, so a time before 1970 keeps a millisecond part of 0..999 (found by fuzzing:
  // 1828-11-22T07:00:00.8Z was written with ".-200").
  auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  int64_t whole = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  std::time_t secs = static_cast<std::time_t>(whole);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms - whole * 1000));
  return buf;
}

std::string rfc3339_nano(WallTime t) {
  auto ns = std::chrono::floor<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t whole = ns >= 0 ? ns / 1'000'000'000 : -((-ns + 999'999'999) / 1'000'000'000);
  int64_t frac = ns - whole * 1'000'000'000;
  std::time_t secs = static_cast<std::time_t>(whole);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf, static_cast<size_t>(n));
  if (frac != 0) {
    char f[16];
    std::snprintf(f, sizeof f, ".%09lld", static_cast<long long>(frac));
    std::string fs(f);
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  return out + "Z";
}

std::optional<WallTime> parse_rfc3339(std::string_view t) {
  auto digits = [&](size_t at, size_t n, int* out) {
    if (at + n > t.size()) return false;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!digits(0, 4, &y) || t.size() < 20 || t[4] != '-' || !digits(5, 2, &mo) || t[7] != '-' || !digits(8, 2, &d) ||
      (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !digits(11, 2, &h) || t[13] != ':' || !digits(14, 2, &mi) ||
      t[16] != ':' || !digits(17, 2, &sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  // WallTime counts nanoseconds in 64 bits: 1677-09-21 to 2262-04-11. A year outside
  // (4052-11-22, found by fuzzing) overflowed; refused, with a day of margin either side.
  if (y < 1678 || y > 2261) return std::nullopt;
  size_t i = 19;
  int64_t nanos = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    int n = 0;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (n < 9) nanos = nanos * 10 + (t[i] - '0');
      ++n;
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (int k = std::min(n, 9); k < 9; ++k) nanos *= 10;
  }
  int offset_min = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    int oh, om;
    if (!digits(i + 1, 2, &oh) || i + 3 >= t.size() || t[i + 3] != ':' || !digits(i + 4, 2, &om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_min = (t[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  // Calendar arithmetic, not timegm(): glibc's takes the time-zone lock and cost more than the
  // rest of a trade's parse on the trades shards.
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;  // 31 February and the like
  auto secs = std::chrono::sys_days(ymd).time_since_epoch() + std::chrono::hours(h) + std::chrono::minutes(mi) +
              std::chrono::seconds(sec) - std::chrono::minutes(offset_min);
  return WallTime(std::chrono::duration_cast<WallTime::duration>(secs + std::chrono::nanoseconds(nanos)));
}

}  // namespace gantry::core
