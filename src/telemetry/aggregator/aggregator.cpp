// `gantry aggregator`: JetStream events -> per-minute statistics in PostgreSQL, exactly once.
//
// How exactly-once holds across a kill -9 at any moment:
//   1. A fetched batch is written in one transaction: COPY'd into events_seen (its
//      measurements included), and its windows in one row of agg_marks. A batch holding an
//      event stored before fails that COPY on the event_id key; it is then rolled back to a
//      savepoint and written through a staging table with INSERT … ON CONFLICT DO NOTHING,
//      which skips the stored ones. Only after the commit are the messages acked. A crash
//      before the commit redelivers them; after it, the redelivered copies conflict and are
//      acked as duplicates.
//   2. A window's agg_1m row is a pure function of its events in events_seen, recomputed in SQL
//      (percentile_cont is the spec's interpolation at p/100 x (n-1)) by the flusher, which
//      moves committed marks into agg_dirty and deletes a window's mark in the transaction that
//      recomputes it. A late event marks its window dirty again, so the stored row always
//      covers all of the window's events. A due window still getting events (a backlog
//      draining) is recomputed once they settle, or every flush_max_wait, not at every flush.
// Several aggregators may share the consumer; their flushers take turns moving marks and take
// dirty windows FOR UPDATE SKIP LOCKED.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <tuple>

#include "bus/nats/jetstream.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "store/postgres/pg.h"
#include "telemetry/aggregator/copy_line.h"
#include "telemetry/aggregator/flusher.h"
#include "telemetry/aggregator/schema.h"
#include "telemetry/db.h"
#include "telemetry/event.h"
#include "telemetry/roles.h"
#include "telemetry/streams.h"

namespace gantry::telemetry::aggregator {

namespace {

namespace http = core::http;
namespace nats = bus::nats;
namespace pg = store::postgres;
using core::Status;
using Ms = std::chrono::milliseconds;

const core::log::Logger aggregator_log("aggregator");

struct Settings {
  std::string address = "0.0.0.0";
  uint16_t port = 9090;
  std::string nats_url = "nats://localhost:4222";
  DbSettings db;
  FlushSettings flush;  // window_size, flush_*, diagnosis thresholds, retention
  Ms late_tolerance{120'000};
  int max_ack_pending = 1000;
  int max_deliver = 5;
  Ms ack_wait{30'000};
  int fetch_batch = 500;
  int consumers = 2;
  http::ServerOptions http;
};


class Aggregator final : public core::runtime::HttpRole {
 public:
  explicit Aggregator(Settings s)
      : HttpRole("aggregator", s.http),
        st_(std::move(s)),
        reg_(core::metrics::Registry::global()),
        processed_(reg_.counter("events_processed_total", "events by outcome", {"status"})),
        success_(processed_.with({"success"})),
        duplicate_(processed_.with({"duplicate"})),
        error_(processed_.with({"error"})),
        delay_(reg_.histogram("processing_delay_seconds", "from the probe's ts_ms to the event's commit", {},
                              {0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300})
                   .with({})),
        batches_(reg_.counter("batches_committed_total",
                              "batches committed, by path: copy (straight into events_seen) or staging (the batch held "
                              "events stored before)",
                              {"path"})),
        copied_batches_(batches_.with({"copy"})),
        staged_batches_(batches_.with({"staging"})),
        late_(reg_.counter("late_events_total", "events later than late_tolerance (still applied)").with({})),
        dlq_(reg_.counter("dlq_messages_total", "messages moved to the DLQ").with({})),
        lag_(reg_.gauge("queue_lag_messages", "messages in the stream not yet delivered to the aggregator consumer").with({})),
        ack_pending_(reg_.gauge("queue_ack_pending_messages", "messages delivered and not yet acked (all aggregators)").with({})) {}

  bool ready() const override { return running_.load(); }

 protected:
  Status on_start() override {
    std::string url = st_.db.connection_string();
    GANTRY_ASSIGN(mdb, pg::Connection::connect(url));
    GANTRY_RETURN_IF_ERROR(mdb->migrate(kMigrations).within("migrating the telemetry schema"));
    flusher_ = std::make_unique<Flusher>(st_.flush, std::move(mdb), [this] { refresh_queue_gauges(); });

    GANTRY_ASSIGN(js, nats::JetStream::connect(st_.nats_url, {.name = "gantry-aggregator"}));
    js_ = std::move(js);
    GANTRY_RETURN_IF_ERROR(js_->ensure_stream(events_stream()));
    GANTRY_RETURN_IF_ERROR(js_->ensure_stream(dlq_stream()));
    // Several lanes, each fetching from the same durable consumer into its own PostgreSQL
    // connection: one backend inserting is the bottleneck. Each lane has its own NATS
    // connection too: on a shared one the lanes' fetches and acks contended for its lock (a
    // fifth more events/s with one each). Lanes need no coordination: a window is recomputed
    // from all of its committed events, whichever lane wrote them.
    for (int i = 0; i < st_.consumers; ++i) {
      auto lane = std::make_unique<Lane>();
      GANTRY_ASSIGN(db, pg::Connection::connect(url));
      GANTRY_ASSIGN(ljs, nats::JetStream::connect(st_.nats_url, {.name = "gantry-aggregator"}));
      lane->js = std::move(ljs);
      GANTRY_ASSIGN(c, lane->js->pull_consumer(std::string(kEventsStream), std::string(kEventsSubject),
                                          {.durable = "aggregator",
                                           .max_deliver = st_.max_deliver,
                                           .ack_wait = st_.ack_wait,
                                           .max_ack_pending = st_.max_ack_pending}));
      lane->db = std::move(db);
      lane->consumer = std::move(c);
      lanes_.push_back(std::move(lane));
    }
    // Connections known to be up: each lane's and the flusher's, as of their last call.
    reg_.gauge_callback("db_connections_active", "open PostgreSQL connections (as of each one's last call)", [this] {
      double n = flusher_ && flusher_->up() ? 1 : 0;
      for (auto& l : lanes_) n += l->up ? 1 : 0;
      return n;
    });
    refresh_queue_gauges();  // true from the first scrape, not zero until the first refresh
    auto& reg = reg_;
    reg.gauge_callback("nats_reconnects_total", "NATS reconnections", [this] {
      double n = js_ ? static_cast<double>(js_->reconnects()) : 0.0;
      for (auto& l : lanes_) n += static_cast<double>(l->js->reconnects());
      return n;
    });
    running_ = true;
    for (auto& lane : lanes_) {
      lane->writer = std::thread([this, l = lane.get()] { write_loop(*l); });
      lane->fetcher = std::thread([this, l = lane.get()] { fetch_loop(*l); });
    }
    flusher_->start();
    aggregator_log.info("aggregator ready", {{"nats", st_.nats_url}, {"window_ms", static_cast<int64_t>(st_.flush.window_size.count())}});
    return {};
  }

  // Drain: stop fetching, finish the batch in hand (commit, ack), then flush every dirty window.
  void before_drain() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& lane : lanes_) {
      if (lane->fetcher.joinable()) lane->fetcher.join();
      if (lane->writer.joinable()) lane->writer.join();
    }
    if (flusher_) aggregator_log.info("flushed at shutdown", {{"windows", static_cast<int64_t>(flusher_->stop_and_flush_all())}});
    running_ = false;
  }

  void on_stop(Ms) override {
    reg_.remove_callback("nats_reconnects_total");
    reg_.remove_callback("db_connections_active");
    lanes_.clear();
    js_.reset();
    flusher_.reset();
  }

 private:
  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  // A fetched batch, parsed: its messages, the COPY line of each valid one and the windows
  // they fall in. Its poison messages were dealt with when it was prepared.
  struct Prepared {
    std::vector<nats::Message> msgs;
    std::vector<size_t> valid;       // indexes into msgs
    std::vector<std::string> lines;  // one per valid message (COPY text format)
    std::vector<int64_t> event_ts;
    // (client, target, start) and how many of the batch's events fall in each.
    std::map<std::tuple<std::string, std::string, int64_t>, int64_t> windows;
    int64_t late_before = 0;  // a window starting earlier is late
  };

  // A lane is two threads around a slot for one batch: the fetcher pulls and parses the next
  // batch while the writer commits the one before. One thread doing both in turn left a tenth
  // of the machine idle during a drain (each waited on the other half).
  struct Lane {
    std::unique_ptr<pg::Connection> db;
    std::unique_ptr<nats::JetStream> js;  // declared before the consumer: outlives it
    std::unique_ptr<nats::PullConsumer> consumer;
    std::thread fetcher, writer;
    std::atomic<bool> up{true};
    uint64_t staging_generation = 0;  // the session whose staging table exists
    bool direct = true;               // the next batch is COPY'd straight into events_seen
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Prepared> slot;  // prepared, not yet taken by the writer
    bool fetcher_done = false;     // nothing will come into the slot again
  };

  // Fetches and prepares batches until stopping. The batch in hand then still goes to the
  // writer, which commits it before it ends.
  void fetch_loop(Lane& lane) {
    while (!stopping()) {
      auto batch = lane.consumer->fetch(st_.fetch_batch, Ms(500));
      if (!batch.is_ok()) {
        if (batch.status().code() != core::Code::kDeadlineExceeded) {
          aggregator_log.warn("fetch failed", {{"error", batch.status().to_string()}});
          std::unique_lock lk(mu_);
          cv_.wait_for(lk, Ms(500), [&] { return stopping_; });
        }
        continue;
      }
      if (batch->empty()) continue;
      Prepared p = prepare(std::move(*batch));
      if (p.valid.empty()) continue;
      std::unique_lock lk(lane.mu);
      lane.cv.wait(lk, [&] { return !lane.slot; });  // the writer empties it until the fetcher is done
      lane.slot = std::move(p);
      lane.cv.notify_all();
    }
    std::lock_guard lk(lane.mu);
    lane.fetcher_done = true;
    lane.cv.notify_all();
  }

  // Commits each prepared batch and acks it; ends when the fetcher has and the slot is empty.
  void write_loop(Lane& lane) {
    for (;;) {
      Prepared p;
      {
        std::unique_lock lk(lane.mu);
        lane.cv.wait(lk, [&] { return lane.slot || lane.fetcher_done; });
        if (!lane.slot) return;
        p = std::move(*lane.slot);
        lane.slot.reset();
        lane.cv.notify_all();
      }
      Status s = commit(lane, p);
      lane.up = lane.db->healthy();
      if (!s.is_ok()) {
        // Nothing acked: JetStream redelivers after ack_wait; nak now to retry sooner.
        aggregator_log.error("batch not stored; it will be redelivered",
                 {{"error", s.to_string()}, {"messages", static_cast<int64_t>(p.valid.size())}});
        for (size_t i : p.valid) (void)p.msgs[i].nak(Ms(1000));
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, Ms(500), [&] { return stopping_; });
      }
    }
  }

  // A fetched batch into COPY lines. Events were validated by ingest; a message that does not
  // parse now is poison (see poison()).
  Prepared prepare(std::vector<nats::Message> batch) {
    Prepared p;
    p.msgs = std::move(batch);
    int64_t now = core::unix_ms(std::chrono::system_clock::now());
    int64_t wsize = st_.flush.window_size.count();
    p.late_before = now - wsize - st_.late_tolerance.count();
    p.valid.reserve(p.msgs.size());
    p.lines.reserve(p.msgs.size());
    p.event_ts.reserve(p.msgs.size());
    for (size_t i = 0; i < p.msgs.size(); ++i) {
      auto e = parse_event(p.msgs[i].data(), now + kMaxClockSkewMs);
      if (!e.is_ok()) {
        poison(p.msgs[i], std::string(e.status().message()));
        continue;
      }
      int64_t window = e->ts_ms / wsize * wsize;
      p.valid.push_back(i);
      p.event_ts.push_back(e->ts_ms);
      std::string l;
      l.reserve(192);
      append_copy_line(l, *e, window);
      p.lines.push_back(std::move(l));
      ++p.windows[{std::move(e->client_id), std::move(e->target), window}];
    }
    return p;
  }

  // The batch's valid events in one transaction, then their acks.
  Status commit(Lane& lane, Prepared& p) {
    pg::Connection& db = *lane.db;
    const std::vector<std::string>& lines = p.lines;
    const int64_t late_before = p.late_before;
    const bool direct = lane.direct;
    int64_t inserted = 0, late = 0;
    uint64_t created = 0;  // the session in which this transaction created the staging table
    bool staged = false;
    Status s = db.transaction([&]() -> Status {
      std::vector<std::optional<std::string>> mc, mt, mw;
      staged = false;
      if (direct) {
        // Straight into events_seen; a unique violation means the batch holds an event stored
        // before, and it goes the staging way below with nothing of this attempt kept.
        GANTRY_RETURN_IF_ERROR(db.exec("SAVEPOINT direct"));
        auto copied = db.copy_in(kCopyEvents, lines);
        if (copied.is_ok()) {
          inserted = static_cast<int64_t>(lines.size());
          for (auto& [w, n] : p.windows) {
            if (std::get<2>(w) < late_before) late += n;
            mc.emplace_back(std::get<0>(w));
            mt.emplace_back(std::get<1>(w));
            mw.emplace_back(std::to_string(std::get<2>(w)));
          }
          return mark_windows(db, mc, mt, mw);
        }
        if (copied.status().code() != core::Code::kAlreadyExists) return copied.status();
        GANTRY_RETURN_IF_ERROR(db.exec("ROLLBACK TO SAVEPOINT direct"));
      }
      staged = true;
      // BEGIN has run: a lost session was replaced by then, and its staging table with it.
      // (Created inside the transaction, it exists only once the transaction commits.)
      if (lane.staging_generation != db.generation()) {
        GANTRY_RETURN_IF_ERROR(db.exec(kCreateStaging));
        created = db.generation();
      }
      GANTRY_RETURN_IF_ERROR(db.copy_in(kCopyStaging, lines).status());
      GANTRY_ASSIGN(r, db.query(kInsertEvents));
      if (r.size() == 0) return {};  // every one a duplicate: nothing to mark
      inserted = r.int64(0, 3);
      for (int i = 0; i < r.size(); ++i) {
        // Late: counted for events stored now, never again for a redelivered duplicate.
        if (r.int64(i, 2) < late_before) late += r.int64(i, 4);
        mc.emplace_back(std::string(r.get(i, 0)));
        mt.emplace_back(std::string(r.get(i, 1)));
        mw.emplace_back(std::string(r.get(i, 2)));
      }
      return mark_windows(db, mc, mt, mw);
    });
    if (!s.is_ok()) return s;
    if (created) lane.staging_generation = created;
    // A batch with duplicates suggests more follow (a redelivered backlog): the next batch goes
    // the staging way at once rather than failing its COPY first; a clean batch returns to COPY.
    lane.direct = inserted == static_cast<int64_t>(p.valid.size());
    (staged ? staged_batches_ : copied_batches_).inc();
    success_.inc(static_cast<uint64_t>(inserted));
    late_.inc(static_cast<uint64_t>(late));
    duplicate_.inc(static_cast<uint64_t>(p.valid.size() - static_cast<size_t>(inserted)));
    double done = static_cast<double>(core::unix_ms(std::chrono::system_clock::now()));
    for (int64_t t : p.event_ts) delay_.observe(std::max(0.0, (done - static_cast<double>(t)) / 1000.0));
    for (size_t i : p.valid) (void)p.msgs[i].ack_nowait();
    return {};
  }

  static Status mark_windows(pg::Connection& db, std::span<const std::optional<std::string>> clients,
                             std::span<const std::optional<std::string>> targets,
                             std::span<const std::optional<std::string>> windows) {
    return db.query(kMarkWindows, {pg::array_literal(clients), pg::array_literal(targets), pg::array_literal(windows)})
        .status();
  }

  // Counted as an error once, when it leaves for the DLQ, not at each delivery.
  void poison(nats::Message& m, const std::string& reason) {
    if (m.delivered() < static_cast<uint64_t>(st_.max_deliver)) {
      (void)m.nak();
      return;
    }
    std::string doc;
    core::json::Writer(doc)
        .object()
        .field("original_data", m.data())
        .field("reason", reason)
        .field("timestamp", core::rfc3339(std::chrono::system_clock::now()))
        .end();
    auto r = js_->publish(kDlqSubject, doc);
    if (!r.is_ok()) {
      aggregator_log.error("could not move a poison message to the DLQ; it stays", {{"error", r.status().to_string()}});
      (void)m.nak(Ms(5000));
      return;
    }
    dlq_.inc();
    error_.inc();
    aggregator_log.warn("poison message moved to the DLQ", {{"reason", reason}, {"deliveries", static_cast<int64_t>(m.delivered())}});
    (void)m.term();
  }

  void refresh_queue_gauges() {
    if (auto q = js_->consumer_state(std::string(kEventsStream), "aggregator"); q.is_ok()) {
      lag_.set(static_cast<double>(q->pending));
      ack_pending_.set(static_cast<double>(q->ack_pending));
    }
  }

  Settings st_;
  core::metrics::Registry& reg_;
  core::metrics::Family<core::metrics::Counter>& processed_;
  core::metrics::Counter &success_, &duplicate_, &error_;
  core::metrics::Histogram& delay_;
  core::metrics::Family<core::metrics::Counter>& batches_;
  core::metrics::Counter &copied_batches_, &staged_batches_;
  core::metrics::Counter& late_;
  core::metrics::Counter& dlq_;
  core::metrics::Gauge& lag_;
  core::metrics::Gauge& ack_pending_;

  std::unique_ptr<Flusher> flusher_;
  std::unique_ptr<nats::JetStream> js_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> running_{false};
};

class AggregatorFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("address", &st_.address, "listen address (health, ready, metrics)").env("AGGREGATOR_HOST");
    s.add("port", &st_.port, "listen port for /health /ready /metrics").flag("metrics-port").env("METRICS_PORT");
    s.add("nats_url", &st_.nats_url, "NATS server with JetStream").env("NATS_URL");
    telemetry::bind(s, &st_.db);
    aggregator::bind(s, &st_.flush.thresholds);
    s.add("window_size", &st_.flush.window_size, "aggregation window").env("WINDOW_SIZE").range(1000, 3'600'000);
    s.add("flush_delay", &st_.flush.flush_delay, "how long after a window ends it is flushed").env("FLUSH_DELAY").range(0, 3'600'000);
    s.add("late_tolerance", &st_.late_tolerance, "events later than this are counted late (still applied)")
        .env("LATE_TOLERANCE")
        .range(0, 86'400'000);
    s.add("max_ack_pending", &st_.max_ack_pending, "messages delivered and not yet acked").env("MAX_ACK_PENDING").range(1, 1'000'000);
    s.add("max_deliver", &st_.max_deliver, "deliveries before a poison message goes to the DLQ").range(1, 100);
    s.add("ack_wait", &st_.ack_wait, "redelivery after this without an ack").range(1000, 3'600'000);
    s.add("fetch_batch", &st_.fetch_batch, "messages per fetch and per transaction").range(1, 100'000);
    s.add("consumers", &st_.consumers, "lanes fetching and committing in parallel, each with its own PostgreSQL connection")
        .env("AGGREGATOR_CONSUMERS")
        .range(1, 64);
    s.add("flush_every", &st_.flush.flush_every, "how often to look for windows due").range(10, 60'000);
    s.add("flush_settle", &st_.flush.flush_settle,
          "a due window is recomputed once it has had no new events for this long (or has waited flush_max_wait)")
        .range(0, 3'600'000);
    s.add("flush_max_wait", &st_.flush.flush_max_wait,
          "longest a due window with events still arriving waits for its recomputation")
        .range(0, 3'600'000);
    s.add("events_retention", &st_.flush.events_retention, "events_seen rows older than this are deleted").range(60'000, 1e12);
    s.add("agg_retention", &st_.flush.agg_retention, "agg_1m rows older than this are deleted").range(60'000, 1e12);
    s.add("retention_every", &st_.flush.retention_every, "how often the retention job runs").range(1000, 1e11);
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Aggregator>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::telemetry::aggregator

namespace gantry::telemetry {

core::runtime::RoleInfo aggregator_role() {
  return {"aggregator", "Telemetry: JetStream events -> exact per-minute statistics and diagnosis in PostgreSQL",
          [] { return std::make_unique<aggregator::AggregatorFactory>(); }};
}

}  // namespace gantry::telemetry
