// The aggregator's flusher: moves the windows marked by committed batches into agg_dirty,
// recomputes the agg_1m row of every due dirty window from all of its events (and labels it),
// and runs the retention deletes. Its own thread and its own PostgreSQL connection; any number
// of aggregators may flush the same database (moves take turns, windows are taken FOR UPDATE
// SKIP LOCKED).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/metrics.h"
#include "core/status.h"
#include "store/postgres/pg.h"
#include "telemetry/aggregator/schema.h"

namespace gantry::telemetry::aggregator {

struct FlushSettings {
  std::chrono::milliseconds window_size{60'000};
  std::chrono::milliseconds flush_delay{10'000};
  std::chrono::milliseconds flush_every{1'000};
  std::chrono::milliseconds flush_settle{1'000};
  std::chrono::milliseconds flush_max_wait{60'000};
  Thresholds thresholds;
  std::chrono::milliseconds events_retention{7LL * 24 * 3'600'000};
  std::chrono::milliseconds agg_retention{90LL * 24 * 3'600'000};
  std::chrono::milliseconds retention_every{3'600'000};
};

// Moves the marks of committed batches (agg_marks) into agg_dirty, in a transaction of its own;
// returns how many windows were marked (kMoveMarks).
core::Result<int64_t> move_marks(store::postgres::Connection& db);

class Flusher {
 public:
  // `every_second` runs on the flusher's thread about once a second (the aggregator's queue
  // gauges, a request to NATS, are refreshed there rather than at every scrape).
  Flusher(FlushSettings s, std::unique_ptr<store::postgres::Connection> db, std::function<void()> every_second);
  ~Flusher();  // stops the thread if still running
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  void start();
  // Stops the thread, then recomputes every dirty window, due or not (a graceful stop leaves no
  // window behind); returns how many.
  size_t stop_and_flush_all();
  // The connection was up as of its last call.
  bool up() const { return up_.load(); }

 private:
  void loop();
  void retention();
  // aggregator::move_marks(), timed and logged.
  core::Status move_marks();
  // Recomputes up to kFlushBatch due windows (all dirty ones when `all`); returns how many.
  core::Result<size_t> flush(bool all);

  // Windows per flush transaction. Small: moving a mark of a window the flush holds waits for
  // that transaction to end (1,000 windows took ~2 s).
  static constexpr size_t kFlushBatch = 100;

  FlushSettings st_;
  std::unique_ptr<store::postgres::Connection> db_;
  std::function<void()> every_second_;
  core::metrics::Family<core::metrics::Histogram>& seconds_;
  std::atomic<bool> up_{true};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gantry::telemetry::aggregator
