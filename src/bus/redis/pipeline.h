// Pipelined Redis writes: commands are queued with add() (formatted as RESP at once, into one
// buffer) and sent by exec() without waiting for each reply, with at most `max_in_flight`
// commands written before their replies are read (a bound on the memory and the server's output
// buffer, whatever the batch size). Writing and reading overlap: replies are read while later
// commands are written, so the server never waits for the client to finish a window.
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

struct redisReader;
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
  size_t queued() const { return ends_.size(); }
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
  // Sends the queue in windows (connecting first), parsing the replies with the reader
  // reader_of() gives, its privdata set; each reply is handed to on_reply(void*) before the
  // reader frees it. The queue is emptied either way.
  template <class OnReply>
  Status send_all(redisReader* (Pipeline::*reader_of)(), OnReply&& on_reply, void* privdata = nullptr);
  redisReader* connection_reader();
  redisReader* tally_reader();

  Endpoint ep_;
  PipelineOptions o_;
  redisContext* c_ = nullptr;
  core::resilience::CircuitBreaker breaker_;
  std::optional<core::resilience::Backoff> backoff_;  // while reconnecting
  core::MonoTime next_attempt_{};
  uint64_t reconnects_ = 0;
  bool ever_connected_ = false;
  void begin_command(size_t args);
  void append_arg(std::string_view a);
  // The queued commands in RESP, and where each one ends in it.
  std::string out_;
  std::vector<size_t> ends_;
  std::vector<char> in_;  // read buffer
  // exec_writes' reply parser: builds no reply objects, only counts errors (hiredis' own reader
  // mallocs one per reply).
  redisReader* tally_reader_ = nullptr;
};

}  // namespace gantry::bus::redis
