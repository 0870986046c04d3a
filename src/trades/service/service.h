// `gantry trades`: JetStream trades in, rolling windows per token, Redis and NATS out.
//
//   consumer thread   replays the longest window from the stream at start (state is memory
//                     only: the stream is the log it is rebuilt from), then fetches from the
//                     durable consumer, one ack per batch (AckAll), into the engine
//   engine shards     parse, deduplicate and apply (trades/engine.h)
//   output thread     every flush interval: Redis, aggregates.<token>, the query snapshot
//                     (service/output.h)
//   monitor thread    memory (MEMORY_LIMIT_MB), once a second
//   HTTP (api.cpp)    POST /trades (validated, then published to the stream: what was answered
//                     202 is stored and replayable), the query API, /health*, /metrics,
//                     /metrics/json, /performance*
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/nats/jetstream.h"
#include "bus/nats/publisher.h"
#include "core/runtime.h"
#include "trades/engine.h"
#include "trades/service/output.h"
#include "trades/settings.h"

namespace gantry::trades {

class Service final : public core::runtime::HttpRole {
 public:
  explicit Service(Settings s);
  ~Service() override;
  bool ready() const override { return replayed_.load() && (!js_ || js_->connected()); }

 protected:
  core::Status on_start() override;
  core::Status on_worker(boost::asio::io_context& ioc) override;
  void before_drain() override;
  void on_stop(std::chrono::milliseconds deadline) override;

 private:
  enum class Mode { kBalanced, kThroughput, kLatency };

  // api.cpp
  void routes();
  void post_trades(const core::http::Request& q, core::http::Responder resp);
  void get_token(const core::http::Request& q, core::http::Response& out);
  void get_tokens(const core::http::Request& q, core::http::Response& out);
  void health(core::http::Response& out);
  void metrics_json(core::http::Response& out);
  void performance(core::http::Response& out);
  void gc(core::http::Response& out);
  void optimize(Mode m, core::http::Response& out);
  void register_metrics();

  // role.cpp
  void consume();
  core::Status replay();
  void monitor();
  bool stopping();
  std::string publish_subject(std::string_view token) const;

  Settings st_;
  std::vector<WindowSpec> windows_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  int shards_ = 1;
  std::atomic<int64_t> flush_ms_;
  std::atomic<int> fetch_batch_;
  std::atomic<Mode> mode_{Mode::kBalanced};

  std::unique_ptr<bus::nats::JetStream> js_;
  std::unique_ptr<Output> output_;
  std::unique_ptr<Engine> engine_;
  std::vector<std::pair<boost::asio::io_context*, std::unique_ptr<bus::nats::Publisher>>> pubs_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread consumer_, monitor_;
  std::atomic<bool> replayed_{false};
  uint64_t replay_last_ = 0;  // the stream's last sequence when the replay began
  std::atomic<uint64_t> replayed_messages_{0}, fetched_{0}, fetch_errors_{0}, invalid_logged_{0};
  std::atomic<bool> over_memory_{false};
  std::atomic<uint64_t> http_accepted_{0};
};

}  // namespace gantry::trades
