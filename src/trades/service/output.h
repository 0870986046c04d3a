// Where flushed statistics go: Redis (the original's keys, pipelined, through the "redis"
// breaker), NATS aggregates.<token>, and the snapshot the query API reads.
//
// The engine's shards hand over their reports (add(), at most one per token per flush
// interval); one writer thread renders and sends them as they come. Only each token's latest
// report is kept while Redis is unreachable, so a returning Redis gets the current state of
// every token that changed meanwhile, once, and nothing older (no stale value is written after
// a newer one). A failed batch is retried `max_retries` times, `retry_delay` apart, then left
// for the next interval.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bus/nats/jetstream.h"
#include "bus/redis/pipeline.h"
#include "core/metrics.h"
#include "trades/engine.h"
#include "trades/settings.h"

namespace gantry::trades {

class Output {
 public:
  Output(const Settings& st, std::vector<WindowSpec> windows, bus::nats::JetStream* nats, bus::redis::Endpoint redis,
         const std::atomic<int64_t>* flush_ms);
  ~Output();

  void start();
  // Writes what is pending once more (within `deadline`), then stops.
  void stop(std::chrono::milliseconds deadline);
  // From the shards' threads.
  void add(std::vector<TokenUpdate>&& updates);

  // The query API's view, as of the last flush.
  struct Row {
    std::string token;
    std::string aggregates;  // the Redis value
    std::string last_update;
    std::vector<Aggregate> windows;
  };
  std::optional<Row> token(std::string_view addr) const;
  // Tokens by a statistic of one window, descending; stat: volume, volume_usd, trades,
  // price_change.
  std::vector<Row> top(size_t window, std::string_view stat, size_t limit) const;
  size_t tokens() const;

  struct Stats {
    uint64_t writes = 0, write_errors = 0, commands = 0, publishes = 0, publish_errors = 0;
    size_t pending = 0;
    double write_seconds = 0;  // total time in Redis round trips
    bool redis_up = false;
  };
  Stats stats() const;

 private:
  void loop();
  bool write_once(bool final);  // false: the write failed (what it held is pending again)

  struct Pending {
    Row row;
    std::string publication;  // the NATS message ("" when not publishing)
    bool evicted = false;
    bool published = false;
  };

  const Settings& st_;
  std::vector<WindowSpec> windows_;
  bus::nats::JetStream* nats_;
  bus::redis::Endpoint redis_ep_;
  const std::atomic<int64_t>* flush_ms_;
  size_t pipeline_size_;
  std::unique_ptr<bus::redis::Pipeline> redis_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::unordered_map<std::string, Pending> pending_;  // latest report per token, not yet written
  std::unordered_map<std::string, Row> snapshot_;
  std::thread thread_;

  std::atomic<uint64_t> writes_{0}, write_errors_{0}, commands_{0}, publishes_{0}, publish_errors_{0};
  std::atomic<int64_t> write_ns_{0};
  std::atomic<bool> redis_up_{false};
  std::atomic<size_t> in_flight_{0};  // tokens of the batch being written
  core::metrics::Histogram& redis_latency_;
  core::metrics::Counter &redis_ok_, &redis_failed_;  // realtime_aggregation_redis_operations_total{status}
};

}  // namespace gantry::trades
