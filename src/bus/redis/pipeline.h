// Pipelined Redis writes: commands are queued with add() and sent by exec() without waiting
// for each reply, with at most `max_in_flight` commands written before their replies are read
// (a bound on the memory and the server's output buffer, whatever the batch size).
//
// Failures are values. A Redis error reply is a Reply of type kError in its slot. When the
// connection fails during exec(), the whole batch fails with kUnavailable (some of its
// commands may have been applied: write idempotent commands, SET/EXPIRE, and resend), the
// connection is dropped, and later exec() calls reconnect on their own: through the "redis"
// circuit breaker preset (5 failures, 5 s) and the reconnect backoff (100 ms doubling to 5 s),
// failing at once with kUnavailable or kCircuitOpen while waiting, so a writer loop never
// blocks on a dead server longer than one connect timeout.
//
// Not thread-safe: one owner per Pipeline.
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/redis/redis.h"
#include "core/clock.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"

namespace gantry::bus::redis {

struct PipelineOptions {
  size_t max_in_flight = 1000;
  std::string breaker = "redis";  // breaker name: state in resilience_circuit_breaker_state{name}
  core::resilience::RetryPolicy reconnect = core::resilience::RetryPolicy::reconnect();
};

class Pipeline {
 public:
  explicit Pipeline(Endpoint e, PipelineOptions o = PipelineOptions());
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Queues one command in argv form (copied, binary-safe).
  void add(std::initializer_list<std::string_view> args);
  void add(const std::vector<std::string>& args);
  size_t queued() const { return lens_.size(); }
  // Sends every queued command and returns their replies in order; the queue is emptied either way.
  Result<std::vector<Reply>> exec();
  // The same for writes whose replies only matter when they are errors (SET, EXPIRE, …): no
  // Reply is built, so a batch costs less. The count of error replies and the first one's text.
  struct WriteSummary {
    size_t commands = 0, errors = 0;
    std::string first_error;
  };
  Result<WriteSummary> exec_writes();

  bool connected() const { return c_ != nullptr; }
  const core::resilience::CircuitBreaker& breaker() const { return breaker_; }
  uint64_t reconnects() const { return reconnects_; }

 private:
  Status ensure_connected();
  void drop();
  // Sends the queue in windows; each reply is handed to on_reply(redisReply*) before it is freed.
  template <class OnReply>
  Status send_all(OnReply&& on_reply);

  Endpoint ep_;
  PipelineOptions o_;
  redisContext* c_ = nullptr;
  core::resilience::CircuitBreaker breaker_;
  std::optional<core::resilience::Backoff> backoff_;  // while reconnecting
  core::MonoTime next_attempt_{};
  uint64_t reconnects_ = 0;
  bool ever_connected_ = false;
  // The queued commands: one buffer of their arguments, and each command's argument count.
  std::string args_;
  std::vector<size_t> arg_lens_;
  std::vector<size_t> lens_;  // arguments per command
};

}  // namespace gantry::bus::redis
