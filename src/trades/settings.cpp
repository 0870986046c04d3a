#include "trades/settings.h"

#include <algorithm>
#include <charconv>

#include "trades/windows.h"

namespace gantry::trades {

core::Result<bus::redis::Endpoint> RedisSettings::endpoint() const {
  bus::redis::Endpoint e;
  if (addr.rfind("redis://", 0) == 0) {
    GANTRY_ASSIGN(parsed, bus::redis::Endpoint::parse_url(addr));
    e = parsed;
  } else {
    auto colon = addr.rfind(':');
    e.host = addr.substr(0, colon);
    if (colon != std::string::npos) {
      auto port = addr.substr(colon + 1);
      int p = 0;
      auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
      if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
        return core::invalid_argument("bad Redis port '" + port + "' (host:port, or redis://host:port/db)");
      e.port = p;
    }
    if (e.host.empty()) return core::invalid_argument("no Redis host (host:port, or redis://host:port/db)");
    e.db = db;
  }
  if (!password.empty()) e.password = password;
  if (db != 0) e.db = db;
  e.timeout = std::max(read_timeout, write_timeout);
  return e;
}

void bind(core::config::Schema& s, Settings* st) {
  s.add("address", &st->address, "listen address (query API, /health, /metrics, /performance)").env("TRADES_HOST");
  s.add("port", &st->port, "listen port").env("METRICS_PORT");
  s.add("nats_url", &st->nats_url, "NATS server with JetStream: trades in, aggregates.<token> out").env("NATS_URL");
  s.add("stream", &st->stream, "JetStream stream of trades").env("TRADES_STREAM");
  s.add("subject", &st->subject, "subject the stream holds; POST /trades publishes to <prefix>.<token>").env("TRADES_SUBJECT");
  s.add("durable", &st->durable, "durable consumer name").env("TRADES_DURABLE");
  s.add("stream_max_age", &st->stream_max_age,
        "how long the stream keeps trades (at least the longest window, for replay; 0: twice it, at least 2h)")
      .range(0, 30LL * 86'400'000);
  s.add("time_windows", &st->time_windows, "windows: 1min,5min,15min,30min,1hour or durations up to 24h")
      .env("TIME_WINDOWS")
      .check([st]() -> std::optional<std::string> {
        auto w = parse_windows(st->time_windows);
        if (!w.is_ok()) return std::string(w.status().message());
        if (st->stream_max_age.count() > 0 && w->back().ms > st->stream_max_age.count())
          return "the longest window (" + w->back().name + ") is longer than stream_max_age: it could not be replayed";
        return std::nullopt;
      });
  s.add("resolution", &st->resolution, "time step of the windows (trades of one step share a bucket)")
      .env("WINDOW_RESOLUTION")
      .range(1, 60'000);
  s.add("max_future", &st->max_future,
        "a trade whose TransTime is further ahead of this server's clock is refused (400 over HTTP, too_new on the "
        "stream): it would stay in every window until the clock reached it")
      .env("MAX_FUTURE")
      .range(0, 86'400'000);
  s.add("dedup", &st->dedup, "ignore a TxHash already seen for its token within the longest window").env("DEDUP");
  s.add("max_workers", &st->max_workers, "shard threads (at most one per core)").env("MAX_WORKERS").range(1, 1024);
  s.add("max_token_processors", &st->max_token_processors, "live tokens; beyond it the least recently active is evicted")
      .env("MAX_TOKEN_PROCESSORS")
      .range(1, 10'000'000);
  s.add("memory_limit_mb", &st->memory_limit_mb, "above it new tokens are refused and idle ones evicted first")
      .env("MEMORY_LIMIT_MB")
      .range(1, 1 << 20);
  s.add("trade_buffer_size", &st->trade_buffer_size, "most trades one POST /trades may carry")
      .env("TRADE_BUFFER_SIZE")
      .range(1, 1'000'000);
  s.add("processor_channel_size", &st->processor_channel_size, "raw batches waiting for a shard before fetching pauses")
      .env("PROCESSOR_CHANNEL_SIZE")
      .range(1, 1'000'000);
  s.add("worker_queue_size", &st->worker_queue_size, "messages JetStream delivers before an ack (max ack pending)")
      .env("WORKER_QUEUE_SIZE")
      .range(1, 10'000'000);
  s.add("batch_processing_size", &st->batch_processing_size, "messages per JetStream fetch")
      .env("BATCH_PROCESSING_SIZE")
      .range(1, 100'000);
  s.add("fetch_wait", &st->fetch_wait,
        "a fetch returns what arrived within this, full batch or not (bounds the latency batching adds)")
      .env("FETCH_WAIT")
      .range(1, 60'000);
  s.add("gc_target_percentage", &st->gc_target_percentage,
        "Go's GOGC, mapped to jemalloc: unused pages go back to the OS after 10 s x this / 100")
      .env("GC_TARGET_PERCENTAGE")
      .range(0, 10'000);
  s.add("flush_interval", &st->flush_interval, "at most one Redis write and NATS publication per token per interval")
      .env("FLUSH_INTERVAL")
      .range(1, 60'000);
  s.add("publish_nats", &st->publish_nats, "publish aggregates.<token> on every flush").env("PUBLISH_NATS");
  s.add("nats_prefix", &st->nats_prefix, "subject prefix of the aggregate publications").env("AGGREGATES_SUBJECT_PREFIX");
  RedisSettings* r = &st->redis;
  s.add("redis_addr", &r->addr, "Redis host:port (or redis://…)").env("REDIS_ADDR").check([r]() -> std::optional<std::string> {
    auto e = r->endpoint();
    return e.is_ok() ? std::nullopt : std::optional<std::string>(std::string(e.status().message()));
  });
  s.add("redis_password", &r->password, "Redis password").env("REDIS_PASSWORD").secret();
  s.add("redis_db", &r->db, "Redis database").env("REDIS_DB").range(0, 15);
  s.add("redis_pool_size", &r->pool_size, "accepted for the original's deployments; one pipelined connection writes")
      .env("REDIS_POOL_SIZE")
      .range(1, 1000);
  s.add("redis_pipeline_size", &r->pipeline_size, "commands written before their replies are read")
      .env("REDIS_PIPELINE_SIZE")
      .range(1, 100'000);
  s.add("redis_max_retries", &r->max_retries, "retries of a failed write batch within one flush").env("REDIS_MAX_RETRIES").range(0, 100);
  s.add("redis_retry_delay", &r->retry_delay, "wait before each retry").env("REDIS_RETRY_DELAY").range(0, 60'000);
  s.add("redis_read_timeout", &r->read_timeout, "Redis read timeout").env("REDIS_READ_TIMEOUT").range(1, 600'000);
  s.add("redis_write_timeout", &r->write_timeout, "Redis write timeout").env("REDIS_WRITE_TIMEOUT").range(1, 600'000);
  s.add("redis_idle_timeout", &r->idle_timeout, "accepted; the writer's connection is never idle for long").env("REDIS_IDLE_TIMEOUT");
  s.add("redis_max_conn_age", &r->max_conn_age, "accepted; the writer's connection is kept until it fails").env("REDIS_MAX_CONN_AGE");
  s.add("redis_ttl", &r->ttl, "TTL of token:{addr}:aggregates and :last_update, refreshed on write").env("REDIS_TTL").range(1000, 30LL * 86'400'000);
  core::http::bind(s, &st->http);
}

}  // namespace gantry::trades
