// bench/run orchestrator: the parts orchestrator.sh cannot time from the shell.
//
//   orchestrator_bench latency PG_CONN AMQP_URL QUEUE N
//       N domain INSERTs (autocommit, through libpq), each followed by waiting for its kick on
//       QUEUE (a plain rabbitmq-c consumer, acked), so the queue's length limit hides none:
//       the time from sending the INSERT to the delivery. Prints {"p50_ms","p99_ms"}.
//   orchestrator_bench publish AMQP_URL SECONDS
//       confirmed publishes/s of kick messages (exchange cptm8, persistent, application/json)
//       through the orchestrator's AMQP pool with its settings, in batches of 100, vs a plain
//       rabbitmq-c loop with confirms (100 published, then their acks), same messages, same
//       durable queue without a length limit, a fresh queue for each measurement, best of two;
//       then the same on a transient queue (transient_*), for context. BENCH_BATCH (100) and
//       BENCH_THREADS (1; the raw side then runs as many connections) vary the shape.
#include <amqp.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/emit.h"
#include "bench/raw_amqp.h"
#include "bus/amqp/amqp.h"
#include "bus/amqp/pool.h"
#include "core/log.h"
#include "orchestrator/settings.h"
#include "orchestrator/topology.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace gantry;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr const char* kBench = "orchestrator";

int latency(const std::string& pg, const std::string& amqp_url, const std::string& queue, int n) {
  PGconn* db = PQconnectdb(pg.c_str());
  if (PQstatus(db) != CONNECTION_OK) {
    std::fprintf(stderr, "latency: %s", PQerrorMessage(db));
    return 1;
  }
  amqp_connection_state_t c = bench::raw_amqp_connect(amqp_url);
  amqp_basic_qos(c, 1, 0, 1, 0);
  amqp_basic_consume(c, 1, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) return 1;
  std::mt19937_64 rng(std::random_device{}());
  std::string run = std::to_string(rng() % 1'000'000'000);
  std::vector<double> ms;
  for (int i = 0; i < n + 20; ++i) {
    std::string name = "bench-" + run + "-" + std::to_string(i) + ".example.com";
    const char* params[] = {name.c_str()};
    auto t0 = Clock::now();
    PGresult* r = PQexecParams(db, "INSERT INTO cptm8domain (name, companyname) VALUES ($1, 'bench')", 1, nullptr, params,
                               nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "latency: insert: %s", PQerrorMessage(db));
      return 1;
    }
    PQclear(r);
    amqp_envelope_t env;
    timeval tv{10, 0};
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t got = amqp_consume_message(c, &env, &tv, 0);
    if (got.reply_type != AMQP_RESPONSE_NORMAL) {
      std::fprintf(stderr, "latency: no kick within 10 s for insert %d\n", i);
      return 1;
    }
    double took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    amqp_basic_ack(c, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    if (i >= 20) ms.push_back(took);  // the first 20 warm up
  }
  std::sort(ms.begin(), ms.end());
  auto q = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))]; };
  std::printf("{\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"inserts\":%zu}\n", q(0.5), q(0.99), ms.size());
  bench::raw_amqp_close(c);
  PQexec(db, ("DELETE FROM cptm8domain WHERE name LIKE 'bench-" + run + "-%'").c_str());
  PQfinish(db);
  return 0;
}

constexpr const char* kKey = "cptm8.gantrybench.get.scan";
constexpr const char* kQueue = "gantry_bench_orchestrator";
int kThreads = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 1;
int kBatch = getenv("BENCH_BATCH") ? atoi(getenv("BENCH_BATCH")) : 100;

double raw_publish(const std::string& url, const std::string& body, double secs) {
  return bench::raw_amqp_confirmed_per_s(url, orchestrator::kExchange, kKey, body, kBatch, secs);
}

// kThreads raw loops side by side, each on its own connection.
double raw_publish_parallel(const std::string& url, const std::string& body, double secs) {
  std::vector<double> rates(static_cast<size_t>(kThreads));
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) ts.emplace_back([&, t] { rates[static_cast<size_t>(t)] = raw_publish(url, body, secs); });
  for (auto& t : ts) t.join();
  double sum = 0;
  for (double r : rates) sum += r;
  return sum;
}

double pool_publish(const std::string& url, const std::string& body, double secs) {
  orchestrator::AmqpSettings a;
  a.url = url;
  auto pool = bus::amqp::Pool::open(a.pool("bench"));
  if (!pool.is_ok()) std::exit(1);
  std::vector<bus::amqp::Message> batch(kBatch, {orchestrator::kExchange, kKey, body});
  std::atomic<long> n{0}, failed{0};
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      while (seconds_since(t0) < secs)
        for (auto& s : (*pool)->publish_batch(batch)) (s.is_ok() ? n : failed)++;
    });
  for (auto& t : ts) t.join();
  if (failed) std::fprintf(stderr, "publish: %ld not confirmed\n", failed.load());
  return static_cast<double>(n) / seconds_since(t0);
}

int publish(const std::string& url, double secs) {
  bool durable = true;
  auto fresh_queue = [&] {
    auto ch = bus::amqp::Channel::connect(url);
    if (!ch.is_ok()) std::exit(1);
    (void)(*ch)->delete_queue(kQueue);
    auto ch2 = bus::amqp::Channel::connect(url);
    if (!ch2.is_ok() || !(*ch2)->declare_exchange(orchestrator::kExchange).is_ok() ||
        !(*ch2)->declare_queue(kQueue, durable).is_ok() || !(*ch2)->bind(kQueue, orchestrator::kExchange, "cptm8.gantrybench.#").is_ok())
      std::exit(1);
  };
  std::string body = orchestrator::kick_body("gantrybench", std::chrono::system_clock::now());
  // Durable, as the scanners' queues are: the figures that count. Then a transient queue, for
  // context: what the same clients reach when the broker does not write messages to disk.
  for (durable = true;; durable = false) {
    double raw = 0, ours = 0;
    for (int round = 0; round < 2; ++round) {
      fresh_queue();
      raw = std::max(raw, raw_publish_parallel(url, body, secs));
      fresh_queue();
      ours = std::max(ours, pool_publish(url, body, secs));
    }
    if (durable) {
      bench::emit(kBench, "confirmed_publishes_per_s", ours, "1/s");
      bench::emit(kBench, "raw_confirmed_per_s", raw, "1/s");
      bench::emit(kBench, "publish_ratio_vs_raw", ours / raw);
    } else {
      bench::emit(kBench, "transient_confirmed_publishes_per_s", ours, "1/s");
      bench::emit(kBench, "transient_raw_confirmed_per_s", raw, "1/s");
      bench::emit(kBench, "transient_publish_ratio_vs_raw", ours / raw);
      break;
    }
  }
  if (auto ch = bus::amqp::Channel::connect(url); ch.is_ok()) (void)(*ch)->delete_queue(kQueue);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  core::log::Settings ls;
  ls.level = "warn";
  (void)core::log::init(ls);
  std::string what = argc > 1 ? argv[1] : "";
  if (what == "latency" && argc == 6) return latency(argv[2], argv[3], argv[4], std::stoi(argv[5]));
  if (what == "publish" && argc == 4) return publish(argv[2], std::stod(argv[3]));
  std::fprintf(stderr, "usage: orchestrator_bench latency PG_CONN AMQP_URL QUEUE N | publish AMQP_URL SECONDS\n");
  return 2;
}
