#include "core/resilience/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "core/metrics.h"

namespace gantry::core::resilience {

RateLimiter::RateLimiter(std::string name, double rate, double burst, const Clock& clock, size_t max_keys)
    : name_(std::move(name)),
      rate_(rate),
      burst_(std::max(burst, 1.0)),
      clock_(clock),
      max_per_shard_(std::max<size_t>(1, max_keys / kShards)),
      shards_(new Shard[kShards]) {
  auto& f = metrics::Registry::global().counter("resilience_rate_limit_decisions_total",
                                                "Rate limiter decisions, by limiter and result.", {"limiter", "result"});
  allowed_ = &f.with({name_, "allowed"});
  limited_ = &f.with({name_, "limited"});
}

RateLimiter::~RateLimiter() = default;

size_t RateLimiter::sweep_locked(Shard& s, int64_t now) {
  size_t n = 0;
  for (auto it = s.buckets.begin(); it != s.buckets.end();) {
    double refilled = it->second.tokens + static_cast<double>(now - it->second.last_ns) * 1e-9 * rate_;
    if (refilled >= burst_) {
      it = s.buckets.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

RateDecision RateLimiter::take(std::string_view key, double tokens) {
  int64_t now = clock_.now().time_since_epoch().count();
  Shard& s = shards_[std::hash<std::string_view>{}(key) % kShards];
  std::lock_guard lock(s.mu);
  auto it = s.buckets.find(key);
  if (it == s.buckets.end()) {
    if (s.buckets.size() >= max_per_shard_ && sweep_locked(s, now) == 0) {
      auto oldest = std::min_element(s.buckets.begin(), s.buckets.end(),
                                     [](auto& a, auto& b) { return a.second.last_ns < b.second.last_ns; });
      s.buckets.erase(oldest);
    }
    it = s.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + static_cast<double>(now - b.last_ns) * 1e-9 * rate_);
  b.last_ns = now;
  if (b.tokens >= tokens) {
    b.tokens -= tokens;
    allowed_->inc();
    return {true, Duration::zero()};
  }
  limited_->inc();
  double wait_s = rate_ > 0 ? (tokens - b.tokens) / rate_ : 1e9;
  return {false, std::chrono::duration_cast<Duration>(std::chrono::duration<double>(wait_s))};
}

size_t RateLimiter::sweep() {
  int64_t now = clock_.now().time_since_epoch().count();
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += sweep_locked(shards_[i], now);
  }
  return n;
}

size_t RateLimiter::size() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].buckets.size();
  }
  return n;
}

}  // namespace gantry::core::resilience
