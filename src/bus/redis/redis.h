// Redis over hiredis: a command connection and a pub/sub subscriber.
//
// Connection is blocking and not thread-safe (one per thread, or behind a mutex); after a
// failure it reconnects on the next command. Subscriber runs its own thread: it subscribes,
// hands each message to a callback, and when the connection drops it reconnects with backoff
// and subscribes again, calling on_connected each time so the owner can catch up on what it
// may have missed while disconnected (messages published meanwhile are not replayed: that is
// pub/sub). A connection that goes quiet is probed with PING, so a peer that vanished without
// closing the socket is noticed too.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"
#include "core/status.h"

struct redisContext;
struct redisReply;

namespace gantry::bus::redis {

using core::Result;
using core::Status;

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;  // an ACL user (Redis 6+); empty = the default user
  std::string password;
  int db = 0;
  std::chrono::milliseconds timeout{2000};
  // redis://[[user]:password@]host[:port][/db], user and password percent-decoded; a userinfo
  // without ':' is the password (as redis-cli -u reads it)
  static Result<Endpoint> parse_url(std::string_view url);
  std::string describe() const;  // host:port/db, never the password
};

struct Reply {
  enum Type { kNil, kString, kStatus, kInteger, kArray, kError } type = kNil;
  std::string str;  // string, status or error text
  int64_t integer = 0;
  std::vector<Reply> elements;
};

namespace detail {
// Shared with Pipeline: a context connected, authenticated and on its database; a reply copied.
Result<redisContext*> connect(const Endpoint& ep);
Reply convert(const redisReply* r);
}  // namespace detail

// One command at a time. A lost connection is reopened by the next command, through the
// "redis" circuit breaker preset: while Redis stays down, commands fail at once with
// kCircuitOpen instead of each waiting out a connect timeout.
class Connection {
 public:
  explicit Connection(Endpoint e, std::string breaker = "redis");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One command in argv form (binary-safe). A Redis error reply is a Reply of type kError,
  // not a failed Status; kUnavailable means the server could not be reached.
  Result<Reply> command(std::initializer_list<std::string_view> args);
  Status ping();
  // The number of subscribers that received it.
  Result<int64_t> publish(std::string_view channel, std::string_view message);

 private:
  Status ensure_connected();
  Endpoint ep_;
  redisContext* c_ = nullptr;
  core::resilience::CircuitBreaker breaker_;
};

class Subscriber {
 public:
  struct Handlers {
    std::function<void(std::string_view channel, std::string_view message)> on_message;
    std::function<void()> on_connected;                  // after every (re)subscription
    std::function<void(const Status&)> on_disconnected;  // when a live connection is lost
  };
  // A quiet connection is probed with PING every `ping_every`; no answer within the
  // endpoint's timeout counts as a lost connection (a peer that died without closing it).
  // Reconnects wait out `backoff` and go through the "redis" breaker preset (named
  // "redis:subscribe" in the metrics).
  Subscriber(Endpoint e, std::vector<std::string> channels, Handlers h,
             core::resilience::RetryPolicy backoff = reconnect_policy(),
             std::chrono::milliseconds ping_every = std::chrono::seconds(15));
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;

  void start();
  void stop();
  // Changes before on_connected / on_disconnected are called, so a handler that wakes a waiter
  // on connected() is never lost; a reader may therefore see the new state before the handler
  // has run.
  bool connected() const { return connected_.load(); }
  uint64_t reconnects() const { return reconnects_.load(); }

  // The shared reconnect policy (RetryPolicy::reconnect: unlimited, 100 ms doubling to 5 s).
  static core::resilience::RetryPolicy reconnect_policy();

 private:
  void loop();
  Status session();  // one connection's life

  Endpoint ep_;
  std::vector<std::string> channels_;
  Handlers h_;
  core::resilience::RetryPolicy backoff_;
  std::chrono::milliseconds ping_every_;
  std::atomic<bool> stop_{false}, connected_{false};
  std::atomic<uint64_t> reconnects_{0};
  core::resilience::CircuitBreaker breaker_;
  std::thread thread_;
};

}  // namespace gantry::bus::redis
