// The trades role's HTTP API: trades in, the query API, and the operations endpoints.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "trades/memory.h"
#include "trades/render.h"
#include "trades/service/service.h"

namespace gantry::trades {

namespace {
namespace http = core::http;
namespace nats = bus::nats;
using core::Status;

const core::log::Logger api_log("trades");

double mb(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::string hex(uint64_t v) {
  char buf[17];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  return std::string(buf, end);
}

int thread_count() {
  int n = 0;
  if (FILE* f = std::fopen("/proc/self/stat", "r")) {
    // Field 20 is num_threads; the command name (field 2) may hold spaces, so skip past ')'.
    char buf[1024];
    size_t len = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[len] = 0;
    const char* p = std::strrchr(buf, ')');
    for (int field = 2; p && *p && field < 20; ++p)
      if (*p == ' ') ++field;
    if (p) n = std::atoi(p);
  }
  return n;
}
}  // namespace

void Service::routes() {
  auto& r = router();
  r.add_async(http::Method::kPost, "/trades", [this](const http::Request& q, http::Responder resp) { post_trades(q, resp); });
  r.get("/tokens/{addr}/aggregates", [this](const http::Request& q, http::Response& out) { get_token(q, out); });
  r.get("/tokens", [this](const http::Request& q, http::Response& out) { get_tokens(q, out); });
  r.get("/health", [this](const http::Request&, http::Response& out) { health(out); });
  r.get("/health/live", [](const http::Request&, http::Response& out) { out.json(200, R"({"status":"alive"})"); });
  auto ready_answer = [this](const http::Request&, http::Response& out) {
    if (ready()) return out.json(200, R"({"status":"ready"})");
    std::string b;
    core::json::Writer(b).object().field("status", "not ready").field("reason", !replayed_ ? "rebuilding state from the stream" : "NATS disconnected").end();
    out.json(503, std::move(b));
  };
  r.get("/health/ready", ready_answer);
  r.get("/ready", ready_answer);
  r.get("/metrics/json", [this](const http::Request&, http::Response& out) { metrics_json(out); });
  r.get("/performance", [this](const http::Request&, http::Response& out) { performance(out); });
  r.post("/performance/gc", [this](const http::Request&, http::Response& out) { gc(out); });
  r.post("/performance/optimize/throughput", [this](const http::Request&, http::Response& out) { optimize(Mode::kThroughput, out); });
  r.post("/performance/optimize/latency", [this](const http::Request&, http::Response& out) { optimize(Mode::kLatency, out); });
  r.post("/performance/optimize/balanced", [this](const http::Request&, http::Response& out) { optimize(Mode::kBalanced, out); });
}

// Validated here (a bad trade: 400 naming it, nothing stored), then appended to the stream,
// each trade with the message id <token>:<TxHash fingerprint> so a resent request is dropped by
// JetStream; 202 once every one is stored. The consumer applies them like any other trade.
void Service::post_trades(const http::Request& q, http::Responder resp) {
  http::Response out;
  std::vector<Trade> trades;
  std::vector<std::string> wire;
  Status s = parse_trades(q.body(), 0, trades, &wire);
  if (!s.is_ok()) {
    out.error(400, s.message());
    return resp.send(std::move(out));
  }
  if (trades.size() > static_cast<size_t>(st_.trade_buffer_size)) {
    out.error(413, "over " + std::to_string(st_.trade_buffer_size) + " trades in one request (TRADE_BUFFER_SIZE)");
    return resp.send(std::move(out));
  }
  // Refused here rather than stored and then dropped by the engine: the client learns of it.
  int64_t now_ms = core::unix_ms(std::chrono::system_clock::now());
  size_t lead = q.body().find_first_not_of(" \t\r\n");
  bool array = lead != std::string_view::npos && q.body()[lead] == '[';
  for (size_t i = 0; i < trades.size(); ++i) {
    int64_t ahead_ms = trades[i].t_ms - now_ms;
    if (ahead_ms <= st_.max_future.count()) continue;
    out.error(400, (array ? "trade " + std::to_string(i) + ": " : std::string()) + "TransTime is " +
                       std::to_string(ahead_ms / 1000) + " s ahead of this server's clock (max_future " +
                       std::to_string(st_.max_future.count() / 1000) + " s)");
    return resp.send(std::move(out));
  }
  nats::Publisher* pub = nullptr;
  for (auto& [ioc, p] : pubs_)
    if (ioc == q.io_context()) pub = p.get();
  if (!pub) {
    out.error(503, "trade stream unavailable: no NATS connection on this thread");
    return resp.send(std::move(out));
  }
  struct State {
    http::Responder resp;
    size_t total, pending, stored = 0;
    std::string error;
  };
  // Publish callbacks run on this io_context's thread: no lock needed.
  auto st = std::make_shared<State>(State{resp, trades.size(), trades.size() + 1, 0, {}});
  auto finish = [this, st] {
    if (--st->pending) return;
    http::Response o;
    if (st->error.empty()) {
      http_accepted_ += st->stored;
      std::string b;
      core::json::Writer(b).object().field("status", "accepted").field("count", static_cast<unsigned long long>(st->stored)).end();
      o.json(202, std::move(b));
    } else {
      o.error(503, std::to_string(st->stored) + " of " + std::to_string(st->total) +
                       " trades stored; " + st->error + " (resending all is safe: duplicates are dropped)");
    }
    st->resp.send(std::move(o));
  };
  size_t total = trades.size();
  for (size_t i = 0; i < total; ++i) {
    std::string id = std::string(trades[i].token()) + ":" + hex(trades[i].tx_fp);
    Status ps = pub->publish(publish_subject(trades[i].token()), wire[i], id, [st, finish](core::Result<nats::PubAck> a) {
      if (a.is_ok()) st->stored++;
      else if (st->error.empty()) st->error = "not stored: " + a.status().to_string();
      finish();
    });
    if (!ps.is_ok()) {
      if (st->error.empty()) st->error = "not stored: " + ps.to_string();
      finish();
    }
  }
  finish();
}

void Service::get_token(const http::Request& q, http::Response& out) {
  std::string addr(q.param("addr"));
  auto row = output_ ? output_->token(addr) : std::nullopt;
  if (!row) {
    out.error(404, "no aggregates for token " + addr.substr(0, 200) + ": unknown, or no trade within the last " + windows_.back().name);
    return;
  }
  std::string b;
  core::json::Writer(b).object().field("token", row->token).field_raw("aggregates", row->aggregates)
      .field("last_update", row->last_update).end();
  out.json(200, std::move(b));
}

// sort=<stat>_<window>: stat volume, volume_usd, trades or price_change; limit 1..1000.
void Service::get_tokens(const http::Request& q, http::Response& out) {
  std::string sort = q.query_param("sort").value_or("volume_" + (windows_.size() > 1 ? windows_[1].name : windows_[0].name));
  size_t window = windows_.size();
  std::string stat;
  for (size_t i = 0; i < windows_.size(); ++i) {
    const std::string& n = windows_[i].name;
    if (sort.size() > n.size() + 1 && sort.compare(sort.size() - n.size(), n.size(), n) == 0 && sort[sort.size() - n.size() - 1] == '_') {
      std::string s = sort.substr(0, sort.size() - n.size() - 1);
      if (s == "volume" || s == "volume_usd" || s == "trades" || s == "price_change") {
        window = i;
        stat = s;
      }
    }
  }
  if (window == windows_.size()) {
    std::string names;
    for (auto& w : windows_) names += (names.empty() ? "" : ", ") + w.name;
    out.error(400, "sort must be volume_<window>, volume_usd_<window>, trades_<window> or price_change_<window> with a window of " + names);
    return;
  }
  int limit = 50;
  if (auto l = q.query_param("limit")) {
    auto [end, ec] = std::from_chars(l->data(), l->data() + l->size(), limit);
    if (ec != std::errc() || end != l->data() + l->size() || limit < 1 || limit > 1000) {
      out.error(400, "limit must be a whole number from 1 to 1000");
      return;
    }
  }
  auto rows = output_ ? output_->top(window, stat, static_cast<size_t>(limit)) : std::vector<Output::Row>{};
  std::string b;
  core::json::Writer w(b);
  w.object().field("sort", sort).field("count", static_cast<unsigned long long>(rows.size())).key("tokens").array();
  for (auto& r : rows) {
    const Aggregate& a = r.windows[window];
    double v = stat == "volume" ? a.total_volume : stat == "volume_usd" ? a.volume_usd
             : stat == "trades" ? static_cast<double>(a.total_trades) : a.price_change;
    std::string fig;
    append_figure(fig, v);
    w.object().field("token", r.token).field_raw(sort, fig).field_raw("aggregates", r.aggregates).field("last_update", r.last_update).end();
  }
  w.end().end();
  out.json(200, std::move(b));
}

void Service::health(http::Response& out) {
  EngineStats e = engine_ ? engine_->stats() : EngineStats{};
  std::string b;
  core::json::Writer w(b);
  w.object().field("status", ready() ? "healthy" : "starting");
  w.field("timestamp", core::rfc3339_nano(std::chrono::system_clock::now()));
  w.field("uptime_seconds", static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()));
  w.key("metrics_summary").object().field("active_tokens", static_cast<unsigned long long>(e.tokens)).field("worker_count", shards_)
      .field("trades_processed", static_cast<unsigned long long>(e.applied)).end();
  w.end();
  out.json(200, std::move(b));
}

void Service::metrics_json(http::Response& out) {
  EngineStats e = engine_ ? engine_->stats() : EngineStats{};
  Output::Stats o = output_ ? output_->stats() : Output::Stats{};
  MemoryStats m = read_memory();
  double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  std::string b;
  core::json::Writer w(b);
  w.object();
  w.key("trade_processing").object()
      .field("processed", static_cast<unsigned long long>(e.applied))
      .field("duplicates", static_cast<unsigned long long>(e.duplicates))
      .field("too_old", static_cast<unsigned long long>(e.too_old))
      .field("too_new", static_cast<unsigned long long>(e.too_new))
      .field("invalid", static_cast<unsigned long long>(e.invalid))
      .field("refused", static_cast<unsigned long long>(e.refused))
      .field("fetched", static_cast<unsigned long long>(fetched_.load()))
      .field("fetch_errors", static_cast<unsigned long long>(fetch_errors_.load()))
      .field("replayed", static_cast<unsigned long long>(replayed_messages_.load()))
      .field("accepted_over_http", static_cast<unsigned long long>(http_accepted_.load()))
      .key("average_rate_per_second").value_fixed(up > 0 ? static_cast<double>(e.applied) / up : 0, 1).end();
  w.key("aggregation_calculation").object()
      .field("active_tokens", static_cast<unsigned long long>(e.tokens))
      .field("windows", static_cast<unsigned long long>(windows_.size()))
      .field("shards", shards_)
      .field("flush_interval_ms", static_cast<long long>(flush_ms_.load()))
      .field("busy_seconds", std::round(e.busy_seconds * 1000) / 1000)
      .field("evicted_idle", static_cast<unsigned long long>(e.evicted_idle))
      .field("evicted_limit", static_cast<unsigned long long>(e.evicted_limit))
      .field("evicted_memory", static_cast<unsigned long long>(e.evicted_memory))
      .end();
  double rate = o.writes + o.write_errors ? static_cast<double>(o.writes) / static_cast<double>(o.writes + o.write_errors) : 1.0;
  w.key("redis_operations").object()
      .field("write_batches", static_cast<unsigned long long>(o.writes))
      .field("commands", static_cast<unsigned long long>(o.commands))
      .field("errors", static_cast<unsigned long long>(o.write_errors))
      .key("success_rate").value_fixed(rate, 4)
      .key("avg_latency_ms").value_fixed(o.writes ? o.write_seconds * 1000 / static_cast<double>(o.writes) : 0, 3)
      .field("pending_tokens", static_cast<unsigned long long>(o.pending))
      .field("connected", o.redis_up)
      .end();
  w.key("system_resources").object()
      .key("memory_allocated_mb").value_fixed(mb(m.allocated), 1)
      .key("memory_resident_mb").value_fixed(mb(m.resident), 1)
      .key("token_state_mb").value_fixed(mb(e.state_bytes), 1)
      .field("threads", thread_count())
      .field("uptime_seconds", static_cast<long long>(up))
      .end();
  w.end();
  out.json(200, std::move(b));
}

void Service::performance(http::Response& out) {
  MemoryStats m = read_memory();
  Mode mode = mode_.load();
  std::string b;
  core::json::Writer w(b);
  w.object().key("memory").object()
      .field("allocator", m.jemalloc ? "jemalloc" : "system (no jemalloc statistics: figures are the RSS)")
      .key("allocated_mb").value_fixed(mb(m.allocated), 1)
      .key("active_mb").value_fixed(mb(m.active), 1)
      .key("resident_mb").value_fixed(mb(m.resident), 1)
      .key("retained_mb").value_fixed(mb(m.retained), 1)
      .key("heap_alloc_mb").value_fixed(mb(m.allocated), 1)
      .key("heap_inuse_mb").value_fixed(mb(m.active), 1)
      .key("heap_sys_mb").value_fixed(mb(m.resident), 1)
      .end();
  w.field("threads", thread_count());
  w.key("tuning").object()
      .field("mode", mode == Mode::kThroughput ? "throughput" : mode == Mode::kLatency ? "latency" : "balanced")
      .field("flush_interval_ms", static_cast<long long>(flush_ms_.load()))
      .field("fetch_batch", fetch_batch_.load())
      .field("redis_pipeline_size", st_.redis.pipeline_size)
      .field("gc_target_percentage", st_.gc_target_percentage)
      .end();
  w.key("limits").object()
      .field("memory_limit_mb", st_.memory_limit_mb)
      .field("max_token_processors", st_.max_token_processors)
      .field("max_workers", st_.max_workers)
      .field("shards", shards_)
      .end();
  w.end();
  out.json(200, std::move(b));
}

void Service::gc(http::Response& out) {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t before = resident_set_bytes();
  bool purged = purge_memory();
  uint64_t after = resident_set_bytes();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::string b;
  core::json::Writer w(b);
  w.object().field("status", purged ? "completed" : "failed").key("stats").object()
      .key("duration_ms").value_fixed(ms, 3)
      .key("before_mb").value_fixed(mb(before), 1)
      .key("after_mb").value_fixed(mb(after), 1)
      .key("freed_mb").value_fixed(before > after ? mb(before - after) : 0.0, 1)
      .end().end();
  api_log.info("memory purged", {{"before_mb", static_cast<int64_t>(before >> 20)}, {"after_mb", static_cast<int64_t>(after >> 20)}});
  out.json(200, std::move(b));
}

// Throughput: larger fetches and a longer flush interval (fewer, larger Redis batches);
// latency: small fetches and a short interval. Balanced: the configured values.
void Service::optimize(Mode m, http::Response& out) {
  int64_t flush = st_.flush_interval.count();
  int batch = st_.batch_processing_size;
  std::string what;
  if (m == Mode::kThroughput) {
    flush = std::max<int64_t>(flush * 5 / 2, 250);
    batch = std::min(std::max(batch * 10, 1000), 100'000);
    what = "optimized for throughput";
  } else if (m == Mode::kLatency) {
    flush = std::max<int64_t>(std::min<int64_t>(flush / 2, 50), 1);
    batch = std::max(std::min(batch / 2, 50), 1);
    what = "optimized for latency";
  } else {
    what = "back to the configured settings";
  }
  mode_ = m;
  flush_ms_ = flush;
  if (engine_) engine_->set_flush_interval(std::chrono::milliseconds(flush));
  fetch_batch_ = batch;
  api_log.info(what, {{"flush_interval_ms", flush}, {"fetch_batch", batch}});
  std::string b;
  core::json::Writer(b).object().field("status", "success")
      .field("message", what + ": flush interval " + std::to_string(flush) + " ms, fetch batch " + std::to_string(batch)).end();
  out.json(200, std::move(b));
}

void Service::register_metrics() {
  auto& reg = core::metrics::Registry::global();
  auto stat = [this](uint64_t EngineStats::*f) { return [this, f] { return engine_ ? static_cast<double>(engine_->stats().*f) : 0.0; }; };
  const char* processed = "realtime_aggregation_trades_processed_total";
  const char* processed_help =
      "trades by outcome (applied, duplicate, too_old: before the longest window, too_new: further ahead of the clock "
      "than max_future, invalid, refused: over a limit)";
  reg.counter_callback(processed, processed_help, {"status"}, {"applied"}, stat(&EngineStats::applied));
  reg.counter_callback(processed, processed_help, {"status"}, {"duplicate"}, stat(&EngineStats::duplicates));
  reg.counter_callback(processed, processed_help, {"status"}, {"too_old"}, stat(&EngineStats::too_old));
  reg.counter_callback(processed, processed_help, {"status"}, {"too_new"}, stat(&EngineStats::too_new));
  reg.counter_callback(processed, processed_help, {"status"}, {"invalid"}, stat(&EngineStats::invalid));
  reg.counter_callback(processed, processed_help, {"status"}, {"refused"}, stat(&EngineStats::refused));
  const char* evicted = "realtime_aggregation_tokens_evicted_total";
  const char* evicted_help =
      "tokens evicted (idle: no trade for the longest window, limit: MAX_TOKEN_PROCESSORS, memory: MEMORY_LIMIT_MB)";
  reg.counter_callback(evicted, evicted_help, {"reason"}, {"idle"}, stat(&EngineStats::evicted_idle));
  reg.counter_callback(evicted, evicted_help, {"reason"}, {"limit"}, stat(&EngineStats::evicted_limit));
  reg.counter_callback(evicted, evicted_help, {"reason"}, {"memory"}, stat(&EngineStats::evicted_memory));
  reg.gauge_callback("realtime_aggregation_active_tokens", "tokens with live windows", stat(&EngineStats::tokens));
  const char* mem = "realtime_aggregation_memory_bytes";
  const char* mem_help = "memory: jemalloc's allocated, active, resident and retained bytes; token_state: the windows themselves";
  reg.gauge_callback(mem, mem_help, {"kind"}, {"allocated"}, [] { return static_cast<double>(read_memory().allocated); });
  reg.gauge_callback(mem, mem_help, {"kind"}, {"active"}, [] { return static_cast<double>(read_memory().active); });
  reg.gauge_callback(mem, mem_help, {"kind"}, {"resident"}, [] { return static_cast<double>(read_memory().resident); });
  reg.gauge_callback(mem, mem_help, {"kind"}, {"retained"}, [] { return static_cast<double>(read_memory().retained); });
  reg.gauge_callback(mem, mem_help, {"kind"}, {"token_state"}, stat(&EngineStats::state_bytes));
  reg.gauge_callback("realtime_aggregation_memory_limit_exceeded", "1 while over MEMORY_LIMIT_MB (new tokens refused)",
                     [this] { return over_memory_.load() ? 1.0 : 0.0; });
  reg.gauge_callback("realtime_aggregation_redis_success_rate", "share of Redis write batches that succeeded", [this] {
    Output::Stats o = output_ ? output_->stats() : Output::Stats{};
    return o.writes + o.write_errors ? static_cast<double>(o.writes) / static_cast<double>(o.writes + o.write_errors) : 1.0;
  });
  reg.gauge_callback("realtime_aggregation_redis_pending_tokens", "tokens whose latest statistics are not yet in Redis",
                     [this] { return output_ ? static_cast<double>(output_->stats().pending) : 0.0; });
  reg.counter_callback("realtime_aggregation_nats_publishes_total", "aggregates.<token> publications",
                       [this] { return output_ ? static_cast<double>(output_->stats().publishes) : 0.0; });
  reg.counter_callback("realtime_aggregation_replayed_messages_total", "messages replayed from the stream at start",
                       [this] { return static_cast<double>(replayed_messages_.load()); });
  reg.counter_callback("realtime_aggregation_fetched_messages_total", "messages fetched from the durable consumer",
                       [this] { return static_cast<double>(fetched_.load()); });
}

}  // namespace gantry::trades
