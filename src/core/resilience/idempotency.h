// Idempotency store: an operation with the same key runs once, and its result is reused.
//
// The key is the SHA-256 of the operation's name and its canonical parameters
// (idempotency_key). For a key:
//   - no entry, or an expired one: this caller runs the operation (a miss);
//   - pending: this caller waits for the running one's result instead of running it again
//     (single flight);
//   - completed: the cached value is returned (a hit) until its TTL ends.
// A failed run is not cached: its concurrent waiters receive the failure, and the next call
// runs the operation again. An operation that throws is a failed run (kInternal, the exception's
// text); the exception does not propagate. A caller joining a pending run waits at most
// `join_timeout`, then gets kDeadlineExceeded (the run goes on and its result is still cached). Completed entries beyond `max_entries` are evicted least recently
// used first; expired ones are dropped by sweep() (every 5 minutes with start_sweeper, or on
// lookup).
//
// Sharded by key; a hit takes one shard lock and copies V, and allocates nothing when V's
// copy does not.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/status.h"

namespace gantry::core::resilience {

using IdempotencyKey = std::array<uint8_t, 32>;

// SHA-256 of operation '\0' params. Pass parameters in a canonical form (canonical_json).
IdempotencyKey idempotency_key(std::string_view operation, std::string_view canonical_params);
// A JSON text with object keys sorted at every level and no insignificant whitespace, so equal
// parameters give equal keys. Returns kInvalidArgument for text that is not JSON.
Result<std::string> canonical_json(std::string_view json);
std::string to_hex(const IdempotencyKey& k);

struct IdempotencyStats {
  uint64_t hits = 0, misses = 0, joined = 0, evictions = 0, expirations = 0;
  size_t entries = 0;
  double hit_rate() const { return hits + misses ? static_cast<double>(hits) / static_cast<double>(hits + misses) : 0; }
};

namespace detail {
// Exports a store's statistics as resilience_idempotency_{hits,misses,entries}{store=name},
// read at scrape time: the hit path touches no shared counter.
void export_idempotency_metrics(const std::string& name, std::function<IdempotencyStats()> stats);
void unexport_idempotency_metrics(const std::string& name);
}  // namespace detail

template <class V>
class IdempotencyStore {
 public:
  struct Options {
    std::string name = "default";
    Duration ttl = std::chrono::hours(2);
    size_t max_entries = 100'000;
    Duration join_timeout = std::chrono::minutes(5);
  };

  explicit IdempotencyStore(Options o = {}, const Clock& clock = Clock::real())
      : o_(std::move(o)), clock_(clock), shards_(new Shard[kShards]) {
    detail::export_idempotency_metrics(o_.name, [this] { return stats(); });
  }
  ~IdempotencyStore() {
    stop_sweeper();
    detail::unexport_idempotency_metrics(o_.name);
  }
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // Runs fn (returning Result<V>) at most once per key while its result lives.
  template <class F>
  Result<V> run(const IdempotencyKey& key, F&& fn, std::optional<Duration> ttl = std::nullopt) {
    Shard& s = shard(key);
    std::shared_ptr<Flight> flight;
    Entry* e = nullptr;
    {
      std::unique_lock lock(s.mu);
      int64_t now = now_ns();
      auto it = s.map.find(key);
      if (it != s.map.end()) {
        e = it->second.get();
        if (e->flight) {  // pending: join it
          flight = e->flight;
          ++s.joined;
        } else if (e->expires_ns > now) {  // completed and fresh: a hit
          ++s.hits;
          touch(s, e);
          return *e->value;
        } else {  // expired
          unlink(s, e);
          s.map.erase(it);
          ++s.expirations;
          e = nullptr;
        }
      }
      if (!flight) {
        ++s.misses;
        auto owned = std::make_unique<Entry>();
        owned->key = key;
        owned->flight = std::make_shared<Flight>();
        e = owned.get();
        s.map.emplace(key, std::move(owned));
      }
    }
    if (flight) return flight->wait(o_.join_timeout);

    Result<V> r = run_guarded(fn);
    std::shared_ptr<Flight> done;
    {
      std::lock_guard lock(s.mu);
      done = std::move(e->flight);
      if (r.is_ok()) {
        e->value = *r;
        e->expires_ns = now_ns() + (ttl ? *ttl : o_.ttl).count();
        link_front(s, e);
        ++s.completed;
        while (s.completed > per_shard_max() && s.lru_tail) evict(s, s.lru_tail);
      } else {
        s.map.erase(key);  // failed: not cached, the next call runs again
      }
    }
    done->finish(r);
    return r;
  }

  // The cached value of a completed, unexpired entry.
  std::optional<V> peek(const IdempotencyKey& key) const {
    Shard& s = shard(key);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end() || it->second->flight || it->second->expires_ns <= now_ns()) return std::nullopt;
    return *it->second->value;
  }

  // Drops expired entries; returns how many.
  size_t sweep() {
    int64_t now = now_ns();
    size_t n = 0;
    for (size_t i = 0; i < kShards; ++i) {
      Shard& s = shards_[i];
      std::lock_guard lock(s.mu);
      for (auto it = s.map.begin(); it != s.map.end();) {
        Entry* e = it->second.get();
        if (!e->flight && e->expires_ns <= now) {
          unlink(s, e);
          it = s.map.erase(it);
          --s.completed;
          ++s.expirations;
          ++n;
        } else {
          ++it;
        }
      }
    }
    return n;
  }

  // A background thread calling sweep() every `every` (default 5 minutes) until destruction.
  void start_sweeper(Duration every = std::chrono::minutes(5)) {
    std::lock_guard lock(sweeper_mu_);
    if (sweeper_.joinable()) return;
    sweeper_stop_ = false;
    sweeper_ = std::thread([this, every] {
      std::unique_lock lock(sweeper_mu_);
      while (!sweeper_cv_.wait_for(lock, every, [this] { return sweeper_stop_; })) {
        lock.unlock();
        sweep();
        lock.lock();
      }
    });
  }
  void stop_sweeper() {
    {
      std::lock_guard lock(sweeper_mu_);
      sweeper_stop_ = true;
    }
    sweeper_cv_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
  }

  IdempotencyStats stats() const {
    IdempotencyStats st;
    for (size_t i = 0; i < kShards; ++i) {
      Shard& s = shards_[i];
      std::lock_guard lock(s.mu);
      st.hits += s.hits;
      st.misses += s.misses;
      st.joined += s.joined;
      st.evictions += s.evictions;
      st.expirations += s.expirations;
      st.entries += s.map.size();
    }
    return st;
  }

 private:
  static constexpr size_t kShards = 16;

  template <class F>
  static Result<V> run_guarded(F& fn) {
    try {
      return fn();
    } catch (const std::exception& e) {
      return Status(Code::kInternal, std::string("operation threw: ") + e.what(), "idempotency");
    } catch (...) {
      return Status(Code::kInternal, "operation threw", "idempotency");
    }
  }

  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<V>> result;
    Result<V> wait(Duration limit) {
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, limit, [this] { return result.has_value(); }))
        return Status(Code::kDeadlineExceeded,
                      "the running operation with this key did not finish within " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(limit).count()) + " ms",
                      "idempotency");
      return *result;
    }
    void finish(const Result<V>& r) {
      {
        std::lock_guard lock(mu);
        result.emplace(r);
      }
      cv.notify_all();
    }
  };

  struct Entry {
    IdempotencyKey key;
    std::shared_ptr<Flight> flight;  // non-null while pending
    std::optional<V> value;
    int64_t expires_ns = 0;
    Entry* prev = nullptr;  // LRU links, completed entries only; head = most recent
    Entry* next = nullptr;
  };

  struct KeyHash {
    size_t operator()(const IdempotencyKey& k) const noexcept {
      size_t h;
      std::memcpy(&h, k.data(), sizeof h);  // a SHA-256 is already uniformly spread
      return h;
    }
  };

  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<IdempotencyKey, std::unique_ptr<Entry>, KeyHash> map;
    Entry* lru_head = nullptr;
    Entry* lru_tail = nullptr;
    size_t completed = 0;
    uint64_t hits = 0, misses = 0, joined = 0, evictions = 0, expirations = 0;
  };

  Shard& shard(const IdempotencyKey& k) const { return shards_[k[8] % kShards]; }
  // TTLs are minutes to hours: the coarse clock is precise enough and several times cheaper.
  int64_t now_ns() const { return clock_.now_coarse().time_since_epoch().count(); }
  size_t per_shard_max() const { return std::max<size_t>(1, o_.max_entries / kShards); }

  static void unlink(Shard& s, Entry* e) {
    if (e->prev) e->prev->next = e->next;
    else if (s.lru_head == e) s.lru_head = e->next;
    if (e->next) e->next->prev = e->prev;
    else if (s.lru_tail == e) s.lru_tail = e->prev;
    e->prev = e->next = nullptr;
  }
  static void link_front(Shard& s, Entry* e) {
    e->prev = nullptr;
    e->next = s.lru_head;
    if (s.lru_head) s.lru_head->prev = e;
    s.lru_head = e;
    if (!s.lru_tail) s.lru_tail = e;
  }
  static void touch(Shard& s, Entry* e) {
    if (s.lru_head == e) return;
    unlink(s, e);
    link_front(s, e);
  }
  void evict(Shard& s, Entry* e) {
    unlink(s, e);
    --s.completed;
    ++s.evictions;
    s.map.erase(e->key);
  }

  Options o_;
  const Clock& clock_;
  std::unique_ptr<Shard[]> shards_;
  std::mutex sweeper_mu_;
  std::condition_variable sweeper_cv_;
  bool sweeper_stop_ = false;
  std::thread sweeper_;
};

}  // namespace gantry::core::resilience
