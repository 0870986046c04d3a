// `gantry trades` settings: one struct, every environment name of the original (spec
// trades.md) bound to the field it means here.
#pragma once

#include <chrono>
#include <string>

#include "bus/redis/redis.h"
#include "core/config.h"
#include "core/http/server.h"

namespace gantry::trades {

struct RedisSettings {
  std::string addr = "localhost:6379";  // host:port, or a redis:// URL
  std::string password;
  int db = 0;
  int pool_size = 10;      // accepted; one pipelined connection does every write
  int pipeline_size = 100;  // commands written before their replies are read
  int max_retries = 3;
  std::chrono::milliseconds retry_delay{100};
  std::chrono::milliseconds read_timeout{3000};
  std::chrono::milliseconds write_timeout{3000};
  std::chrono::milliseconds idle_timeout{300'000};  // accepted; the connection is never idle long
  std::chrono::milliseconds max_conn_age{1'800'000};  // accepted; see docs/trades.md
  std::chrono::milliseconds ttl{3'600'000};
  // The endpoint these describe (REDIS_ADDR parsed).
  core::Result<bus::redis::Endpoint> endpoint() const;
};

struct Settings {
  std::string address = "0.0.0.0";
  uint16_t port = 8081;
  std::string nats_url = "nats://localhost:4222";
  std::string stream = "trades";
  std::string subject = "trades.>";
  std::string durable = "aggregator-service";
  std::chrono::milliseconds stream_max_age{0};  // 0: twice the longest window, at least 2 h
  std::string time_windows = "1min,5min,15min,30min,1hour";
  std::chrono::milliseconds resolution{1000};
  bool dedup = true;
  std::chrono::milliseconds max_future{60'000};  // a trade further ahead of the clock is refused
  int max_workers = 100;  // shard threads, at most one per core
  int max_token_processors = 1000;
  int memory_limit_mb = 512;
  int trade_buffer_size = 1000;        // trades one POST /trades may carry
  int processor_channel_size = 1000;   // raw batches waiting for a shard
  int worker_queue_size = 10000;       // messages delivered by JetStream and not yet acked
  int batch_processing_size = 100;     // messages per JetStream fetch
  std::chrono::milliseconds fetch_wait{20};  // a fetch returns what it has after this
  int gc_target_percentage = 100;      // jemalloc's dirty page decay: 10 s × this / 100
  std::chrono::milliseconds flush_interval{100};
  bool publish_nats = true;
  std::string nats_prefix = "aggregates";
  RedisSettings redis;
  core::http::ServerOptions http;
};

void bind(core::config::Schema& s, Settings* st);

}  // namespace gantry::trades
