#include "store/postgres/pool.h"

#include <algorithm>

#include "core/log.h"
#include "core/metrics.h"

namespace gantry::store::postgres {

using core::Code;

namespace {
const core::log::Logger pool_log("pg.pool");
}

Pool::Pool(PoolOptions o) : o_(std::move(o)) {
  o_.max_open = std::max(1, o_.max_open);
  o_.max_idle = std::clamp(o_.max_idle, 0, o_.max_open);
}

Result<std::unique_ptr<Pool>> Pool::open(PoolOptions o) {
  std::unique_ptr<Pool> p(new Pool(std::move(o)));
  GANTRY_ASSIGN(first, Connection::connect(p->o_.url, p->o_.connection));
  auto now = std::chrono::steady_clock::now();
  p->open_ = 1;
  p->connects_ = 1;
  p->threads_.reserve(p->o_.max_open);
  p->threads_.emplace_back([pp = p.get(), s = Slot{std::move(first), now, now}]() mutable { pp->worker(std::move(s)); });
  for (int i = 1; i < p->o_.max_open; ++i) p->threads_.emplace_back([pp = p.get()] { pp->worker(Slot{}); });
  auto& reg = core::metrics::Registry::global();
  reg.gauge_callback("pg_pool_connections", "Open connections of the PostgreSQL pool.", {"pool"}, {p->o_.name},
                     [pp = p.get()] { return static_cast<double>(pp->stats().open); });
  reg.gauge_callback("pg_pool_busy", "PostgreSQL pool connections running a job.", {"pool"}, {p->o_.name},
                     [pp = p.get()] { return static_cast<double>(pp->stats().busy); });
  reg.gauge_callback("pg_pool_queued", "Jobs waiting for a PostgreSQL pool connection.", {"pool"}, {p->o_.name},
                     [pp = p.get()] { return static_cast<double>(pp->stats().queued); });
  return p;
}

Pool::~Pool() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  auto& reg = core::metrics::Registry::global();
  for (const char* m : {"pg_pool_connections", "pg_pool_busy", "pg_pool_queued"}) reg.remove_callback(m, {o_.name});
}

bool Pool::submit(Job job) { return job && enqueue(Queued{std::move(job), {}, {}}); }

bool Pool::submit_query(Connection::Statement statement, QueryDone done) {
  return done && enqueue(Queued{{}, std::move(statement), std::move(done)});
}

bool Pool::enqueue(Queued q) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || jobs_.size() >= o_.max_queued) {
      ++refused_;
      return false;
    }
    jobs_.push_back(std::move(q));
  }
  cv_.notify_one();
  return true;
}

uint64_t Pool::batched_queries() const {
  std::lock_guard lk(mu_);
  return queries_;
}

uint64_t Pool::batches() const {
  std::lock_guard lk(mu_);
  return batches_;
}

void Pool::run_queries(Connection* c, const Status& why, std::vector<Queued>& batch) {
  std::vector<Result<Rows>> out;
  if (!c) {
    for (size_t i = 0; i < batch.size(); ++i) out.emplace_back(why);
  } else if (batch.size() == 1) {
    out.push_back(c->query(batch[0].query.sql, batch[0].query.params));
  } else {
    std::vector<Connection::Statement> statements;
    statements.reserve(batch.size());
    for (auto& q : batch) statements.push_back(std::move(q.query));
    out = c->batch(statements);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    try {
      batch[i].done(std::move(out[i]));
    } catch (const std::exception& e) {
      pool_log.error("query callback threw", {{"pool", o_.name}, {"error", e.what()}});
    } catch (...) {
      pool_log.error("query callback threw", {{"pool", o_.name}});
    }
  }
}

PoolStats Pool::stats() const {
  std::lock_guard lk(mu_);
  return {open_, busy_, jobs_.size(), done_, refused_, connects_, connect_failures_};
}

void Pool::worker(Slot slot) {
  std::unique_lock lk(mu_);
  for (;;) {
    // An idle connection beyond max_idle is closed after max_idle_time without a job.
    bool waited_out = false;
    if (slot.conn) {
      waited_out = !cv_.wait_for(lk, o_.max_idle_time, [&] { return stopping_ || !jobs_.empty(); });
    } else {
      cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
    }
    if (waited_out) {
      if (open_ - busy_ > o_.max_idle) {
        slot.conn.reset();
        --open_;
      }
      continue;
    }
    if (jobs_.empty()) break;  // stopping, and every queued job has run
    Job job;
    std::vector<Queued> queries;
    if (jobs_.front().job) {
      job = std::move(jobs_.front().job);
      jobs_.pop_front();
    } else {
      // The queries at the head of the queue, shared out so every connection gets some.
      size_t share = std::clamp<size_t>((jobs_.size() + o_.max_open - 1) / o_.max_open, 1, kMaxBatch);
      while (queries.size() < share && !jobs_.empty() && !jobs_.front().job) {
        queries.push_back(std::move(jobs_.front()));
        jobs_.pop_front();
      }
      queries_ += queries.size();
      ++batches_;
    }
    ++busy_;
    bool had = slot.conn != nullptr;
    lk.unlock();

    auto now = std::chrono::steady_clock::now();
    if (slot.conn && now - slot.opened > o_.max_lifetime) slot.conn.reset();  // recycled
    Status why;
    bool connected_now = false;
    if (!slot.conn) {
      auto c = Connection::connect(o_.url, o_.connection);
      if (c.is_ok()) {
        slot.conn = std::move(*c);
        slot.opened = now;
        connected_now = true;
      } else {
        why = c.status();
        pool_log.warn("cannot connect", {{"pool", o_.name}, {"error", why.to_string()}});
      }
    }
    if (job) {
      try {
        job(slot.conn.get(), why);
      } catch (const std::exception& e) {
        pool_log.error("job threw", {{"pool", o_.name}, {"error", e.what()}});
      } catch (...) {
        pool_log.error("job threw", {{"pool", o_.name}});
      }
    } else {
      run_queries(slot.conn.get(), why, queries);
    }
    slot.last_used = std::chrono::steady_clock::now();

    lk.lock();
    --busy_;
    done_ += job ? 1 : queries.size();
    if (connected_now) ++connects_;
    if (!slot.conn && !why.is_ok()) ++connect_failures_;
    if (!had && slot.conn) ++open_;
    if (had && !slot.conn) --open_;
  }
  if (slot.conn) --open_;
}

}  // namespace gantry::store::postgres
