// The cluster guide's combined success path: a circuit breaker admitting the call, the retry
// wrapper running it, and the idempotency store answering from its cache. The guide's Go
// version measured 1200 ns/op, 150 B/op, 5 allocs/op. Goal: <= 100 ns/op, 0 allocations.
//
// Prints one JSON line per figure (bench/run resilience). Times are per operation; with two
// threads, "per operation" is wall time over the operations of both threads together, so
// perfect scaling halves it; combined_scaling_2threads = 1-thread time / 2-thread time.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>

#include "core/resilience/circuit_breaker.h"
#include "core/resilience/idempotency.h"
#include "core/resilience/rate_limiter.h"
#include "core/resilience/retry.h"

// Every allocation in this process is counted, per thread.
namespace {
thread_local uint64_t t_allocs = 0;
}
void* operator new(size_t n) {
  ++t_allocs;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  ++t_allocs;
  return std::malloc(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t a) {
  ++t_allocs;
  void* p = nullptr;
  if (posix_memalign(&p, std::max(sizeof(void*), static_cast<size_t>(a)), n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
// These deletes pair with the replaced news above (all malloc-based); GCC 12 cannot see that.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using namespace gantry::core;
using namespace gantry::core::resilience;

CircuitBreaker& breaker() {
  static CircuitBreaker b("bench", BreakerRegistry::preset("default"));
  return b;
}
IdempotencyStore<int64_t>& store() {
  static IdempotencyStore<int64_t> s({"bench"});
  return s;
}

void count_allocs(benchmark::State& state, uint64_t before) {
  state.counters["allocs_per_op"] = benchmark::Counter(static_cast<double>(t_allocs - before),
                                                       benchmark::Counter::kAvgIterations);
}

void BM_Combined(benchmark::State& state) {
  const RetryPolicy policy = RetryPolicy::standard();
  const IdempotencyKey key = idempotency_key("create-instance", "{\"node\":" + std::to_string(state.thread_index()) + "}");
  auto op = []() -> Result<int64_t> { return int64_t{42}; };
  (void)store().run(key, op);  // the first call fills the cache; the loop measures hits
  uint64_t before = t_allocs;
  for (auto _ : state) {
    Result<int64_t> r = breaker().call([&] { return retry(policy, [&]() { return store().run(key, op); }); });
    benchmark::DoNotOptimize(r);
  }
  count_allocs(state, before);
}
BENCHMARK(BM_Combined)->Threads(1)->Threads(2)->UseRealTime();

void BM_BreakerOnly(benchmark::State& state) {
  uint64_t before = t_allocs;
  for (auto _ : state) {
    Status s = breaker().call([] { return Status(); });
    benchmark::DoNotOptimize(s);
  }
  count_allocs(state, before);
}
BENCHMARK(BM_BreakerOnly)->Threads(1)->Threads(2)->UseRealTime();

void BM_RetryOnly(benchmark::State& state) {
  const RetryPolicy policy = RetryPolicy::standard();
  uint64_t before = t_allocs;
  for (auto _ : state) {
    Status s = retry(policy, [] { return Status(); });
    benchmark::DoNotOptimize(s);
  }
  count_allocs(state, before);
}
BENCHMARK(BM_RetryOnly)->Threads(1)->Threads(2)->UseRealTime();

void BM_IdempotencyHit(benchmark::State& state) {
  const IdempotencyKey key = idempotency_key("get", std::to_string(state.thread_index()));
  auto op = []() -> Result<int64_t> { return int64_t{7}; };
  (void)store().run(key, op);
  uint64_t before = t_allocs;
  for (auto _ : state) {
    auto r = store().run(key, op);
    benchmark::DoNotOptimize(r);
  }
  count_allocs(state, before);
}
BENCHMARK(BM_IdempotencyHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_RateLimiterAllowed(benchmark::State& state) {
  static RateLimiter rl("bench", 1e12, 1e12);
  const std::string key = "client-" + std::to_string(state.thread_index());
  uint64_t before = t_allocs;
  for (auto _ : state) benchmark::DoNotOptimize(rl.take(key));
  count_allocs(state, before);
}
BENCHMARK(BM_RateLimiterAllowed)->Threads(1)->Threads(2)->UseRealTime();

// Prints {"bench":"resilience","metric":…} lines: <name>_ns_per_op and <name>_allocs_per_op,
// with a _2threads suffix for two threads.
class JsonLines : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      std::string name = r.run_name.function_name;  // BM_Combined
      static const std::map<std::string, std::string> names = {{"BM_Combined", "combined"},
                                                               {"BM_BreakerOnly", "breaker"},
                                                               {"BM_RetryOnly", "retry"},
                                                               {"BM_IdempotencyHit", "idempotency_hit"},
                                                               {"BM_RateLimiterAllowed", "rate_limiter"}};
      auto it = names.find(name);
      if (it == names.end()) continue;
      std::string suffix = r.threads > 1 ? "_" + std::to_string(r.threads) + "threads" : "";
      double ns = r.GetAdjustedRealTime();  // time unit is ns
      double allocs = 0;
      if (auto c = r.counters.find("allocs_per_op"); c != r.counters.end()) allocs = c->second.value;
      std::printf("{\"bench\":\"resilience\",\"metric\":\"%s_ns_per_op%s\",\"value\":%.1f,\"unit\":\"ns\"}\n",
                  it->second.c_str(), suffix.c_str(), ns);
      std::printf("{\"bench\":\"resilience\",\"metric\":\"%s_allocs_per_op%s\",\"value\":%.3f}\n", it->second.c_str(),
                  suffix.c_str(), allocs);
      if (it->second == "combined") {
        if (r.threads == 1) one_thread_ns_ = ns;
        else if (one_thread_ns_ > 0) {
          std::printf("{\"bench\":\"resilience\",\"metric\":\"combined_scaling_2threads\",\"value\":%.2f}\n",
                      one_thread_ns_ / ns);
        }
        if (r.threads == 1)
          std::printf("{\"bench\":\"resilience\",\"metric\":\"combined_speedup_vs_guide_1200ns\",\"value\":%.1f}\n",
                      1200.0 / ns);
      }
      std::fflush(stdout);
    }
  }

 private:
  double one_thread_ns_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  JsonLines reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
