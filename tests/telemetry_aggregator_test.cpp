// gantry ingest + gantry aggregator as processes, a private nats-server and a fresh
// PostgreSQL database: every agg_1m row is compared with statistics this test computes itself
// from the events ingest accepted - after duplicates, a late event, poison messages, and
// repeated kill -9 of the aggregator.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include <boost/json.hpp>

#include "bus/nats/jetstream.h"
#include "core/http/client.h"
#include "private_servers.h"
#include "process.h"
#include "telemetry/aggregator/flusher.h"
#include "telemetry/streams.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;
constexpr int64_t kWindow = 60'000;

struct Proc {
  Proc(std::string role, std::vector<std::string> args) : port(http::testing::free_loopback_port()) {
    std::vector<std::string> argv{kBin, role, role == "aggregator" ? "--metrics-port" : "--port", std::to_string(port),
                                  "--address", "127.0.0.1"};
    argv.insert(argv.end(), args.begin(), args.end());
    proc = std::make_unique<Child>(argv);
    EXPECT_NE(proc->wait_for_output("listening", 20s), "") << role << ": " << proc->out() << proc->err();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
  uint16_t port;
  std::unique_ptr<Child> proc;
};

std::unique_ptr<Proc> aggregator(const PrivateNats& nats, const FreshDatabase& db, std::vector<std::string> extra = {}) {
  // Windows settle for 100 ms (not the default second): short enough for tests that wait on
  // each event, and still through the settle condition of the flush.
  std::vector<std::string> args{"--nats-url",    nats.url(), "--db-url",       db.url, "--flush-delay", "0",
                                "--flush-every", "100ms",    "--flush-settle", "100ms"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Proc>("aggregator", args);
}


struct Ev {
  std::string id, client, target;
  int64_t ts;
  std::optional<double> dns, tcp, tls, ttfb, tput;
  std::optional<std::string> error_stage;
};

std::string json_of(const Ev& e) {
  auto n = [](std::optional<double> v) {
    if (!v) return std::string("null");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", *v);  // exact: the test computes from these doubles
    return std::string(buf);
  };
  std::string s = R"({"event_id":")" + e.id + R"(","client_id":")" + e.client + R"(","ts_ms":)" + std::to_string(e.ts) +
                  R"(,"schema_version":"1.0","target":")" + e.target + R"(","network_context":{"interface_type":"wifi"},)" +
                  R"("timings":{"dns_ms":)" + n(e.dns) + R"(,"tcp_ms":)" + n(e.tcp) + R"(,"tls_ms":)" + n(e.tls) +
                  R"(,"http_ttfb_ms":)" + n(e.ttfb) + R"(},"throughput_kbps":)" + n(e.tput);
  if (e.error_stage) s += R"(,"error_stage":")" + *e.error_stage + "\"";
  return s + "}";
}


// Straight to JetStream as ingest forwards an event, under a message id of the caller's (a new
// id for an event_id stored before gets past JetStream's own dedup, as a resend after its
// window would).
bool publish_event(bus::nats::JetStream& js, const Ev& e, const std::string& msg_id) {
  std::string body = json_of(e);
  body.insert(body.size() - 1, R"(,"recv_ts_ms":1)");
  return js.publish("telemetry.events", body, msg_id).is_ok();
}

int post(const std::string& url, const std::string& body) {
  static http::Client c;
  auto r = c.post(url, body);
  return r.is_ok() ? r->status : 0;
}

// The spec's percentile: sorted values, position p/100 x (n-1), linear interpolation.
std::optional<double> percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  double pos = p / 100 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = static_cast<size_t>(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

using Key = std::tuple<std::string, std::string, int64_t>;

struct Expected {
  int64_t total = 0, success = 0, error = 0;
  std::map<std::string, int64_t> stage_errors;  // dns, tcp, tls, http, throughput
  std::map<std::string, std::optional<double>> stats;  // dns_p50 … throughput_p99
};

std::map<Key, Expected> expected(const std::map<std::string, Ev>& accepted) {
  std::map<Key, std::vector<const Ev*>> by;
  for (auto& [_, e] : accepted) by[{e.client, e.target, e.ts / kWindow * kWindow}].push_back(&e);
  std::map<Key, Expected> out;
  for (auto& [k, evs] : by) {
    Expected x;
    std::map<std::string, std::vector<double>> vals;
    for (const Ev* e : evs) {
      ++x.total;
      if (e->error_stage) {
        ++x.error;
        const std::string& st = *e->error_stage;
        for (const char* stage : {"DNS", "TCP", "TLS", "HTTP", "throughput"}) {
          std::string col = stage;
          for (auto& ch : col) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          if (st == stage) ++x.stage_errors[col];
        }
        continue;
      }
      ++x.success;
      for (auto [name, v] : {std::pair{"dns", e->dns}, std::pair{"tcp", e->tcp}, std::pair{"tls", e->tls},
                             std::pair{"ttfb", e->ttfb}, std::pair{"throughput", e->tput}})
        if (v) vals[name].push_back(*v);
    }
    for (const char* s : {"dns", "tcp", "tls", "ttfb", "throughput"})
      for (int p : {50, 95, 99}) x.stats[std::string(s) + "_p" + std::to_string(p)] = percentile(vals[s], p);
    out[k] = x;
  }
  return out;
}

// Compares every agg_1m row with the expectation; returns a description of the first
// difference, or "" when all match (and no row is missing or extra).
std::string compare(store::postgres::Connection& db, const std::map<Key, Expected>& want) {
  auto r = db.query(
      "SELECT client_id, target, window_start_ts, count_total, count_success, count_error, dns_errors, tcp_errors, "
      "tls_errors, http_errors, throughput_errors, dns_p50, dns_p95, dns_p99, tcp_p50, tcp_p95, tcp_p99, tls_p50, tls_p95, tls_p99, ttfb_p50, ttfb_p95, ttfb_p99, "
      "throughput_p50, throughput_p95, throughput_p99 FROM agg_1m");
  if (!r.is_ok()) return "query: " + r.status().to_string();
  if (static_cast<size_t>(r->size()) != want.size())
    return std::to_string(r->size()) + " rows, want " + std::to_string(want.size());
  const char* names[] = {"dns_p50", "dns_p95", "dns_p99", "tcp_p50", "tcp_p95", "tcp_p99", "tls_p50", "tls_p95", "tls_p99",
                         "ttfb_p50", "ttfb_p95", "ttfb_p99", "throughput_p50", "throughput_p95", "throughput_p99"};
  for (int i = 0; i < r->size(); ++i) {
    Key k{std::string(r->get(i, 0)), std::string(r->get(i, 1)), r->int64(i, 2)};
    auto it = want.find(k);
    if (it == want.end()) return "unexpected row for window " + std::to_string(std::get<2>(k));
    const Expected& x = it->second;
    std::string where = std::get<0>(k) + "/" + std::to_string(std::get<2>(k)) + ": ";
    if (r->int64(i, 3) != x.total) return where + "count_total " + std::to_string(r->int64(i, 3)) + " want " + std::to_string(x.total);
    if (r->int64(i, 4) != x.success) return where + "count_success";
    if (r->int64(i, 5) != x.error) return where + "count_error";
    int col = 6;
    for (const char* stage : {"dns", "tcp", "tls", "http", "throughput"}) {
      auto w = x.stage_errors.count(stage) ? x.stage_errors.at(stage) : 0;
      if (r->int64(i, col) != w)
        return where + stage + "_errors " + std::to_string(r->int64(i, col)) + " want " + std::to_string(w);
      ++col;
    }
    for (int c = 0; c < 15; ++c) {
      std::optional<double> got;
      if (!r->is_null(i, 11 + c)) got = std::stod(std::string(r->get(i, 11 + c)));
      const auto& w = x.stats.at(names[c]);
      if (got.has_value() != w.has_value() || (got && std::fabs(*got - *w) > 1e-9 * std::max(1.0, std::fabs(*w))))
        return where + names[c] + " " + (got ? std::to_string(*got) : "null") + " want " + (w ? std::to_string(*w) : "null");
    }
  }
  return "";
}

// Events for a few windows well in the past (so they are due at once), with varied timings,
// unmeasured phases and some failures.
std::vector<Ev> make_events(int first_id, int n, int64_t base_window, int windows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> ms(0.5, 200);
  std::vector<Ev> out;
  for (int i = 0; i < n; ++i) {
    Ev e;
    e.id = uuid(first_id + i);
    e.client = i % 3 == 0 ? "probe-b" : "probe-a";
    e.target = "https://example.com/";
    e.ts = base_window + static_cast<int64_t>(rng() % windows) * kWindow + static_cast<int64_t>(rng() % kWindow);
    if (rng() % 10 == 0) {
      static const char* kStages[] = {"DNS", "TCP", "TLS", "HTTP", "throughput", "unknown"};
      e.error_stage = kStages[rng() % 6];
    } else {
      e.dns = ms(rng);
      e.tcp = ms(rng);
      if (rng() % 4) e.tls = ms(rng);  // sometimes http://: no TLS phase
      e.ttfb = ms(rng);
      e.tput = ms(rng) * 100;
    }
    out.push_back(e);
  }
  return out;
}

TEST(TelemetryAggregator, RowsEqualExactStatisticsOfUniqueEventsIncludingLateOnes) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  ASSERT_FALSE(db.url.empty());
  Proc ingest("ingest", {"--nats-url", nats.url(), "--rate-limit", "100000", "--rate-limit-burst", "100000"});
  auto agg = aggregator(nats, db);
  int64_t base = (now_ms() - 30 * kWindow) / kWindow * kWindow;
  std::map<std::string, Ev> accepted;
  for (const Ev& e : make_events(1, 300, base, 4, 7)) {
    ASSERT_EQ(post(ingest.url("/events"), json_of(e)), 202);
    accepted[e.id] = e;
  }
  // A client id with the characters COPY's text format escapes (tab, backslash, newline): its
  // row carries it as sent.
  Ev odd = make_events(7000, 1, base, 1, 3)[0];
  odd.client = "probe\t\\odd\n";
  std::string odd_body = json_of(odd);  // json_of writes the id as is: escape it for JSON here
  odd_body.replace(odd_body.find(odd.client), odd.client.size(), "probe\\t\\\\odd\\n");
  ASSERT_EQ(post(ingest.url("/events"), odd_body), 202) << odd_body;
  accepted[odd.id] = odd;
  // Duplicates past JetStream's own dedup: the same event_id under another Nats-Msg-Id.
  auto js = bus::nats::JetStream::connect(nats.url());
  ASSERT_TRUE(js.is_ok());
  for (int i = 1; i <= 20; ++i) {
    std::string body = json_of(accepted[uuid(i)]);
    body.insert(body.size() - 1, R"(,"recv_ts_ms":1)");
    ASSERT_TRUE((*js)->publish("telemetry.events", body, "other-" + std::to_string(i)).is_ok());
  }
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  auto want = expected(accepted);
  std::string diff;
  EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, want)).empty(); }, 20s)) << diff;

  // A late event for a flushed window: the row then covers all of the window's events.
  Ev late = accepted.begin()->second;
  late.id = uuid(5000);
  late.dns = 1e4;
  ASSERT_EQ(post(ingest.url("/events"), json_of(late)), 202);
  accepted[late.id] = late;
  want = expected(accepted);
  EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, want)).empty(); }, 20s)) << diff;
  auto metrics = http::Client().get(agg->url("/metrics"));
  EXPECT_NE(metrics->body.find("events_processed_total{status=\"duplicate\"} 20"), std::string::npos) << metrics->body.substr(0, 2000);
  // Every event here is late (windows half an hour old): 300, the odd client's and the one
  // above, each once; the 20 redelivered duplicates are not counted again.
  EXPECT_NE(metrics->body.find("\nlate_events_total 302\n"), std::string::npos) << metrics->body.substr(0, 3000);

  agg->proc->signal(SIGTERM);
  EXPECT_EQ(agg->proc->wait(20s), 0);
}

// A batch is COPY'd straight into events_seen; one holding events stored before fails that COPY
// (no ON CONFLICT in COPY) and must then go the staging way in the same transaction: its new
// events stored, its old ones counted as duplicates, nothing stored twice, and the lane back on
// the COPY path once a batch comes clean.
TEST(TelemetryAggregator, ABatchHoldingStoredEventsStoresItsNewOnesAndCountsTheRest) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  auto js = bus::nats::JetStream::connect(nats.url());
  ASSERT_TRUE(js.is_ok());
  ASSERT_TRUE((*js)->ensure_stream(telemetry::events_stream()).is_ok());
  auto publish = [&](const Ev& e, const std::string& msg_id) { return publish_event(**js, e, msg_id); };
  int64_t base = (now_ms() - 30 * kWindow) / kWindow * kWindow;
  std::vector<Ev> evs = make_events(30'000, 90, base, 3, 5);
  std::map<std::string, Ev> accepted;
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  std::string diff;
  const std::vector<std::string> one_lane{"--consumers", "1", "--fetch-batch", "1000"};
  {
    // Stored first: events 0..39, each batch clean, so COPY'd.
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(publish(evs[i], "first-" + std::to_string(i)));
      accepted[evs[i].id] = evs[i];
    }
    auto agg = aggregator(nats, db, one_lane);
    EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, expected(accepted))).empty(); }, 20s)) << diff;
    auto m = http::Client().get(agg->url("/metrics"));
    ASSERT_TRUE(m.is_ok());
    EXPECT_GE(metric(m->body, R"(batches_committed_total{path="copy"})"), 1) << m->body;
    EXPECT_EQ(metric(m->body, R"(batches_committed_total{path="staging"})"), 0) << m->body;
    agg->proc->signal(SIGTERM);
    ASSERT_EQ(agg->proc->wait(20s), 0);
  }
  // While no aggregator runs, one backlog: new events 40..69 with 20 of the stored ones
  // between them (resent under other message ids, so JetStream keeps them), fetched as one batch.
  for (int i = 40; i < 70; ++i) {
    ASSERT_TRUE(publish(evs[i], "second-" + std::to_string(i)));
    accepted[evs[i].id] = evs[i];
    if (i % 3 != 0) {
      ASSERT_TRUE(publish(evs[i - 40], "again-" + std::to_string(i)));
    }
  }
  auto agg = aggregator(nats, db, one_lane);
  EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, expected(accepted))).empty(); }, 20s)) << diff;
  auto count = (*pg)->query("SELECT count(*) FROM events_seen");
  ASSERT_TRUE(count.is_ok());
  EXPECT_EQ(count->int64(0, 0), 70);
  std::string m;
  EXPECT_TRUE(eventually([&] {
    auto r = http::Client().get(agg->url("/metrics"));
    m = r.is_ok() ? r->body : "";
    return metric(m, R"(events_processed_total{status="duplicate"})") == 20;
  })) << m;
  EXPECT_EQ(metric(m, R"(events_processed_total{status="success"})"), 30) << m;
  EXPECT_GE(metric(m, R"(batches_committed_total{path="staging"})"), 1) << m;
  double copied = metric(m, R"(batches_committed_total{path="copy"})");
  // Clean batches after it: the first may still go the staging way, then COPY again.
  for (int i = 70; i < 90; ++i) {
    ASSERT_TRUE(publish(evs[i], "third-" + std::to_string(i)));
    accepted[evs[i].id] = evs[i];
    EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, expected(accepted))).empty(); }, 20s)) << diff;
  }
  auto after = http::Client().get(agg->url("/metrics"));
  ASSERT_TRUE(after.is_ok());
  EXPECT_GT(metric(after->body, R"(batches_committed_total{path="copy"})"), copied) << after->body;
  EXPECT_EQ(metric(after->body, R"(events_processed_total{status="duplicate"})"), 20) << after->body;
  agg->proc->signal(SIGTERM);
  EXPECT_EQ(agg->proc->wait(20s), 0);
}

// A due window is recomputed once its events settle (none for flush_settle), and while they
// keep coming (a backlog draining) every flush_max_wait, not at every flush.
TEST(TelemetryAggregator, ADueWindowIsRecomputedWhenItsEventsSettleOrAfterTheLongestWait) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  auto js = bus::nats::JetStream::connect(nats.url());
  ASSERT_TRUE(js.is_ok());
  Proc agg("aggregator", {"--nats-url", nats.url(), "--db-url", db.url, "--flush-delay", "0", "--flush-every", "50ms",
                          "--flush-settle", "1s", "--flush-max-wait", "3s"});
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  int64_t base = (now_ms() - 30 * kWindow) / kWindow * kWindow;  // long due
  auto count_of = [&](const std::string& client) -> int64_t {
    auto r = (*pg)->query("SELECT count_total FROM agg_1m WHERE client_id = $1", {client});
    return r.is_ok() && r->size() == 1 ? r->int64(0, 0) : 0;
  };
  using Clock = std::chrono::steady_clock;
  auto secs_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };

  // One event: its row waits for the settle time, then comes.
  Ev one = make_events(40'000, 1, base, 1, 1)[0];
  one.client = "settles";
  auto t0 = Clock::now();
  ASSERT_TRUE(publish_event(**js, one, "settles"));
  ASSERT_TRUE(eventually([&] { return count_of("settles") == 1; }, 10s));
  double settled = secs_since(t0);
  EXPECT_GE(settled, 0.95) << "recomputed before the window settled";
  EXPECT_LT(settled, 4.0);

  // An event every 100 ms for 6 s: the window never settles, so it is recomputed after the
  // longest wait (3 s from its first mark) while events still come, and not before.
  std::vector<Ev> stream = make_events(41'000, 60, base, 1, 2);
  double first_seen = -1;
  t0 = Clock::now();
  for (size_t i = 0; i < stream.size(); ++i) {
    stream[i].client = "busy";
    ASSERT_TRUE(publish_event(**js, stream[i], "busy-" + std::to_string(i)));
    if (first_seen < 0 && count_of("busy") > 0) first_seen = secs_since(t0);
    std::this_thread::sleep_for(100ms);
  }
  double publishing = secs_since(t0);
  EXPECT_GE(first_seen, 2.9) << "a window still getting events was recomputed before flush_max_wait";
  EXPECT_GT(first_seen, 0) << "not recomputed while its events kept coming (" << publishing << " s)";
  EXPECT_TRUE(eventually([&] { return count_of("busy") == 60; }, 10s)) << count_of("busy");
  agg.proc->signal(SIGTERM);
  EXPECT_EQ(agg.proc->wait(20s), 0);
}

TEST(TelemetryAggregator, PoisonMessagesLandInTheDlqAfterTheLastDelivery) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  auto agg = aggregator(nats, db, {"--max-deliver", "3"});
  auto js = bus::nats::JetStream::connect(nats.url());
  ASSERT_TRUE(js.is_ok());
  ASSERT_TRUE((*js)->publish("telemetry.events", "this is not an event", "poison-1").is_ok());
  auto dlq = (*js)->pull_consumer("telemetry-events-dlq", "telemetry.dlq", {.durable = "dlq-test"});
  ASSERT_TRUE(dlq.is_ok()) << dlq.status().to_string();
  std::vector<bus::nats::Message> got;
  EXPECT_TRUE(eventually([&] {
    auto b = (*dlq)->fetch(10, 200ms);
    if (b.is_ok())
      for (auto& m : *b) got.push_back(std::move(m));
    return !got.empty();
  }, 20s));
  ASSERT_EQ(got.size(), 1u);
  auto v = boost::json::parse(got[0].data());
  EXPECT_EQ(v.at("original_data").as_string(), "this is not an event");
  EXPECT_NE(v.at("reason").as_string(), "");
  EXPECT_TRUE(v.at("timestamp").is_string());
  // Counted once the DLQ acknowledged it, a moment after a reader can see it there.
  std::string metrics;
  EXPECT_TRUE(eventually([&] {
    metrics = http::Client().get(agg->url("/metrics")).value_or(http::ClientResponse{}).body;
    return metrics.find("dlq_messages_total 1") != std::string::npos;
  }, 5s)) << metrics;
  // Delivered three times, an error once.
  EXPECT_NE(metrics.find("events_processed_total{status=\"error\"} 1\n"), std::string::npos) << metrics;
}

TEST(TelemetryAggregator, DiagnosisLabelsAWindowAgainstItsBaseline) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  Proc ingest("ingest", {"--nats-url", nats.url(), "--rate-limit", "100000", "--rate-limit-burst", "100000"});
  auto agg = aggregator(nats, db);
  int64_t base = (now_ms() - 60 * kWindow) / kWindow * kWindow;
  int id = 9000;
  // Four ordinary windows, then one where DNS dominates.
  for (int w = 0; w < 5; ++w) {
    // Six successes in each baseline window, eight in the one judged.
    for (int i = 0; i < (w < 4 ? 6 : 8); ++i) {
      Ev e;
      e.id = uuid(id++);
      e.client = "probe-d";
      e.target = "https://example.org/";
      e.ts = base + w * kWindow + i * 1000;
      double jitter = i * 0.5 + (w % 2) * 0.3;  // a steady path: windows alike
      e.dns = w < 4 ? 10 + jitter : 400 + jitter;
      e.tcp = 10 + jitter;
      e.tls = 10 + jitter;
      e.ttfb = 50 + jitter;
      e.tput = 1000 + jitter;
      ASSERT_EQ(post(ingest.url("/events"), json_of(e)), 202);
    }
    // Windows flush in order, so the baseline exists when the next is labelled.
    auto pg = store::postgres::Connection::connect(db.url);
    ASSERT_TRUE(eventually([&] {
      auto r = (*pg)->query("SELECT count(*) FROM agg_1m WHERE client_id = 'probe-d'");
      return r.is_ok() && r->int64(0, 0) == w + 1;
    }, 20s)) << "window " << w << "\n" << agg->proc->out().substr(0, 4000);
  }
  auto pg = store::postgres::Connection::connect(db.url);
  auto r = (*pg)->query("SELECT window_start_ts, diagnosis_label FROM agg_1m WHERE client_id = 'probe-d' ORDER BY 1");
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 5);
  for (int w = 0; w < 4; ++w) EXPECT_TRUE(r->is_null(w, 1)) << "window " << w << ": too little history or nothing unusual";
  EXPECT_EQ(r->get(4, 1), "dns-bound");
  auto alerts = (*pg)->query("SELECT label FROM alerts WHERE client_id = 'probe-d'");
  ASSERT_TRUE(alerts.is_ok());
  ASSERT_EQ(alerts->size(), 1);
  EXPECT_EQ(alerts->get(0, 0), "dns-bound");

  // `gantry diagnoser` re-labels a range in batch: wipe the labels, run it, they are back.
  ASSERT_TRUE((*pg)->exec("UPDATE agg_1m SET diagnosis_label = NULL").is_ok());
  Child job({kBin, "diagnoser", "--db-url", db.url, "--from", std::to_string(base), "--to", std::to_string(base + 5 * kWindow),
             "--client-id", "probe-d"});
  EXPECT_EQ(job.wait(30s), 0) << job.out() << job.err();
  auto again = (*pg)->query("SELECT diagnosis_label FROM agg_1m WHERE client_id = 'probe-d' ORDER BY window_start_ts");
  ASSERT_TRUE(again.is_ok());
  ASSERT_EQ(again->size(), 5);
  EXPECT_TRUE(again->is_null(3, 0));
  EXPECT_EQ(again->get(4, 0), "dns-bound");
  // --diagnosis-min-success covers the baseline too: at 7, the judged window (8) qualifies but
  // its baseline windows (6 each) do not, so there is no baseline and no label. (The baseline
  // filter used to be a fixed 5.)
  ASSERT_TRUE((*pg)->exec("UPDATE agg_1m SET diagnosis_label = NULL").is_ok());
  Child strict({kBin, "diagnoser", "--db-url", db.url, "--from", std::to_string(base), "--to",
                std::to_string(base + 5 * kWindow), "--client-id", "probe-d", "--diagnosis-min-success", "7"});
  EXPECT_EQ(strict.wait(30s), 0) << strict.out() << strict.err();
  auto none = (*pg)->query("SELECT count(*) FROM agg_1m WHERE client_id = 'probe-d' AND diagnosis_label IS NOT NULL");
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->int64(0, 0), 0);
  Child bad({kBin, "diagnoser", "--db-url", db.url, "--from", "yesterday", "--to", "2026-11-22T10:00:00Z"});
  EXPECT_EQ(bad.wait(30s), 2);
  EXPECT_NE(bad.err().find("diagnoser.from"), std::string::npos) << bad.err();
}

TEST(TelemetryAggregator, MigrateTelemetryCreatesTheSchemaOnce) {
  FreshDatabase db("telemetry");
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  // Before it: the diagnoser says what to run (it used to pass on "relation agg_1m does not
  // exist") and creates nothing, not even the version table.
  const std::vector<std::string> diagnose = {kBin, "diagnoser", "--db-url", db.url, "--from", "0", "--to", "60000"};
  Child early(diagnose);
  EXPECT_EQ(early.wait(30s), 1);
  std::string said = early.out() + early.err();
  EXPECT_NE(said.find("this database has no Telemetry schema: run `gantry migrate telemetry`"), std::string::npos) << said;
  EXPECT_LT(said.find("job started"), said.find("job failed")) << said;
  auto tables = (*pg)->query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
  ASSERT_TRUE(tables.is_ok());
  EXPECT_EQ(tables->int64(0, 0), 0);
  for (int run = 0; run < 2; ++run) {
    Child job({kBin, "migrate", "telemetry", "--db-url", db.url});
    EXPECT_EQ(job.wait(30s), 0) << job.out() << job.err();
  }
  Child after(diagnose);
  EXPECT_EQ(after.wait(30s), 0) << after.out() << after.err();
  EXPECT_NE((after.out() + after.err()).find("job finished"), std::string::npos) << after.out() << after.err();
  auto v = (*pg)->query("SELECT max(version), count(*) FROM schema_migrations");
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->int64(0, 0), 4);
  EXPECT_EQ(v->int64(0, 1), 4);
  EXPECT_TRUE((*pg)->query("SELECT count(*) FROM agg_1m").is_ok());
  // Retention's index is a block range index (nearly free per insert), not a B-tree.
  auto am = (*pg)->query(
      "SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname = 'events_seen_created'");
  ASSERT_TRUE(am.is_ok());
  ASSERT_EQ(am->size(), 1);
  EXPECT_EQ(am->get(0, 0), "brin");
  EXPECT_TRUE((*pg)->query("SELECT marked_at, first_marked_at FROM agg_dirty").is_ok());
  EXPECT_TRUE((*pg)->query("SELECT clients, targets, windows, marked_at FROM agg_marks").is_ok());
  Child unknown({kBin, "migrate", "fleet", "--db-url", db.url});
  EXPECT_EQ(unknown.wait(30s), 2);
}

// A batch marks its windows in one row of agg_marks; the flusher moves the committed rows into
// agg_dirty (one mark per window, its first and latest time kept) and leaves a batch still in
// its transaction for the next move.
TEST(TelemetryAggregator, MovingMarksTakesCommittedBatchesOnceAndLeavesRunningOnes) {
  FreshDatabase db("telemetry");
  auto flusher = store::postgres::Connection::connect(db.url);
  auto lane = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(flusher.is_ok() && lane.is_ok());
  ASSERT_TRUE((*flusher)->migrate(telemetry::aggregator::kMigrations).is_ok());
  auto mark = [&](const std::string& clients, const std::string& windows, const std::string& at) {
    return (*lane)->query("INSERT INTO agg_marks (clients, targets, windows, marked_at) VALUES ($1::text[], "
                          "array_fill('https://a.example'::text, ARRAY[cardinality($1::text[])]), $2::bigint[], $3)",
                          {clients, windows, at});
  };
  auto move = [&] {
    auto n = telemetry::aggregator::move_marks(**flusher);
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    return n.is_ok() ? *n : -1;
  };
  auto dirty = [&] {
    auto r = (*flusher)->query(
        "SELECT coalesce(string_agg(client_id || '@' || window_start_ts || ' ' || to_char(first_marked_at AT TIME ZONE 'UTC', 'MI:SS') || "
        "'-' || to_char(marked_at AT TIME ZONE 'UTC', 'MI:SS'), ',' ORDER BY client_id, window_start_ts), '') FROM agg_dirty");
    return r.is_ok() ? std::string(r->get(0, 0)) : std::string("error");
  };

  ASSERT_TRUE(mark("{a,b}", "{0,0}", "2026-12-04 10:00:01+00").is_ok());
  ASSERT_TRUE(mark("{a}", "{60000}", "2026-12-04 10:00:02+00").is_ok());
  ASSERT_TRUE(mark("{a}", "{0}", "2026-12-04 10:00:03+00").is_ok());  // a@0 again, later
  ASSERT_TRUE((*lane)->exec("BEGIN").is_ok());
  ASSERT_TRUE(mark("{c}", "{0}", "2026-12-04 10:00:04+00").is_ok());  // not committed yet
  EXPECT_EQ(move(), 3);
  EXPECT_EQ(dirty(), "a@0 00:01-00:03,a@60000 00:02-00:02,b@0 00:01-00:01");
  EXPECT_EQ(move(), 0);  // moved once
  ASSERT_TRUE((*lane)->exec("COMMIT").is_ok());
  ASSERT_TRUE(mark("{b}", "{0}", "2026-12-04 10:00:05+00").is_ok());
  EXPECT_EQ(move(), 2);
  EXPECT_EQ(dirty(), "a@0 00:01-00:03,a@60000 00:02-00:02,b@0 00:01-00:05,c@0 00:04-00:04");
  auto left = (*flusher)->query("SELECT count(*) FROM agg_marks");
  ASSERT_TRUE(left.is_ok());
  EXPECT_EQ(left->int64(0, 0), 0);
}

TEST(TelemetryAggregator, RetentionDeletesOldWindows) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  Proc ingest("ingest", {"--nats-url", nats.url(), "--rate-limit", "100000", "--rate-limit-burst", "100000"});
  auto agg = aggregator(nats, db);  // default retention: 90 days
  int64_t now = now_ms();
  for (int i = 0; i < 5; ++i) {
    Ev old = make_events(30'000 + i, 1, (now - 40 * kWindow) / kWindow * kWindow, 1, 3 + i)[0];
    Ev recent = make_events(31'000 + i, 1, (now - 3 * kWindow) / kWindow * kWindow, 1, 3 + i)[0];
    old.client = recent.client = "probe-r";
    ASSERT_EQ(post(ingest.url("/events"), json_of(old)), 202);
    ASSERT_EQ(post(ingest.url("/events"), json_of(recent)), 202);
  }
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  auto rows = [&](const std::string& table, const std::string& where) {
    auto r = (*pg)->query("SELECT count(*) FROM " + table + " WHERE " + where);
    return r.is_ok() ? r->int64(0, 0) : -1;
  };
  auto count = [&](const std::string& where) { return rows("agg_1m", where); };
  auto events = [&](const std::string& where) { return rows("events_seen", where); };
  std::string cutoff = std::to_string(now - 10 * kWindow);
  ASSERT_TRUE(eventually([&] { return count("true") == 2; }, 20s));  // both windows, old and recent
  agg->proc->signal(SIGTERM);
  ASSERT_EQ(agg->proc->wait(20s), 0);
  agg = aggregator(nats, db, {"--agg-retention", "10m", "--retention-every", "1s"});
  EXPECT_TRUE(eventually([&] { return count("window_start_ts < " + cutoff) == 0; }, 20s));
  EXPECT_EQ(count("window_start_ts >= " + cutoff), 1);
  EXPECT_EQ(events("true"), 10);  // events are kept for their own, longer, retention

  // Events older than events_retention (by when they were stored) go; the others stay.
  agg->proc->signal(SIGTERM);
  ASSERT_EQ(agg->proc->wait(20s), 0);
  ASSERT_TRUE((*pg)->query("UPDATE events_seen SET created_at = now() - interval '2 days' WHERE ts_ms < " + cutoff).is_ok());
  agg = aggregator(nats, db, {"--events-retention", "24h", "--retention-every", "1s"});
  EXPECT_TRUE(eventually([&] { return events("ts_ms < " + cutoff) == 0; }, 20s));
  EXPECT_EQ(events("ts_ms >= " + cutoff), 5);
}

TEST(TelemetryAggregator, KilledRepeatedlyMidStreamRowsStillEqualTheUniqueAcceptedEvents) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  Proc ingest("ingest", {"--nats-url", nats.url(), "--rate-limit", "100000", "--rate-limit-burst", "100000"});
  // A short ack_wait: what a killed aggregator held is redelivered soon.
  auto agg = aggregator(nats, db, {"--fetch-batch", "50", "--ack-wait", "2s"});
  int64_t base = (now_ms() - 20 * kWindow) / kWindow * kWindow;
  std::vector<Ev> evs = make_events(20'000, 3000, base, 6, 11);
  std::map<std::string, Ev> accepted;
  std::mutex mu;
  std::atomic<bool> done{false};
  std::thread poster([&] {
    for (size_t i = 0; i < evs.size(); ++i) {
      // Some events are sent twice, as a probe retrying after a lost answer would.
      for (int copy = 0; copy < (i % 7 == 0 ? 2 : 1); ++copy) {
        if (post(ingest.url("/events"), json_of(evs[i])) == 202) {
          std::lock_guard lk(mu);
          accepted[evs[i].id] = evs[i];
        }
      }
    }
    done = true;
  });
  for (int kill = 0; kill < 4; ++kill) {
    std::this_thread::sleep_for(400ms);
    agg->proc->signal(SIGKILL);
    agg->proc->wait(5s);
    agg = aggregator(nats, db, {"--fetch-batch", "50", "--ack-wait", "2s"});
  }
  poster.join();
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  std::map<Key, Expected> want;
  {
    std::lock_guard lk(mu);
    ASSERT_GT(accepted.size(), 2000u);
    want = expected(accepted);
  }
  std::string diff;
  EXPECT_TRUE(eventually([&] { return (diff = compare(**pg, want)).empty(); }, 60s)) << diff;
  agg->proc->signal(SIGTERM);
  EXPECT_EQ(agg->proc->wait(20s), 0);
}

// SIGTERM while a backlog drains: each lane holds a batch being committed and the next one
// already fetched and parsed. Both are committed and acked before the process exits: nothing
// is left delivered and unacknowledged (it would wait out ack_wait for its redelivery), and
// every message that left the stream is a row of events_seen.
TEST(TelemetryAggregator, ATermMidBacklogCommitsAndAcksEveryBatchItHolds) {
  PrivateNats nats;
  FreshDatabase db("telemetry");
  auto js = bus::nats::JetStream::connect(nats.url());
  ASSERT_TRUE(js.is_ok()) << js.status().to_string();
  ASSERT_TRUE((*js)->ensure_stream(telemetry::events_stream()).is_ok());
  int64_t base = (now_ms() - 5 * kWindow) / kWindow * kWindow;
  const int n = 30'000;
  std::vector<Ev> evs = make_events(50'000, n, base, 4, 13);
  for (const Ev& e : evs) ASSERT_TRUE(publish_event(**js, e, e.id));
  auto agg = aggregator(nats, db, {"--fetch-batch", "100", "--max-ack-pending", "10000", "--ack-wait", "60s"});
  auto processed = [&] {
    std::string m = http::Client().get(agg->url("/metrics")).value_or(http::ClientResponse{}).body;
    return metric(m, R"(events_processed_total{status="success"})");
  };
  ASSERT_TRUE(eventually([&] { return processed() > 0; }, 20s));
  agg->proc->signal(SIGTERM);
  ASSERT_EQ(agg->proc->wait(20s), 0) << agg->proc->err();
  auto q = (*js)->consumer_state(std::string(telemetry::kEventsStream), "aggregator");
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->ack_pending, 0u) << "messages left delivered and unacknowledged";
  auto pg = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(pg.is_ok());
  auto rows = (*pg)->query("SELECT count(*) FROM events_seen");
  ASSERT_TRUE(rows.is_ok());
  EXPECT_LT(rows->int64(0, 0), n) << "the stop came after the backlog drained: this test proves nothing";
  EXPECT_EQ(static_cast<uint64_t>(rows->int64(0, 0)) + q->pending, static_cast<uint64_t>(n))
      << "every message is either stored or still in the stream";
}

// The servers die instead: PostgreSQL under the aggregator, then NATS under both. Ingest
// answers 503 while NATS is down, and every event it answered 202 ends up in agg_1m. The
// poster resends on 503 as the probe does (a 503 can come for an event JetStream stored just
// before the connection dropped: the resend is then the duplicate JetStream or the aggregator
// drops), so the rows must equal exactly the events posted.
TEST(TelemetryAggregator, KilledPostgresAndNatsMidStreamLoseNoAcceptedEvent) {
  PrivateNats nats;
  PrivatePostgres pgserver;
  Proc ingest("ingest", {"--nats-url", nats.url(), "--rate-limit", "100000", "--rate-limit-burst", "100000",
                         "--access-log=false"});
  std::vector<std::string> args{"--nats-url", nats.url(), "--db-url", pgserver.url(), "--flush-delay", "0",
                                "--flush-every", "100ms", "--fetch-batch", "50", "--ack-wait", "2s", "--access-log=false"};
  Proc agg("aggregator", args);
  int64_t base = (now_ms() - 20 * kWindow) / kWindow * kWindow;
  std::vector<Ev> evs = make_events(40'000, 100'000, base, 6, 12);
  std::map<std::string, Ev> accepted;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<int> unavailable{0}, other{0};
  std::thread poster([&] {
    for (size_t i = 0; i < evs.size() && !stop; ++i) {
      for (int attempt = 0; attempt < 600; ++attempt) {
        int st = post(ingest.url("/events"), json_of(evs[i]));
        if (st == 202) {
          std::lock_guard lk(mu);
          accepted[evs[i].id] = evs[i];
          break;
        }
        (st == 503 ? unavailable : other)++;
        std::this_thread::sleep_for(50ms);
      }
    }
  });
  std::this_thread::sleep_for(500ms);
  auto db_gauge = [&] {
    auto r = http::Client().get(agg.url("/metrics"));
    if (!r.is_ok()) return -1;
    auto at = r->body.find("\ndb_connections_active ");
    return at == std::string::npos ? -1 : std::stoi(r->body.substr(at + 23));
  };
  EXPECT_GT(db_gauge(), 0);
  auto killed = std::chrono::steady_clock::now();
  pgserver.kill();
  // The aggregator's batches fail and are redelivered meanwhile; the gauge says so.
  EXPECT_TRUE(eventually([&] { return db_gauge() == 0; }, 1400ms)) << db_gauge();
  std::this_thread::sleep_until(killed + 1500ms);
  pgserver.start();
  std::this_thread::sleep_for(700ms);
  nats.kill();
  std::this_thread::sleep_for(1000ms);
  nats.start();
  std::this_thread::sleep_for(1000ms);
  stop = true;
  poster.join();
  EXPECT_GT(unavailable.load(), 0);  // NATS was down: 503, not 202
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(agg.proc->wait(0ms), -1) << "the aggregator exited: " << agg.proc->err();
  std::string log = agg.proc->out() + agg.proc->err();
  EXPECT_TRUE(log.find("not stored") != std::string::npos || log.find("flush failed") != std::string::npos)
      << "the aggregator never saw PostgreSQL go: " << log;

  std::map<Key, Expected> want;
  {
    std::lock_guard lk(mu);
    ASSERT_GT(accepted.size(), 500u);
    want = expected(accepted);
  }
  std::string diff;
  EXPECT_TRUE(eventually(
      [&] {
        auto pg = store::postgres::Connection::connect(pgserver.url());
        return pg.is_ok() && (diff = compare(**pg, want)).empty();
      },
      60s))
      << diff;
  EXPECT_GT(db_gauge(), 0) << "connections back, the gauge too";
  // Everything consumed and acked: the queue gauges (refreshed every second) say so.
  std::string metrics;
  EXPECT_TRUE(eventually([&] {
    metrics = http::Client().get(agg.url("/metrics")).value_or(http::ClientResponse{}).body;
    return metrics.find("\nqueue_lag_messages 0\n") != std::string::npos &&
           metrics.find("\nqueue_ack_pending_messages 0\n") != std::string::npos;
  }, 10s)) << metrics;
  agg.proc->signal(SIGTERM);
  EXPECT_EQ(agg.proc->wait(20s), 0);
}

}  // namespace
}  // namespace gantry::testing
