// A pool of publisher channels (one connection each) to one broker, shared by many threads.
//
// Defaults are the orchestrator spec's: at least min_open (2) connections kept open, at most
// max_open (10); a connection idle longer than max_idle (1 h) beyond the minimum, or older than
// max_lifetime (2 h), is closed when next idle; a dial is retried dial_retries (10) times
// dial_wait (2 s) apart, through the "rabbitmq" circuit breaker. A connection whose publish
// failed other than by the broker's refusal (nack) is retired, never handed out again, so a
// late confirm cannot reach the next user (see Channel). A background thread services the
// heartbeats of idle connections and does the closing and refilling.
//
// publish() borrows a channel, publishes with confirms, and returns it; when max_open are
// busy it waits up to acquire_timeout for one (kDeadlineExceeded after, so kResourceExhausted
// always means the broker refused the message: a full queue). Thread-safe.
// Metrics: amqp_pool_connections{pool,state}, amqp_pool_dials_total{pool,result},
// amqp_pool_retired_total{pool,reason}, amqp_publish_confirms_total{pool,result}.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bus/amqp/amqp.h"

namespace gantry::bus::amqp {

struct PoolOptions {
  std::string url;
  std::string name = "amqp";  // metrics label
  int min_open = 2;
  int max_open = 10;
  std::chrono::milliseconds max_idle{3'600'000};
  std::chrono::milliseconds max_lifetime{7'200'000};
  int dial_retries = 10;
  std::chrono::milliseconds dial_wait{2'000};
  std::chrono::milliseconds acquire_timeout{5'000};
  ChannelOptions channel;
};

struct PoolStats {
  int open = 0, idle = 0, in_use = 0;
  uint64_t dials = 0, dial_failures = 0, retired = 0;
};

class Pool {
 public:
  // Opens min_open connections (each with the dial retries); fails when the first cannot be had.
  static Result<std::unique_ptr<Pool>> open(PoolOptions o);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  Status publish(const std::string& exchange, const std::string& routing_key, std::string_view body,
                 const std::string& content_type = "application/json");
  std::vector<Status> publish_batch(std::span<const Message> messages);
  // Runs fn on a pooled channel (declarations, say); a channel fn leaves closed is retired.
  Status run(const std::function<Status(Channel&)>& fn);

  PoolStats stats() const;

 private:
  struct Idle {
    std::unique_ptr<Channel> ch;
    std::chrono::steady_clock::time_point since;
  };
  explicit Pool(PoolOptions o);
  Result<std::unique_ptr<Channel>> dial();       // with the dial retries
  Result<std::unique_ptr<Channel>> dial_once();  // one attempt through the breaker, counted
  Result<std::unique_ptr<Channel>> acquire();
  void give_back(std::unique_ptr<Channel> ch);
  void retire(std::unique_ptr<Channel> ch, const char* reason);
  void maintain();

  struct Metrics;
  PoolOptions o_;
  std::unique_ptr<Metrics> m_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Idle> idle_;  // most recently returned last
  int open_ = 0;            // idle + in use + being dialled
  uint64_t dials_ = 0, dial_failures_ = 0, retired_ = 0;
  bool stopping_ = false;
  std::thread maintainer_;
};

}  // namespace gantry::bus::amqp
