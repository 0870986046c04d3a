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
  auto& r = metrics::Registry::global();
  const char* help = "Rate limiter decisions, by limiter and result.";
  r.counter_callback("resilience_rate_limit_decisions_total", help, {"limiter", "result"}, {name_, "allowed"},
                     [this] { return static_cast<double>(total(&Shard::allowed)); });
  r.counter_callback("resilience_rate_limit_decisions_total", help, {"limiter", "result"}, {name_, "limited"},
                     [this] { return static_cast<double>(total(&Shard::limited)); });
  r.gauge_callback("resilience_rate_limit_keys", "Keys the rate limiter tracks.", {"limiter"}, {name_},
                   [this] { return static_cast<double>(size()); });
}

RateLimiter::~RateLimiter() {
  auto& r = metrics::Registry::global();
  r.remove_callback("resilience_rate_limit_decisions_total", {name_, "allowed"});
  r.remove_callback("resilience_rate_limit_decisions_total", {name_, "limited"});
  r.remove_callback("resilience_rate_limit_keys", {name_});
}

uint64_t RateLimiter::total(uint64_t Shard::*field) const {
  uint64_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].*field;
  }
  return n;
}

size_t RateLimiter::sweep_locked(Shard& s, int64_t now) {
  size_t n = 0;
  for (auto it = s.lru.begin(); it != s.lru.end();) {
    double refilled = it->bucket.tokens + static_cast<double>(now - it->bucket.last_ns) * 1e-9 * rate_;
    if (refilled >= burst_) {
      s.buckets.erase(std::string_view(it->key));
      it = s.lru.erase(it);
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
  Bucket* bp;
  if (auto it = s.buckets.find(key); it != s.buckets.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);  // now the most recently used
    bp = &it->second->bucket;
  } else {
    if (s.buckets.size() >= max_per_shard_) {
      s.buckets.erase(std::string_view(s.lru.back().key));
      s.lru.pop_back();
    }
    s.lru.push_front(Entry{std::string(key), Bucket{burst_, now}});
    s.buckets.emplace(std::string_view(s.lru.front().key), s.lru.begin());
    bp = &s.lru.front().bucket;
  }
  Bucket& b = *bp;
  b.tokens = std::min(burst_, b.tokens + static_cast<double>(now - b.last_ns) * 1e-9 * rate_);
  b.last_ns = now;
  if (b.tokens >= tokens) {
    b.tokens -= tokens;
    ++s.allowed;
    return {true, Duration::zero()};
  }
  ++s.limited;
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
