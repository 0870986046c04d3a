// Runs operations side by side, at most `concurrency` at a time.
//
// The limit is shared by every run() on one manager and may change while they run: raising it
// starts waiting operations at once; lowering it starts none until fewer are in flight. Each
// operation gets a deadline (`timeout` from its start) and a stop token; when the deadline
// passes, its result is recorded as kDeadlineExceeded and the token asks it to stop. Its slot
// is freed when it returns, so the limit holds even for an operation slow to notice.
//
// The report gives each operation's result and duration, counts, wall time and parallel
// efficiency = sum of operation times / (min(concurrency, operations) × wall time), the
// concurrency being the limit when run() began. Log tag [PARALLEL].
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/resilience/deadline.h"
#include "core/status.h"

namespace gantry::core::metrics {
class Gauge;
}

namespace gantry::core::resilience {

struct ParallelOptions {
  std::string name = "parallel";
  int concurrency = 3;
  std::chrono::milliseconds timeout{600'000};  // per operation
};
// GANTRY_PARALLEL_MAX_CONCURRENCY, GANTRY_PARALLEL_TIMEOUT.
void bind(config::Schema& s, ParallelOptions* o);

struct OpContext {
  size_t index;
  Deadline deadline;
  std::stop_token stop;
};

struct Operation {
  std::string name;
  std::function<Status(const OpContext&)> fn;
};

struct OpResult {
  std::string name;
  Status status;
  Duration duration{};
};

struct ParallelReport {
  std::vector<OpResult> results;  // in the order given
  int succeeded = 0, failed = 0;
  Duration wall{};
  double efficiency = 0;  // 0..1
  int max_in_flight = 0;  // the most operations of this run running at once
};

class ParallelManager {
 public:
  explicit ParallelManager(ParallelOptions o = {}, const Clock& clock = Clock::real());
  ParallelManager(const ParallelManager&) = delete;
  ParallelManager& operator=(const ParallelManager&) = delete;

  // Runs every operation (each on its own thread) and returns when all have returned.
  ParallelReport run(std::vector<Operation> ops, Deadline parent = Deadline::infinite());

  void set_concurrency(int n);
  int concurrency() const { return concurrency_.load(); }
  void set_timeout(std::chrono::milliseconds t) { timeout_.store(t.count()); }
  int in_flight() const;
  // Re-checks deadlines now (tests that move a ManualClock call it; real time needs nothing).
  void wake() { cv_.notify_all(); }

 private:
  const std::string name_;
  const Clock& clock_;
  std::atomic<int> concurrency_;
  std::atomic<int64_t> timeout_;  // ms
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;  // across all runs, guarded by mu_
  metrics::Gauge* in_flight_gauge_;
  metrics::Gauge* efficiency_gauge_;
};

}  // namespace gantry::core::resilience
