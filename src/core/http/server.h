// HTTP/1.1 server on Beast with C++20 coroutines.
//
// One io_context and one thread per worker, each with its own SO_REUSEPORT acceptor, so the
// kernel spreads connections and a connection lives on one thread from accept to close
// (shared-nothing). Keep-alive and pipelining are supported.
//
// Limits and their answers: header larger than max_header_bytes -> 431; body larger than
// max_body_bytes -> 413; malformed request -> 400; a request not fully received within
// read_timeout -> 408 and close; a keep-alive connection idle longer than idle_timeout is
// closed. Each of these closes only the offending connection.
//
// Every response carries X-Request-ID (the client's when it sent a sane one) and is counted
// in http_requests_total{server,code} and http_request_duration_seconds{server}; with
// access_log on, each request is logged with its id, status and duration.
//
// A handler that throws is answered 500 and one whose Responder is not completed within
// handler_timeout is answered 503; both are counted in
// http_handler_failures_total{server,reason="exception"|"timeout"} and logged with the request
// id, and the connection goes on serving (a late send() on the expired Responder is ignored).
//
// stop() drains: it stops accepting, closes idle keep-alive connections, lets requests in
// progress finish (their responses say Connection: close) until the deadline, then closes
// whatever is left.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/config.h"
#include "core/http/router.h"
#include "core/status.h"

namespace boost::asio {
class io_context;
}

namespace gantry::core::http {

struct ServerOptions {
  std::string name = "http";  // the role serving; a label in logs and metrics
  std::string address = "0.0.0.0";
  uint16_t port = 0;  // 0 = any free port (see Server::port())
  int threads = 0;    // 0 = one per core
  int64_t max_header_bytes = 16 * 1024;
  int64_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds write_timeout{10'000};
  int max_connections = 10'000;
  // Longest an asynchronous or deferred handler may hold a request before the server answers
  // 503 for it. A role that holds requests on purpose (a long poll) raises it above its hold.
  std::chrono::milliseconds handler_timeout{60'000};
  bool access_log = true;
  // Runs once per worker, on the thread calling start() and before that worker's thread
  // runs its io_context: a role attaches per-thread resources (a broker connection its
  // handlers use through Request::io_context()). A failure fails start().
  std::function<Status(boost::asio::io_context&)> on_worker_start;
};

// Binds the tuning keys shared by every HTTP role (http_threads, http_max_header_bytes,
// http_max_body_bytes, http_read_timeout, http_idle_timeout, http_write_timeout,
// http_max_connections, http_handler_timeout, access_log). Address and port are bound by each role under its own
// names and environment variables.
void bind(config::Schema& schema, ServerOptions* o);

class ServerImpl;

class Server {
 public:
  Server(ServerOptions opts, std::shared_ptr<const Router> router);
  ~Server();  // stops (with a short deadline) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the worker threads. Fails (kUnavailable) when the address cannot be bound.
  Status start();
  // The bound port (after start()).
  uint16_t port() const;
  const ServerOptions& options() const;
  // Graceful drain; returns when every connection is closed and the threads are joined.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(10'000));
  // Connections open right now.
  int active_connections() const;

 private:
  std::unique_ptr<ServerImpl> impl_;
};

}  // namespace gantry::core::http
