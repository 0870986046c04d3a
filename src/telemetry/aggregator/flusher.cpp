#include "telemetry/aggregator/flusher.h"

#include <climits>
#include <string>

#include "core/clock.h"
#include "core/log.h"

namespace gantry::telemetry::aggregator {

namespace {
namespace pg = store::postgres;
using core::Status;
using Ms = std::chrono::milliseconds;

const core::log::Logger flusher_log("aggregator");

}  // namespace

Flusher::Flusher(FlushSettings s, std::unique_ptr<pg::Connection> db, std::function<void()> every_second)
    : st_(std::move(s)),
      db_(std::move(db)),
      every_second_(std::move(every_second)),
      seconds_(core::metrics::Registry::global().histogram(
          "window_flush_duration_seconds",
          "one flush transaction, by step: marks (moving batch marks into agg_dirty) or windows (recomputing)",
          {"step", "status"})) {}

Flusher::~Flusher() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Flusher::start() {
  thread_ = std::thread([this] { loop(); });
}

size_t Flusher::stop_and_flush_all() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  size_t n = 0;
  (void)move_marks();  // (logged) the windows marked before are flushed all the same
  for (int i = 0; i < 1000; ++i) {
    auto r = flush(/*all=*/true);
    if (!r.is_ok() || *r == 0) break;
    n += *r;
  }
  return n;
}

void Flusher::loop() {
  std::unique_lock lk(mu_);
  auto next_retention = std::chrono::steady_clock::now();
  auto next_second = next_retention + Ms(1000);
  while (!cv_.wait_for(lk, st_.flush_every, [&] { return stopping_; })) {
    lk.unlock();
    (void)move_marks();  // (logged) the windows marked before are flushed all the same
    for (;;) {
      auto r = flush(/*all=*/false);
      if (!r.is_ok() || *r < kFlushBatch) break;
    }
    if (std::chrono::steady_clock::now() >= next_second) {
      if (every_second_) every_second_();
      next_second = std::chrono::steady_clock::now() + Ms(1000);
    }
    if (std::chrono::steady_clock::now() >= next_retention) {
      retention();
      next_retention = std::chrono::steady_clock::now() + st_.retention_every;
    }
    lk.lock();
  }
}

// events_seen older than events_retention and agg_1m older than agg_retention go, in bounded
// deletes so no transaction grows large.
void Flusher::retention() {
  std::string events_before = std::to_string(st_.events_retention.count() / 1000);
  std::string agg_before = std::to_string(core::unix_ms(std::chrono::system_clock::now()) - st_.agg_retention.count());
  int64_t deleted = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = db_->query(
        "DELETE FROM events_seen WHERE event_id IN (SELECT event_id FROM events_seen "
        "WHERE created_at < now() - make_interval(secs => $1::bigint) LIMIT 10000)",
        {events_before});
    if (!r.is_ok() || r->affected() == 0) break;
    deleted += r->affected();
  }
  auto a = db_->query("DELETE FROM agg_1m WHERE window_start_ts < $1::bigint", {agg_before});
  if (a.is_ok()) deleted += a->affected();
  if (deleted > 0) flusher_log.info("retention removed old rows", {{"rows", deleted}});
}

core::Result<int64_t> move_marks(pg::Connection& db) {
  int64_t moved = 0;
  Status s = db.transaction([&]() -> Status {
    GANTRY_RETURN_IF_ERROR(db.query("SELECT pg_advisory_xact_lock($1::bigint)", {std::to_string(kMoveMarksLock)}).status());
    GANTRY_ASSIGN(r, db.query(kMoveMarks));
    moved = r.int64(0, 0);
    return {};
  });
  if (!s.is_ok()) return s;
  return moved;
}

Status Flusher::move_marks() {
  auto t0 = std::chrono::steady_clock::now();
  auto r = aggregator::move_marks(*db_);
  up_ = db_->healthy();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  seconds_.with({"marks", r.is_ok() ? "ok" : "error"}).observe(secs);
  if (!r.is_ok()) flusher_log.error("moving window marks failed; will retry", {{"error", r.status().to_string()}});
  return r.status();
}

core::Result<size_t> Flusher::flush(bool all) {
  auto t0 = std::chrono::steady_clock::now();
  int64_t due = all ? INT64_MAX : core::unix_ms(std::chrono::system_clock::now()) - st_.window_size.count() - st_.flush_delay.count();
  size_t n = 0;
  Status s = db_->transaction([&]() -> Status {
    GANTRY_ASSIGN(r, db_->query(kFlushWindows, {std::to_string(due), std::to_string(kFlushBatch),
                                                std::to_string(st_.flush_settle.count()),
                                                std::to_string(st_.flush_max_wait.count()), all ? "t" : "f"}));
    n = static_cast<size_t>(r.size());
    // Each freshly recomputed window is diagnosed against its path's baseline.
    for (int i = 0; i < r.size(); ++i) {
      GANTRY_RETURN_IF_ERROR(
          relabel(*db_, std::string(r.get(i, 0)), std::string(r.get(i, 1)), r.int64(i, 2), st_.thresholds).status());
    }
    return {};
  });
  up_ = db_->healthy();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  seconds_.with({"windows", s.is_ok() ? "ok" : "error"}).observe(secs);
  if (!s.is_ok()) {
    flusher_log.error("flush failed; will retry", {{"error", s.to_string()}});
    return s;
  }
  return n;
}

}  // namespace gantry::telemetry::aggregator
