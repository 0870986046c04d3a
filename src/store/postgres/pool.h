// A pool of PostgreSQL connections, each on a thread of its own behind one bounded queue, for
// callers that must not block: HTTP handlers and coroutines on io_context threads hand a job
// over and are answered later (store/postgres/co_pool.h awaits one from a coroutine).
//
// Why threads and not libpq driven non-blocking from Asio: blocking libpq keeps every
// Connection feature (timeouts, session loss reporting, COPY, pipeline mode) in one place, and
// the cost of the handoff is paid once per batch. Measured by `bench/run core` on 2 cores: a
// job per statement (submit, co_run) reaches ~0.55x a plain libpq loop's statements/s (the
// thread wake-ups compete with the server for the cores); single statements queued through
// submit_query (co_query) go out in batches and reach ~1.05x (the server's CPU is then the
// limit).
//
// Sizing, as database/sql's: at most max_open connections (and threads); connections beyond
// max_idle are closed once idle for max_idle_time; a connection older than max_lifetime is
// replaced before its next job. Every call on a connection is bounded as Connection promises
// (statement_timeout, call timeout, keepalives). submit() never blocks: when max_queued jobs
// wait it refuses with kResourceExhausted. A job runs with a connection that has no session
// state of a previous job's (do not leave SET or LISTEN behind; use a Connection of your own).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/postgres/pg.h"

namespace gantry::store::postgres {

struct PoolOptions {
  std::string url;
  std::string name = "postgres";  // metrics label
  int max_open = 10;
  int max_idle = 2;
  std::chrono::milliseconds max_idle_time{300'000};
  std::chrono::milliseconds max_lifetime{3'600'000};
  size_t max_queued = 1024;
  Options connection;
};

struct PoolStats {
  int open = 0, busy = 0;
  size_t queued = 0;
  uint64_t jobs = 0, refused = 0, connects = 0, connect_failures = 0;
};

class Pool {
 public:
  // A job gets a connected Connection, or null and the reason it could not have one.
  using Job = std::function<void(Connection* c, const Status& no_connection)>;

  // Checks the URL with one connection (kept as the first idle one).
  static Result<std::unique_ptr<Pool>> open(PoolOptions o);
  ~Pool();  // runs the queued jobs, then closes
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues the job; false (and the job is not run) when the queue is full or the pool closing.
  // A job that throws is logged and counted as done; its connection is kept.
  bool submit(Job job);

  // One statement, run as if alone (its own transaction), its outcome handed to `done` on a
  // pool thread. Statements queued together are sent to a connection as one batch
  // (Connection::batch): a queue of N costs about N / max_open round trips, not N. false
  // (and `done` is not called) when the queue is full or the pool closing.
  using QueryDone = std::function<void(Result<Rows>)>;
  bool submit_query(Connection::Statement statement, QueryDone done);
  // Statements sent to one connection at once, at most.
  static constexpr size_t kMaxBatch = 64;
  // Runs fn(Connection&) -> Status or Result<T> on a pooled connection and waits for it: for
  // threads that may block (tests, jobs, start-up), never for io_context threads.
  template <class F>
  auto run(F fn) -> decltype(fn(std::declval<Connection&>())) {
    using R = decltype(fn(std::declval<Connection&>()));
    std::mutex mu;
    std::condition_variable cv;
    std::optional<R> out;
    bool queued = submit([&](Connection* c, const Status& why) {
      R r = c ? fn(*c) : R(why);
      std::lock_guard lk(mu);
      out.emplace(std::move(r));
      cv.notify_one();
    });
    if (!queued) return R(Status(core::Code::kResourceExhausted, "postgres pool queue full", "pg.pool"));
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return out.has_value(); });
    return std::move(*out);
  }

  PoolStats stats() const;
  // Queries run through submit_query, and the round trips (batches) they took.
  uint64_t batched_queries() const;
  uint64_t batches() const;
  const PoolOptions& options() const { return o_; }

 private:
  struct Slot {
    std::unique_ptr<Connection> conn;
    std::chrono::steady_clock::time_point opened{}, last_used{};
  };
  // A job, or (job empty) a statement of submit_query.
  struct Queued {
    Job job;
    Connection::Statement query;
    QueryDone done;
  };
  explicit Pool(PoolOptions o);
  bool enqueue(Queued q);
  void worker(Slot slot);
  void run_queries(Connection* c, const Status& why, std::vector<Queued>& batch);

  PoolOptions o_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> jobs_;
  bool stopping_ = false;
  int open_ = 0, busy_ = 0;
  uint64_t done_ = 0, refused_ = 0, connects_ = 0, connect_failures_ = 0, queries_ = 0, batches_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace gantry::store::postgres
