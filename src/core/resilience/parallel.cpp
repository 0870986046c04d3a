#include "core/resilience/parallel.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "core/log.h"
#include "core/metrics.h"

namespace gantry::core::resilience {

namespace {
const log::Logger parallel_log("parallel");
}

void bind(config::Schema& s, ParallelOptions* o) {
  s.add("parallel_max_concurrency", &o->concurrency, "operations run at once")
      .env("GANTRY_PARALLEL_MAX_CONCURRENCY")
      .env("GOMAN_PARALLEL_MAX_CONCURRENCY")
      .range(1, 1000);
  s.add("parallel_timeout", &o->timeout, "time allowed to each operation")
      .env("GANTRY_PARALLEL_TIMEOUT")
      .env("GOMAN_PARALLEL_TIMEOUT")
      .range(1, 86'400'000);
}

ParallelManager::ParallelManager(ParallelOptions o, const Clock& clock)
    : name_(std::move(o.name)), clock_(clock), concurrency_(std::max(1, o.concurrency)), timeout_(o.timeout.count()) {
  auto& r = metrics::Registry::global();
  in_flight_gauge_ = &r.gauge("resilience_parallel_in_flight", "Operations running now.", {"manager"}).with({name_});
  efficiency_gauge_ = &r.gauge("resilience_parallel_efficiency", "Parallel efficiency of the last run (0..1).",
                               {"manager"}).with({name_});
}

void ParallelManager::set_concurrency(int n) {
  concurrency_.store(std::max(1, n));
  cv_.notify_all();
  parallel_log.info("[PARALLEL] concurrency limit changed", {{"manager", name_}, {"concurrency", concurrency_.load()}});
}

int ParallelManager::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

ParallelReport ParallelManager::run(std::vector<Operation> ops, Deadline parent) {
  const size_t n = ops.size();
  ParallelReport rep;
  rep.results.resize(n);
  if (n == 0) return rep;

  struct Running {
    std::thread thread;
    std::stop_source stop;
    Deadline deadline = Deadline::infinite();
    MonoTime started;
    bool finished = false;
    bool timed_out = false;
  };
  std::vector<Running> running(n);
  const int limit_at_start = concurrency_.load();
  const MonoTime t0 = clock_.now();
  size_t next = 0, done = 0;
  int mine = 0;  // this run's operations in flight

  std::unique_lock lock(mu_);
  while (done < n) {
    // Start what the limit allows.
    while (next < n && in_flight_ < concurrency_.load()) {
      size_t i = next++;
      Running& r = running[i];
      r.started = clock_.now();
      r.deadline = parent.child(clock_, std::chrono::milliseconds(timeout_.load()));
      ++in_flight_;
      ++mine;
      rep.max_in_flight = std::max(rep.max_in_flight, mine);
      in_flight_gauge_->set(in_flight_);
      r.thread = std::thread([this, i, &ops, &r, &rep, &done, &mine] {
        OpContext ctx{i, r.deadline, r.stop.get_token()};
        Status s = ops[i].fn(ctx);
        std::lock_guard l(mu_);
        auto took = clock_.now() - r.started;
        if (!r.timed_out) rep.results[i] = {std::move(ops[i].name), std::move(s), took};
        r.finished = true;
        --in_flight_;
        --mine;
        ++done;
        in_flight_gauge_->set(in_flight_);
        cv_.notify_all();
      });
    }
    if (done == n) break;
    // Time out operations past their deadline.
    MonoTime now = clock_.now();
    Duration nearest = std::chrono::milliseconds(100);
    for (size_t i = 0; i < next; ++i) {
      Running& r = running[i];
      if (r.finished || r.timed_out) continue;
      if (r.deadline.expired(clock_)) {
        r.timed_out = true;
        r.stop.request_stop();
        rep.results[i] = {ops[i].name,
                          Status(Code::kDeadlineExceeded, "operation timed out after " +
                                                              config::format(std::chrono::duration_cast<std::chrono::milliseconds>(now - r.started)),
                                 name_),
                          now - r.started};
        parallel_log.warn("[PARALLEL] operation timed out", {{"manager", name_}, {"operation", ops[i].name}});
      } else {
        nearest = std::min(nearest, r.deadline.remaining(clock_));
      }
    }
    cv_.wait_for(lock, std::max(nearest, Duration(std::chrono::milliseconds(1))));
  }
  lock.unlock();
  for (auto& r : running)
    if (r.thread.joinable()) r.thread.join();

  rep.wall = clock_.now() - t0;
  Duration busy{};
  for (auto& r : rep.results) {
    busy += r.duration;
    (r.status.is_ok() ? rep.succeeded : rep.failed)++;
  }
  double denom = static_cast<double>(std::min<size_t>(static_cast<size_t>(limit_at_start), n)) *
                 std::chrono::duration<double>(rep.wall).count();
  rep.efficiency = denom > 0 ? std::min(1.0, std::chrono::duration<double>(busy).count() / denom) : 1.0;
  efficiency_gauge_->set(rep.efficiency);
  static auto& total = metrics::Registry::global().counter("resilience_parallel_operations_total",
                                                          "Operations run, by manager and result.", {"manager", "result"});
  total.with({name_, "success"}).inc(static_cast<uint64_t>(rep.succeeded));
  total.with({name_, "failure"}).inc(static_cast<uint64_t>(rep.failed));
  parallel_log.info("[PARALLEL] run finished",
          {{"manager", name_}, {"operations", static_cast<long long>(n)}, {"succeeded", rep.succeeded},
           {"failed", rep.failed}, {"wall_ms", log::ms(rep.wall)},
           {"efficiency_pct", std::round(rep.efficiency * 1000) / 10}, {"concurrency", limit_at_start}});
  return rep;
}

}  // namespace gantry::core::resilience
