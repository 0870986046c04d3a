// Load generator for bench/telemetry.sh. Every event it makes is valid and has a unique
// event_id (prefix + a scrambled counter), so nothing is deduplicated away.
//
//   telemetry_load raw NATS_URL N PREFIX
//       publishes N events straight to JetStream (async, acked): the rate this design can at
//       best reach; prints events/s
//   telemetry_load consume NATS_URL N PREFIX [FETCH]
//       N events into a scratch stream, then pulled and acked by two threads (FETCH at a time,
//       default 2,000, an ack each), no database: the consuming half of the aggregator; prints
//       "events/s cpu_us_per_event" (the whole machine's busy CPU during the consume)
//   telemetry_load rawrate NATS_URL EVENTS_PER_S SECONDS PREFIX
//       open loop straight to JetStream (the event-loop publisher ingest uses, no HTTP):
//       the latency floor the server sets; prints "sent p50_ms p99_ms errors"
//   telemetry_load rate URL EVENTS_PER_S SECONDS CONNECTIONS PREFIX
//       open loop: POSTs single events on schedule over keep-alive connections; latency is
//       measured from each event's scheduled time (no coordinated omission); prints
//       "sent p50_ms p99_ms errors"
//   telemetry_load batch URL N BATCH CONNECTIONS PREFIX
//       POSTs N events as NDJSON batches; prints events/s
//   telemetry_load e2e URL DB_URL EVENTS_PER_S SECONDS WINDOW_MS PREFIX
//       open loop through ingest, events stamped with their send time over 10 clients, while
//       polling agg_1m every 100 ms: an event counts as arrived when its window's row holds
//       every event of that window ingest accepted. Prints "events p50_s p99_s
//       incomplete_windows", delays measured from the end of each event's window
//   telemetry_load drained METRICS_URL LIMIT_S
//       waits until the aggregator serving METRICS_URL has drained its stream (polling its
//       metrics); prints "events timed_events seconds cpu_us_per_event" (timed: from the first
//       look to the last event), exits 2 if LIMIT_S passes first
//   telemetry_load purge NATS_URL
//       empties the events stream, so a run drains exactly the events it made
//   telemetry_load lua PREFIX
//       prints a wrk script POSTing unique single events
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "bus/nats/jetstream.h"
#include "bus/nats/publisher.h"
#include "core/metrics.h"
#include "store/postgres/pg.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// CPU time the whole machine has spent busy (user, nice, system, irq, softirq), in ticks of
// 1/100 s: the references' CPU per event, whichever processes it went to.
uint64_t busy_ticks() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  if (f) {
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq, &softirq) != 7)
      user = nice = sys = irq = softirq = 0;
    std::fclose(f);
  }
  return user + nice + sys + irq + softirq;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// prefix: 8 hex digits; n: the counter. A valid UUID. Its last 48 bits are the counter times an
// odd constant (a bijection mod 2^48, so still unique): probes send random UUIDs, and keys in
// random order cost events_seen's key index far more than ascending ones.
std::string event(const std::string& prefix, uint64_t n, int clients = 1000, int64_t ts_ms = now_ms()) {
  char id[40];
  std::snprintf(id, sizeof id, "%s-0000-4000-8000-%012llx", prefix.c_str(),
                static_cast<unsigned long long>((n * 0x9E3779B97F4A7C15ULL) & 0xFFFFFFFFFFFFULL));
  char buf[512];
  int len = std::snprintf(buf, sizeof buf,
                          R"({"event_id":"%s","client_id":"bench-%llu","ts_ms":%lld,"schema_version":"1.0",)"
                          R"("target":"https://example.com/","network_context":{"interface_type":"wifi"},)"
                          R"("timings":{"dns_ms":%.3f,"tcp_ms":%.3f,"tls_ms":%.3f,"http_ttfb_ms":%.3f},"throughput_kbps":%.1f})",
                          id, static_cast<unsigned long long>(n % clients), static_cast<long long>(ts_ms), 1 + (n % 17) * 0.5,
                          2 + (n % 13) * 0.7, 3 + (n % 11) * 0.9, 20 + (n % 29) * 1.1, 1000.0 + static_cast<double>(n % 97));
  return std::string(buf, len);
}

struct Url {
  std::string host, port, path;
};
Url parse(const std::string& u) {
  auto s = u.find("://");
  std::string rest = u.substr(s == std::string::npos ? 0 : s + 3);
  auto slash = rest.find('/');
  std::string hp = rest.substr(0, slash);
  auto c = hp.rfind(':');
  return {hp.substr(0, c), hp.substr(c + 1), slash == std::string::npos ? "/" : rest.substr(slash)};
}

// The reference: cnats' own asynchronous JetStream publishing (a raw C client of the server),
// every message acknowledged, the same bodies and message ids as ingest gets.
void raw_ack(jsCtx*, natsMsg* m, jsPubAck*, jsPubAckErr* pae, void* closure) {
  auto* counts = static_cast<std::atomic<uint64_t>*>(closure);
  counts[pae ? 1 : 0]++;
  natsMsg_Destroy(m);
}

int raw(const std::string& url, uint64_t n, const std::string& prefix) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<uint64_t> counts[2] = {0, 0};  // acked, refused
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) {
    std::cerr << "raw: cannot connect to " << url << "\n";
    return 1;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 8192;
  jo.PublishAsync.AckHandler = &raw_ack;
  jo.PublishAsync.AckHandlerClosure = counts;
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) return 1;
  std::vector<std::string> bodies;
  bodies.reserve(n);
  for (uint64_t i = 0; i < n; ++i) bodies.push_back(event(prefix, i));
  uint64_t failed = 0;
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    const std::string& b = bodies[i];
    std::string id = b.substr(13, 36);  // {"event_id":" is 13 bytes
    natsMsg* m = nullptr;
    natsMsg_Create(&m, "telemetry.events", nullptr, b.data(), static_cast<int>(b.size()));
    natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
    if (js_PublishMsgAsync(js, &m, nullptr) != NATS_OK) {
      ++failed;
      natsMsg_Destroy(m);
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60'000;
  (void)js_PublishAsyncComplete(js, &po);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  failed += counts[1].load();
  std::printf("%.0f %llu\n", static_cast<double>(counts[0].load()) / secs, static_cast<unsigned long long>(failed));
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return failed ? 1 : 0;
}

// The aggregator's other reference: the same kind of events pulled and acked by cnats with no
// database, from a scratch stream configured like the events stream (file storage, work-queue
// retention: every ack removes the message from the store, which is most of the server's work
// per message; telemetry/streams.h), each message with the Nats-Msg-Id header ingest sets, on
// two threads fetching `fetch` at a time and acking each message, as the aggregator's two lanes do. The
// scratch stream is deleted afterwards. Prints events/s of the consume alone and the machine's
// busy CPU per event meanwhile, in µs.
int consume(const std::string& url, uint64_t n, const std::string& prefix, int fetch) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) return std::cerr << "consume: cannot connect\n", 1;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 8192;
  // Filling the scratch stream is not timed: a server pausing longer than cnats' default 200 ms
  // (a file store busy after the aggregator's drain) must not end the benchmark.
  jo.PublishAsync.StallWait = 30'000;
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) return 1;
  const char* stream = "bench-consume";
  const char* subject = "bench.consume";
  jsErrCode jerr = static_cast<jsErrCode>(0);
  (void)js_DeleteStream(js, stream, nullptr, &jerr);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream;
  cfg.Subjects = &subject;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_WorkQueuePolicy;
  if (js_AddStream(nullptr, js, &cfg, nullptr, &jerr) != NATS_OK) return std::cerr << "consume: cannot add the stream\n", 1;
  for (uint64_t i = 0; i < n; ++i) {
    std::string b = event(prefix, i);
    natsMsg* m = nullptr;
    natsMsg_Create(&m, subject, nullptr, b.data(), static_cast<int>(b.size()));
    natsMsgHeader_Set(m, "Nats-Msg-Id", b.substr(13, 36).c_str());
    if (natsStatus st = js_PublishMsgAsync(js, &m, nullptr); st != NATS_OK)
      return std::cerr << "consume: publish " << i << " of " << n << " failed: " << natsStatus_GetText(st) << "\n", 1;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60'000;
  if (js_PublishAsyncComplete(js, &po) != NATS_OK) return std::cerr << "consume: publishes not acked\n", 1;
  std::atomic<uint64_t> acked{0};
  auto lane = [&] {
    natsSubscription* sub = nullptr;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 20'000;
    if (js_PullSubscribe(&sub, js, subject, "bench-consumer", nullptr, &so, &jerr) != NATS_OK) {
      std::cerr << "consume: cannot subscribe (" << jerr << ")\n";
      return;
    }
    while (acked.load() < n) {
      natsMsgList list{};
      if (natsSubscription_Fetch(&list, sub, fetch, 500, &jerr) != NATS_OK) continue;
      for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
      acked += static_cast<uint64_t>(list.Count);
      natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
  };
  auto t0 = Clock::now();
  uint64_t c0 = busy_ticks();
  std::thread a(lane), b(lane);
  a.join();
  b.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu_us = static_cast<double>(busy_ticks() - c0) * 10'000.0 / static_cast<double>(acked.load());
  std::printf("%.0f %.1f\n", static_cast<double>(acked.load()) / secs, cpu_us);
  (void)js_DeleteStream(js, stream, nullptr, &jerr);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return 0;
}

// Sums the samples of `family` in a Prometheus text page whose labels satisfy `keep`.
template <class Keep>
double metric_sum(std::string_view page, std::string_view family, Keep keep) {
  double sum = 0;
  gantry::core::metrics::for_each_sample(page, [&](const gantry::core::metrics::Sample& s) {
    if (s.name == family && keep(s.labels)) sum += s.value;
  });
  return sum;
}

// Waits until the aggregator at METRICS_URL has drained its stream: events processed (success
// or duplicate) and none left to deliver or awaiting an ack. One keep-alive connection polled
// every 50 ms: a curl, bash and awk per look took ~8% of the CPU of the drain it measured.
// The drain is timed from the first look to the look at which the count took its final value:
// events handled before the first look (the aggregator starts consuming before its /health
// answers) are left out of the count and the time alike, and the wait for the queue gauges
// (refreshed once a second) that confirms the end is not counted either; it used to be,
// adding 0-1 s to a drain of ~15 s.
// Prints "events timed_events seconds cpu_us_per_event" (the whole machine's busy CPU per
// timed event); exits 2 with what was drained if the limit passes first.
int drained(const std::string& url, double limit_s) {
  Url u = parse(url);
  asio::io_context io;
  tcp::resolver r(io);
  beast::tcp_stream s(io);
  s.connect(r.resolve(u.host, u.port));
  beast::flat_buffer buf;
  auto t0 = Clock::now();
  struct Look {
    double events;
    Clock::time_point at;
    uint64_t ticks;
  };
  std::optional<Look> start, settled;  // the first look; the look at which the count last changed
  Clock::time_point empty_since{};  // the look from which the queue has read empty; {}: not empty
  double events = 0;
  int rc = 2;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < limit_s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, u.path, 11};
    req.set(bhttp::field::host, u.host);
    bhttp::write(s, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    Look look{0, Clock::now(), busy_ticks()};
    const std::string& page = res.body();
    auto any = [](std::string_view) { return true; };
    events = look.events = metric_sum(page, "events_processed_total", [](std::string_view labels) {
      return labels.find("\"success\"") != std::string_view::npos || labels.find("\"duplicate\"") != std::string_view::npos;
    });
    if (!start) start = look;
    bool changed = !settled || events != settled->events;
    if (changed) settled = look;
    // The queue gauges are refreshed once a second: empty, with the count unchanged, for more
    // than a second confirms the drain.
    bool empty = metric_sum(page, "queue_lag_messages", any) + metric_sum(page, "queue_ack_pending_messages", any) == 0;
    if (!empty || events == 0) {
      empty_since = {};
      continue;
    }
    if (changed || empty_since == Clock::time_point{}) empty_since = look.at;  // the confirmation starts over
    if (look.at - empty_since > std::chrono::milliseconds(1100)) {
      rc = 0;
      break;
    }
  }
  Look end = rc == 0 ? *settled : Look{events, Clock::now(), busy_ticks()};
  double timed = start ? end.events - start->events : 0;
  double secs = start ? std::chrono::duration<double>(end.at - start->at).count() : 0;
  double cpu_us = timed > 0 ? static_cast<double>(end.ticks - start->ticks) * 10'000.0 / timed : 0;
  std::printf("%.0f %.0f %.2f %.1f\n", events, timed, secs, cpu_us);
  return rc;
}

int rawrate(const std::string& url, double per_s, double seconds, const std::string& prefix) {
  asio::io_context io;
  gantry::bus::nats::Publisher pub(io, {.urls = url, .name = "bench-rawrate"});
  if (auto s = pub.connect(); !s.is_ok()) {
    std::cerr << s.to_string() << "\n";
    return 1;
  }
  uint64_t total = static_cast<uint64_t>(per_s * seconds);
  std::vector<double> lat;
  lat.reserve(total);
  uint64_t errors = 0, answered = 0;
  auto start = Clock::now() + std::chrono::milliseconds(200);
  asio::steady_timer t(io);
  uint64_t i = 0;
  std::function<void()> tick = [&] {
    // Everything due by now goes out; each publish's latency counts from its scheduled time.
    auto now = Clock::now();
    for (; i < total; ++i) {
      auto when = start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_s));
      if (when > now) {
        t.expires_at(when);
        t.async_wait([&](boost::system::error_code) { tick(); });
        return;
      }
      std::string body = event(prefix, i);
      std::string_view id(body.data() + 13, 36);
      auto st = pub.publish("telemetry.events", body, id, [&, when](gantry::core::Result<gantry::bus::nats::PubAck> r) {
        if (!r.is_ok()) ++errors;
        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - when).count());
        if (++answered == total) io.stop();
      });
      if (!st.is_ok()) {
        ++errors;
        if (++answered == total) io.stop();
      }
    }
  };
  tick();
  io.run();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))]; };
  std::printf("%zu %.3f %.3f %llu\n", lat.size(), pct(0.50), pct(0.99), static_cast<unsigned long long>(errors));
  return 0;
}

int rate(const std::string& url, double per_s, double seconds, int conns, const std::string& prefix) {
  Url u = parse(url);
  asio::io_context io;
  uint64_t total = static_cast<uint64_t>(per_s * seconds);
  std::vector<double> lat;
  lat.reserve(total);
  std::atomic<uint64_t> next{0}, errors{0};
  auto start = Clock::now() + std::chrono::milliseconds(200);
  auto conn = [&]() -> asio::awaitable<void> {
    tcp::resolver r(io);
    beast::tcp_stream s(io);
    co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
    beast::flat_buffer buf;
    asio::steady_timer t(io);
    for (uint64_t i; (i = next++) < total;) {
      auto when = start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_s));
      t.expires_at(when);
      co_await t.async_wait(asio::use_awaitable);
      bhttp::request<bhttp::string_body> req{bhttp::verb::post, u.path, 11};
      req.set(bhttp::field::host, u.host);
      req.set(bhttp::field::content_type, "application/json");
      req.body() = event(prefix, i);
      req.prepare_payload();
      co_await bhttp::async_write(s, req, asio::use_awaitable);
      bhttp::response<bhttp::string_body> res;
      co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
      if (res.result_int() != 202) ++errors;
      lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - when).count());
    }
  };
  for (int i = 0; i < conns; ++i) asio::co_spawn(io, conn(), asio::detached);
  io.run();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))]; };
  std::printf("%zu %.3f %.3f %llu\n", lat.size(), pct(0.50), pct(0.99), static_cast<unsigned long long>(errors.load()));
  return 0;
}

int batch(const std::string& url, uint64_t n, int per_batch, int conns, const std::string& prefix) {
  Url u = parse(url);
  asio::io_context io;
  std::vector<std::string> bodies;
  for (uint64_t i = 0; i < n; i += per_batch) {
    std::string b;
    for (uint64_t j = i; j < std::min<uint64_t>(n, i + per_batch); ++j) b += event(prefix, j) + "\n";
    bodies.push_back(std::move(b));
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> failed{0};
  auto t0 = Clock::now();
  auto conn = [&]() -> asio::awaitable<void> {
    tcp::resolver r(io);
    beast::tcp_stream s(io);
    co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
    beast::flat_buffer buf;
    for (size_t i; (i = next++) < bodies.size();) {
      bhttp::request<bhttp::string_body> req{bhttp::verb::post, u.path, 11};
      req.set(bhttp::field::host, u.host);
      req.set(bhttp::field::content_type, "application/x-ndjson");
      req.body() = bodies[i];
      req.prepare_payload();
      co_await bhttp::async_write(s, req, asio::use_awaitable);
      bhttp::response_parser<bhttp::string_body> p;
      p.body_limit(64 << 20);
      co_await bhttp::async_read(s, buf, p, asio::use_awaitable);
      if (p.get().result_int() != 202) ++failed;
    }
  };
  for (int i = 0; i < conns; ++i) asio::co_spawn(io, conn(), asio::detached);
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%.0f %llu\n", static_cast<double>(n) / secs, static_cast<unsigned long long>(failed.load()));
  return failed ? 1 : 0;
}

int e2e(const std::string& url, const std::string& db_url, double per_s, double seconds, int64_t window_ms,
        const std::string& prefix) {
  Url u = parse(url);
  constexpr int kClients = 10;
  auto db = gantry::store::postgres::Connection::connect(db_url);
  if (!db.is_ok()) {
    std::cerr << db.status().to_string() << "\n";
    return 1;
  }
  // (client, window) -> events accepted; guarded by mu (the sender and the poller share it).
  std::mutex mu;
  std::map<std::pair<std::string, int64_t>, int64_t> accepted;
  std::atomic<bool> sending{true};
  uint64_t total = static_cast<uint64_t>(per_s * seconds);
  std::atomic<uint64_t> errors{0};
  std::thread sender([&] {
    asio::io_context io;
    std::atomic<uint64_t> next{0};
    auto start = Clock::now() + std::chrono::milliseconds(200);
    auto conn = [&]() -> asio::awaitable<void> {
      tcp::resolver r(io);
      beast::tcp_stream s(io);
      co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
      beast::flat_buffer buf;
      asio::steady_timer t(io);
      for (uint64_t i; (i = next++) < total;) {
        t.expires_at(start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_s)));
        co_await t.async_wait(asio::use_awaitable);
        int64_t ts = now_ms();
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, u.path, 11};
        req.set(bhttp::field::host, u.host);
        req.set(bhttp::field::content_type, "application/json");
        req.body() = event(prefix, i, kClients, ts);
        req.prepare_payload();
        co_await bhttp::async_write(s, req, asio::use_awaitable);
        bhttp::response<bhttp::string_body> res;
        co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
        if (res.result_int() != 202) {
          ++errors;
          continue;
        }
        std::lock_guard lk(mu);
        ++accepted[{"bench-" + std::to_string(i % kClients), ts / window_ms * window_ms}];
      }
    };
    for (int i = 0; i < 16; ++i) asio::co_spawn(io, conn(), asio::detached);
    io.run();
    sending = false;
  });

  // Window -> when its row first held all of its accepted events (ms since epoch).
  std::map<std::pair<std::string, int64_t>, int64_t> complete;
  int64_t last_window_end = 0;
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds) + std::chrono::milliseconds(window_ms) + std::chrono::seconds(60);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto rows = (*db)->query("SELECT client_id, window_start_ts, count_total FROM agg_1m");
    int64_t seen_at = now_ms();
    if (!rows.is_ok()) continue;
    bool done_sending = !sending;
    size_t open = 0;
    std::lock_guard lk(mu);
    for (int i = 0; i < rows->size(); ++i) {
      std::pair<std::string, int64_t> key{std::string(rows->get(i, 0)), rows->int64(i, 1)};
      auto a = accepted.find(key);
      if (a != accepted.end() && rows->int64(i, 2) >= a->second && !complete.count(key)) complete[key] = seen_at;
    }
    for (auto& [key, n] : accepted) {
      last_window_end = std::max(last_window_end, key.second + window_ms);
      if (!complete.count(key)) ++open;
    }
    if (done_sending && open == 0) break;
    if (Clock::now() > deadline) break;
  }
  sender.join();
  std::vector<double> delays;
  size_t incomplete = 0;
  for (auto& [key, n] : accepted) {
    auto c = complete.find(key);
    if (c == complete.end()) {
      ++incomplete;
      continue;
    }
    double d = static_cast<double>(c->second - (key.second + window_ms)) / 1000.0;
    delays.insert(delays.end(), static_cast<size_t>(n), d);
  }
  std::sort(delays.begin(), delays.end());
  auto pct = [&](double p) { return delays.empty() ? 0 : delays[std::min(delays.size() - 1, static_cast<size_t>(p * delays.size()))]; };
  std::printf("%zu %.3f %.3f %zu\n", delays.size(), pct(0.50), pct(0.99), incomplete);
  return errors.load() ? 1 : 0;
}

void lua(const std::string& prefix) {
  std::printf(R"(-- POSTs a unique, valid event per request (thread id + counter in the event_id).
local counter = 0
local tid = 0
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
init = function(args) wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json" end
request = function()
  counter = counter + 1
  -- scattered like the random UUIDs probes send; unique (a bijection of counter mod 2^32)
  local id = string.format("%s-%%04x-4000-8000-%%012x", tid, (counter * 2654435761) %% 4294967296)
  local body = '{"event_id":"' .. id .. '","client_id":"bench-' .. (counter %% 1000) .. '","ts_ms":' ..
    string.format("%%d", os.time() * 1000) .. ',"schema_version":"1.0","target":"https://example.com/",' ..
    '"network_context":{"interface_type":"wifi"},"timings":{"dns_ms":1.5,"tcp_ms":2.5,"tls_ms":3.5,' ..
    '"http_ttfb_ms":' .. (20 + counter %% 29) .. '},"throughput_kbps":1000}'
  return wrk.format(nil, nil, nil, body)
end
)", prefix.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv, argv + argc);
  if (a.size() == 5 && a[1] == "raw") return raw(a[2], std::stoull(a[3]), a[4]);
  if ((a.size() == 5 || a.size() == 6) && a[1] == "consume")
    return consume(a[2], std::stoull(a[3]), a[4], a.size() == 6 ? std::stoi(a[5]) : 2000);
  if (a.size() == 6 && a[1] == "rawrate") return rawrate(a[2], std::stod(a[3]), std::stod(a[4]), a[5]);
  if (a.size() == 7 && a[1] == "rate") return rate(a[2], std::stod(a[3]), std::stod(a[4]), std::stoi(a[5]), a[6]);
  if (a.size() == 7 && a[1] == "batch") return batch(a[2], std::stoull(a[3]), std::stoi(a[4]), std::stoi(a[5]), a[6]);
  if (a.size() == 8 && a[1] == "e2e") return e2e(a[2], a[3], std::stod(a[4]), std::stod(a[5]), std::stoll(a[6]), a[7]);
  if (a.size() == 3 && a[1] == "purge") {
    auto js = gantry::bus::nats::JetStream::connect(a[2]);
    if (!js.is_ok()) return std::cerr << js.status().to_string() << "\n", 1;
    gantry::core::Status s = (*js)->purge_stream("telemetry-events");
    if (!s.is_ok() && s.code() != gantry::core::Code::kNotFound) return std::cerr << s.to_string() << "\n", 1;
    return 0;
  }
  if (a.size() == 4 && a[1] == "drained") {
    try {
      return drained(a[2], std::stod(a[3]));
    } catch (const std::exception& e) {  // the aggregator went away mid-drain
      return std::cerr << "drained: " << e.what() << "\n", 1;
    }
  }
  if (a.size() == 3 && a[1] == "lua") {
    lua(a[2]);
    return 0;
  }
  std::cerr << "usage: see the header of bench/telemetry/telemetry_load.cpp\n";
  return 2;
}
