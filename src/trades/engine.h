// The aggregation engine: tokens sharded across threads, each shard owning its tokens'
// windows with no lock on them.
//
// Raw messages (wire bytes) are handed to the shards round-robin; a shard parses its batch,
// applies the trades of its own tokens and forwards the others, one batch per destination, to
// the shard that owns them (hash of the token address). A shard's inbox is a mutex-guarded
// list of batches: one lock per batch handed over, none per trade. Raw input is bounded
// (submit_raw() waits while `max_queued_batches` raw batches are queued); forwarding between
// shards never waits, so shards cannot block each other.
//
// Every `flush_interval` each shard expires its tokens' windows to now and reports every token
// whose statistics changed (a trade, or a trade leaving a window) to `on_flush`, on the shard's
// thread: at most one report per token per interval, however many trades it had. A token with
// no trade for longer than the longest window is reported once more (all zero) and evicted.
//
// Order: a trade's position within its second is its stream sequence (Trade::seq), so open and
// close do not depend on which shard parsed which message.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "trades/trade.h"
#include "trades/windows.h"

namespace gantry::trades {

struct EngineOptions {
  std::vector<WindowSpec> windows;
  int64_t resolution_ms = 1000;
  bool dedup = true;
  int64_t max_future_ms = 60'000;  // a trade further ahead of the clock is refused (too_new)
  int shards = 2;
  size_t max_tokens = 1000;          // MAX_TOKEN_PROCESSORS: beyond it the least recently active goes
  size_t max_queued_batches = 1000;  // PROCESSOR_CHANNEL_SIZE: raw batches waiting for a shard
  std::chrono::milliseconds flush_interval{100};
  const core::Clock* clock = &core::Clock::real();
};

// Wire messages, each with its stream sequence; `owner` keeps the bytes alive until parsed.
struct RawBatch {
  std::vector<std::string_view> data;
  std::vector<uint64_t> seq;
  std::shared_ptr<void> owner;
  core::MonoTime received{};
};

// One token's statistics as of a flush.
struct TokenUpdate {
  std::string token;
  std::vector<Aggregate> windows;  // in EngineOptions::windows order
  int64_t last_trade_ms = 0;       // when its last trade arrived (wall clock, ms)
  bool evicted = false;            // the token's last report: it had no trade for the longest window
};

struct EngineStats {
  uint64_t applied = 0, duplicates = 0, too_old = 0, too_new = 0, invalid = 0, refused = 0;
  uint64_t evicted_idle = 0, evicted_limit = 0, evicted_memory = 0;
  uint64_t tokens = 0, state_bytes = 0;
  double busy_seconds = 0;  // shard threads' time spent parsing and applying
};

class Engine {
 public:
  using OnFlush = std::function<void(std::vector<TokenUpdate>&&)>;
  // Called for each invalid message (on a shard thread) so the owner can log it.
  using OnInvalid = std::function<void(std::string_view data, const core::Status& why)>;
  // Called after each batch is applied, with the time since it was received.
  using OnBatch = std::function<void(size_t trades, std::chrono::nanoseconds latency)>;

  Engine(EngineOptions o, OnFlush on_flush, OnInvalid on_invalid = nullptr, OnBatch on_batch = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();
  // Processes everything handed over, flushes once more, and joins the shards.
  void stop();

  // Any thread. Waits while max_queued_batches raw batches are queued; false once stopping.
  bool submit_raw(RawBatch&& batch);
  // Trades already parsed (replay, tests): routed to their owners. Any thread.
  void submit(std::vector<Trade>&& trades);
  // Returns once everything submitted so far has been applied.
  void wait_idle() const;

  EngineStats stats() const;
  const std::vector<WindowSpec>& windows() const { return o_.windows; }
  void set_flush_interval(std::chrono::milliseconds d) { flush_ms_ = d.count(); }
  std::chrono::milliseconds flush_interval() const { return std::chrono::milliseconds(flush_ms_.load()); }
  // Set while the process is over its memory limit: new tokens are refused and idle ones
  // (no trade for the shortest window) evicted first.
  void set_over_memory_limit(bool over) { over_memory_ = over; }

 private:
  class Shard;
  friend class Shard;
  size_t owner_of(std::string_view token) const;

  EngineOptions o_;
  OnFlush on_flush_;
  OnInvalid on_invalid_;
  OnBatch on_batch_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> next_{0};
  std::atomic<int64_t> pending_{0};       // batches handed over and not yet processed
  std::atomic<int64_t> raw_queued_{0};    // raw batches among them
  std::atomic<int64_t> live_tokens_{0};
  std::atomic<int64_t> flush_ms_;
  std::atomic<bool> over_memory_{false};
  std::atomic<bool> stopping_{false};
  mutable std::mutex space_mu_;
  std::condition_variable space_cv_;
};

}  // namespace gantry::trades
