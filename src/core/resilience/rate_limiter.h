// Token-bucket rate limiting per key (a client id, an API token): `rate` tokens a second up
// to `burst`. O(1) per decision, sharded by key so threads rarely share a lock.
//
// Memory stays bounded under any number of keys: a bucket that has refilled to `burst` is
// indistinguishable from a new one, so sweep() (O(keys), meant for a periodic job) drops such
// idle keys without changing any future answer; and a new key arriving at a shard that holds
// its share of `max_keys` evicts that shard's least recently used key, in O(1) (a forgotten
// key starts again with a full bucket). Decisions are counted per shard and exported
// at scrape time (resilience_rate_limit_decisions_total, resilience_rate_limit_keys), so the
// decision path shares no cache line between threads.
#pragma once

#include <array>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"

namespace gantry::core::resilience {

struct RateDecision {
  bool allowed;
  Duration retry_after;  // zero when allowed; else the wait until enough tokens (Retry-After)
};

class RateLimiter {
 public:
  RateLimiter(std::string name, double rate_per_second, double burst, const Clock& clock = Clock::real(),
              size_t max_keys = 100'000);
  ~RateLimiter();

  RateDecision take(std::string_view key, double tokens = 1.0);
  // Drops keys whose bucket is full again; returns how many.
  size_t sweep();
  size_t size() const;
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  static constexpr size_t kShards = 16;
  struct Bucket {
    double tokens;
    int64_t last_ns;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    std::string key;
    Bucket bucket;
  };
  using Lru = std::list<Entry>;  // most recently used first
  struct alignas(64) Shard {
    mutable std::mutex mu;
    Lru lru;
    // Keyed by a view of the list node's own key: nodes never move, so the views stay valid.
    std::unordered_map<std::string_view, Lru::iterator, Hash, std::equal_to<>> buckets;
    uint64_t allowed = 0, limited = 0;  // counted under mu, read at scrape time
  };
  uint64_t total(uint64_t Shard::*field) const;
  size_t sweep_locked(Shard& s, int64_t now);

  const std::string name_;
  const double rate_, burst_;
  const Clock& clock_;
  const size_t max_per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace gantry::core::resilience
