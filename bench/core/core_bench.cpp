// bench/run core: the store and bus clients against raw clients of the same servers, each pair
// measured back to back in this process on this machine.
//
//   core_bench pg URL SECONDS       pool queries/s (64 coroutines on one io thread, a pool of
//                                   2 connections) vs a plain libpq loop (2 threads, one
//                                   connection each), all `SELECT $1::int`: through co_query
//                                   (batched) and through co_run (a job per statement)
//   core_bench redis URL SECONDS    Pipeline SETs/s (batches of 10,000, 1,000 in flight, random
//                                   keys of a 1M keyspace, 3-byte values); redis-benchmark is the
//                                   reference and runs from core.sh
//   core_bench amqp URL SECONDS     Pool confirmed publishes/s (batches of 100) vs a raw
//                                   rabbitmq-c loop (confirm.select, 100 published, then read
//                                   acks until all are in), same queue, same messages
// Prints JSON lines {"bench":"core",...}.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "bench/emit.h"
#include "bench/raw_amqp.h"
#include "bus/amqp/amqp.h"
#include "bus/amqp/pool.h"
#include "bus/redis/pipeline.h"
#include "core/log.h"
#include "store/postgres/co_pool.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace gantry;

constexpr const char* kBench = "core";

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- PostgreSQL ------------------------------------------------------------------------------

double raw_libpq(const std::string& url, double secs) {
  std::atomic<long> n{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t)
    ts.emplace_back([&] {
      PGconn* c = PQconnectdb(url.c_str());
      if (PQstatus(c) != CONNECTION_OK) {
        std::fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
        std::exit(1);
      }
      long i = 0;
      while (!stop) {
        std::string v = std::to_string(i++);
        const char* vals[] = {v.c_str()};
        PGresult* r = PQexecParams(c, "SELECT $1::int", 1, nullptr, vals, nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) std::exit(1);
        PQclear(r);
        ++n;
      }
      PQfinish(c);
    });
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  stop = true;
  for (auto& t : ts) t.join();
  return static_cast<double>(n.load()) / seconds_since(t0);
}

// 64 coroutines on one io thread through a pool of 2 connections: co_query (batched) when
// `batched`, else co_run with a function per statement (one round trip and handoff each).
double pool_coroutines(const std::string& url, double secs, bool batched) {
  namespace asio = boost::asio;
  store::postgres::PoolOptions o;
  o.url = url;
  o.name = "bench";
  o.max_open = 2;
  o.max_idle = 2;
  auto pool = store::postgres::Pool::open(o);
  if (!pool.is_ok()) {
    std::fprintf(stderr, "pool: %s\n", pool.status().to_string().c_str());
    std::exit(1);
  }
  asio::io_context ioc(1);
  std::atomic<long> n{0}, failed{0};
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  auto t0 = Clock::now();
  for (int c = 0; c < 64; ++c)
    asio::co_spawn(
        ioc,
        [&, c]() -> asio::awaitable<void> {
          long i = c;
          while (Clock::now() < deadline) {
            std::string v = std::to_string(i++);
            bool ok;
            if (batched) {
              // Named arguments: GCC 12 cannot copy a string literal into a coroutine's frame.
              std::string sql = "SELECT $1::int";
              std::vector<std::optional<std::string>> params{v};
              auto r = co_await store::postgres::co_query(**pool, std::move(sql), std::move(params));
              ok = r.is_ok() && r->get(0, 0) == v;
            } else {
              // A named job: GCC 12 mishandles a lambda temporary inside a co_await expression.
              auto job = [v](store::postgres::Connection& conn) { return conn.query("SELECT $1::int", {v}); };
              auto r = co_await store::postgres::co_run(**pool, std::move(job));
              ok = r.is_ok() && r->get(0, 0) == v;
            }
            if (ok) ++n;
            else ++failed;
          }
        },
        asio::detached);
  ioc.run();
  double rate = static_cast<double>(n.load()) / seconds_since(t0);
  if (failed) std::fprintf(stderr, "pool: %ld failed\n", failed.load());
  return rate;
}

// ---- Redis -----------------------------------------------------------------------------------

double redis_pipeline(const std::string& url, double secs) {
  auto ep = bus::redis::Endpoint::parse_url(url);
  if (!ep.is_ok()) std::exit(1);
  bus::redis::PipelineOptions o;
  o.max_in_flight = 1000;
  o.breaker = "redis-bench";
  bus::redis::Pipeline p(*ep, o);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> key(0, 999'999);
  long n = 0;
  auto t0 = Clock::now();
  while (seconds_since(t0) < secs) {
    char k[24];
    for (int i = 0; i < 10'000; ++i) {
      int len = std::snprintf(k, sizeof k, "key:%d", key(rng));
      p.add({"SET", std::string_view(k, static_cast<size_t>(len)), "xxx"});
    }
    auto r = p.exec_writes();
    if (!r.is_ok() || r->errors) {
      std::fprintf(stderr, "pipeline: %s\n", r.is_ok() ? r->first_error.c_str() : r.status().to_string().c_str());
      std::exit(1);
    }
    n += static_cast<long>(r->commands);
  }
  return static_cast<double>(n) / seconds_since(t0);
}

// ---- RabbitMQ --------------------------------------------------------------------------------

// The raw client: default exchange, the queue's name as key, batches of 100.
double raw_rabbitmq_c(const std::string& url, const std::string& queue, double secs) {
  return bench::raw_amqp_confirmed_per_s(url, "", queue, R"({"channel":"cptm8.asmm8.get.scan","source":"orchestratorm8"})", 100,
                                         secs);
}

double amqp_pool(const std::string& url, const std::string& queue, double secs) {
  bus::amqp::PoolOptions o;
  o.url = url;
  o.name = "bench";
  auto pool = bus::amqp::Pool::open(o);
  if (!pool.is_ok()) std::exit(1);
  std::vector<bus::amqp::Message> batch(100, {"", queue, R"({"channel":"cptm8.asmm8.get.scan","source":"orchestratorm8"})"});
  long n = 0, failed = 0;
  auto t0 = Clock::now();
  while (seconds_since(t0) < secs) {
    for (auto& s : (*pool)->publish_batch(batch)) (s.is_ok() ? n : failed)++;
  }
  if (failed) std::fprintf(stderr, "amqp pool: %ld failed\n", failed);
  return static_cast<double>(n) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: core_bench pg|redis|amqp URL SECONDS\n");
    return 2;
  }
  core::log::Settings ls;
  ls.level = "warn";
  (void)core::log::init(ls);
  std::string what = argv[1], url = argv[2];
  double secs = std::stod(argv[3]);
  if (what == "pg") {
    // Alternating, the best of two each.
    double raw = 0, ours = 0, jobs = 0;
    for (int round = 0; round < 2; ++round) {
      raw = std::max(raw, raw_libpq(url, secs));
      ours = std::max(ours, pool_coroutines(url, secs, true));
      jobs = std::max(jobs, pool_coroutines(url, secs, false));
    }
    bench::emit(kBench, "pg_pool_queries_per_s", ours, "1/s");
    bench::emit(kBench, "pg_pool_jobs_per_s", jobs, "1/s");
    bench::emit(kBench, "pg_raw_libpq_queries_per_s", raw, "1/s");
    bench::emit(kBench, "pg_ratio_vs_raw", ours / raw);
    bench::emit(kBench, "pg_jobs_ratio_vs_raw", jobs / raw);
  } else if (what == "redis") {
    bench::emit(kBench, "redis_pipeline_sets_per_s", redis_pipeline(url, secs), "1/s");
  } else if (what == "amqp") {
    std::string queue = "gantry_bench_core";
    // Each measurement starts on an empty queue: a queue the previous one filled makes the
    // broker drop a message per publish, which would favour whichever runs first.
    auto fresh_queue = [&] {
      {
        auto ch = bus::amqp::Channel::connect(url);
        if (!ch.is_ok()) std::exit(1);
        (void)(*ch)->delete_queue(queue);
      }
      auto ch = bus::amqp::Channel::connect(url);
      // Non-durable, bounded (oldest dropped): the broker's disk and memory stay out of the figure.
      if (!ch.is_ok() || !(*ch)->declare_queue(queue, false, {100'000, "drop-head", ""}).is_ok()) std::exit(1);
    };
    double raw = 0, ours = 0;
    for (int round = 0; round < 2; ++round) {
      fresh_queue();
      raw = std::max(raw, raw_rabbitmq_c(url, queue, secs));
      fresh_queue();
      ours = std::max(ours, amqp_pool(url, queue, secs));
    }
    bench::emit(kBench, "amqp_confirmed_publishes_per_s", ours, "1/s");
    bench::emit(kBench, "amqp_raw_confirmed_publishes_per_s", raw, "1/s");
    bench::emit(kBench, "amqp_confirm_ratio_vs_raw", ours / raw);
    if (auto ch = bus::amqp::Channel::connect(url); ch.is_ok()) (void)(*ch)->delete_queue(queue);
  } else {
    return 2;
  }
  return 0;
}
