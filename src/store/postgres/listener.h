// LISTEN/NOTIFY on a PostgreSQL session of its own, served by a thread of its own.
//
// start() connects and LISTENs on every channel before returning. Each notification is handed
// to on_notify on the listener's thread, in the order the server sent them.
//
// A lost session (server restart, pg_terminate_backend, a network failure, or a server that
// answers no ping within the connection's call timeout) is replaced through the reconnect
// policy's backoff and the "postgres" circuit breaker preset (named "postgres:listen" in the
// metrics); once the new session LISTENs again, on_missed(reason) runs: what was
// notified while no session listened is gone, so the owner re-reads what it watches. A
// notification is therefore never silently lost: either it arrives, or on_missed follows it.
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

#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"
#include "core/status.h"
#include "store/postgres/pg.h"

namespace gantry::store::postgres {

struct ListenerSettings {
  Options pg;
  std::chrono::milliseconds ping_interval{5000};
  core::resilience::RetryPolicy reconnect = core::resilience::RetryPolicy::reconnect();
};

class Listener {
 public:
  struct Handlers {
    std::function<void(std::string_view channel, std::string_view payload)> on_notify;
    std::function<void(const Status& why)> on_missed;
  };
  using Settings = ListenerSettings;

  Listener(std::string url, std::vector<std::string> channels, Handlers h, Settings s = Settings());
  ~Listener();  // stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Connects and LISTENs; on failure nothing runs (call again, or give up).
  Status start();
  void stop();
  // A session is LISTENing right now.
  bool listening() const { return listening_.load(); }
  // Sessions that have LISTENed so far (1 after start(), one more per recovery).
  uint64_t sessions() const { return sessions_.load(); }

 private:
  Status open_session();
  void loop();
  bool wait_backoff(std::chrono::nanoseconds d);  // false when stopping

  std::string url_;
  std::vector<std::string> channels_;
  Handlers h_;
  Settings s_;
  std::unique_ptr<Connection> conn_;  // the listener thread's after start()
  Status lost_why_;
  std::thread thread_;
  int wake_[2] = {-1, -1};  // a pipe: stop() writes, the loop's poll() wakes
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> listening_{false};
  std::atomic<uint64_t> sessions_{0};
  core::resilience::CircuitBreaker breaker_;
};

}  // namespace gantry::store::postgres
