#include "trades/service/output.h"

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "trades/render.h"

namespace gantry::trades {

namespace {
const core::log::Logger output_log("trades");

// NATS subjects cannot hold '.', '*', '>' or whitespace in a token: such tokens are published
// with those characters replaced by '_'.
std::string subject_token(std::string_view t) {
  std::string s(t);
  for (char& c : s)
    if (c == '.' || c == '*' || c == '>' || c == ' ' || c == '\t' || c == '\r' || c == '\n') c = '_';
  return s;
}
core::metrics::Family<core::metrics::Counter>& redis_ops() {
  return core::metrics::Registry::global().counter("realtime_aggregation_redis_operations_total",
                                                   "Redis write batches by outcome", {"status"});
}
}  // namespace

Output::Output(const Settings& st, std::vector<WindowSpec> windows, bus::nats::JetStream* nats, bus::redis::Endpoint redis,
               const std::atomic<int64_t>* flush_ms)
    : st_(st),
      windows_(std::move(windows)),
      nats_(nats),
      redis_ep_(std::move(redis)),
      flush_ms_(flush_ms),
      pipeline_size_(static_cast<size_t>(st.redis.pipeline_size)),
      redis_latency_(core::metrics::Registry::global()
                         .histogram("realtime_aggregation_redis_latency_seconds", "one pipelined Redis write batch", {},
                                    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})
                         .with({})),
      redis_ok_(redis_ops().with({"success"})),
      redis_failed_(redis_ops().with({"error"})) {}

Output::~Output() { stop(std::chrono::milliseconds(0)); }

void Output::start() {
  bus::redis::PipelineOptions po;
  po.max_in_flight = pipeline_size_;
  po.breaker = "redis:trades";
  redis_ = std::make_unique<bus::redis::Pipeline>(redis_ep_, po);
  thread_ = std::thread([this] { loop(); });
}

void Output::stop(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lk(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // What the shards reported last: tried until written or the deadline (Redis is a view the
  // next start rebuilds from the stream, so a Redis that is down does not hold a stop long).
  auto until = std::chrono::steady_clock::now() + std::min(deadline, std::chrono::milliseconds(5000));
  while (redis_) {
    bool ok = write_once(true);
    {
      std::lock_guard lk(mu_);
      if (pending_.empty()) break;
      if (std::chrono::steady_clock::now() >= until) {
        output_log.warn("stopping with aggregates not written to Redis", {{"tokens", static_cast<int64_t>(pending_.size())}});
        break;
      }
    }
    if (!ok) std::this_thread::sleep_for(std::min(st_.redis.retry_delay, std::chrono::milliseconds(250)) + std::chrono::milliseconds(10));
  }
  redis_.reset();
}

// Rendered here, on the reporting shard's thread: the shards share the rendering, and the
// writer thread only sends.
void Output::add(std::vector<TokenUpdate>&& updates) {
  auto now = std::chrono::system_clock::now();
  std::string stamp = core::rfc3339_nano(now);
  // token:{addr}:last_update is Go's time.RFC3339 in the original: to the second.
  std::string stamp_s = core::rfc3339_nano(std::chrono::floor<std::chrono::seconds>(now));
  std::vector<Pending> ready;
  ready.reserve(updates.size());
  for (auto& u : updates) {
    Pending p;
    p.row.token = std::move(u.token);
    p.row.last_update = stamp_s;
    u.token = p.row.token;
    render_aggregates(p.row.aggregates, windows_, u, stamp);
    if (nats_ && st_.publish_nats) render_publication(p.publication, windows_, u, stamp);
    p.row.windows = std::move(u.windows);
    p.evicted = u.evicted;
    ready.push_back(std::move(p));
  }
  {
    std::lock_guard lk(mu_);
    for (auto& p : ready) {
      std::string key = p.row.token;
      pending_[std::move(key)] = std::move(p);
    }
  }
  cv_.notify_all();
}

// The shards already report each token at most once per interval, so reports are written as
// they come (a second timer here would add up to another interval to every trade's latency).
// After a failed write the next try waits for the next interval.
void Output::loop() {
  std::unique_lock lk(mu_);
  bool failed = false;
  for (;;) {
    auto interval = std::chrono::milliseconds(flush_ms_->load());
    if (failed) cv_.wait_for(lk, interval, [&] { return stop_; });
    else cv_.wait_for(lk, interval, [&] { return stop_ || !pending_.empty(); });
    if (stop_) return;
    lk.unlock();
    failed = !write_once(false);
    lk.lock();
  }
}

bool Output::write_once(bool final) {
  std::unordered_map<std::string, Pending> batch;
  {
    std::lock_guard lk(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return true;
  // Counted as pending while being written: a failed write puts them back.
  in_flight_ = batch.size();
  struct Clear {
    std::atomic<size_t>& n;
    ~Clear() { n = 0; }
  } clear{in_flight_};
  std::string ttl = std::to_string(std::max<int64_t>(1, st_.redis.ttl.count() / 1000));

  // NATS once per report (not again when a Redis retry sends it), then the query snapshot.
  for (auto& [token, p] : batch) {
    if (p.published || p.publication.empty() || final) continue;
    core::Status s = nats_->publish_core(st_.nats_prefix + "." + subject_token(token), p.publication);
    (s.is_ok() ? publishes_ : publish_errors_).fetch_add(1, std::memory_order_relaxed);
    p.published = true;
  }
  {
    std::lock_guard lk(mu_);
    for (auto& [token, p] : batch) {
      if (p.evicted) snapshot_.erase(token);
      else snapshot_[token] = p.row;
    }
  }

  // Redis: SET with EX refreshes the TTL in the same command the original spent two on.
  for (int attempt = 0;; ++attempt) {
    for (auto& [token, p] : batch) {
      redis_->add({"SET", "token:" + token + ":aggregates", p.row.aggregates, "EX", ttl});
      redis_->add({"SET", "token:" + token + ":last_update", p.row.last_update, "EX", ttl});
    }
    auto t0 = std::chrono::steady_clock::now();
    auto res = redis_->exec_writes();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    redis_up_ = redis_->connected();
    if (res.is_ok()) {
      redis_latency_.observe(secs);
      write_ns_.fetch_add(static_cast<int64_t>(secs * 1e9), std::memory_order_relaxed);
      writes_.fetch_add(1, std::memory_order_relaxed);
      commands_.fetch_add(res->commands, std::memory_order_relaxed);
      redis_ok_.inc();
      if (res->errors) {
        write_errors_.fetch_add(1, std::memory_order_relaxed);
        output_log.warn("Redis refused writes", {{"errors", static_cast<int64_t>(res->errors)}, {"first", res->first_error}});
      }
      return true;
    }
    redis_failed_.inc();
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    if (attempt >= st_.redis.max_retries || res.status().code() == core::Code::kCircuitOpen) {
      // Kept for the next interval unless a newer report of the token arrived meanwhile.
      std::lock_guard lk(mu_);
      for (auto& [token, u] : batch) pending_.try_emplace(token, std::move(u));
      if (attempt > 0 || res.status().code() != core::Code::kCircuitOpen)
        output_log.warn("Redis write failed; kept for the next flush",
                {{"error", res.status().to_string()}, {"tokens", static_cast<int64_t>(pending_.size())}});
      return false;
    }
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, st_.redis.retry_delay, [&] { return stop_ && !final; });
  }
}

std::optional<Output::Row> Output::token(std::string_view addr) const {
  std::lock_guard lk(mu_);
  auto it = snapshot_.find(std::string(addr));
  if (it == snapshot_.end()) return std::nullopt;
  return it->second;
}

std::vector<Output::Row> Output::top(size_t window, std::string_view stat, size_t limit) const {
  auto key = [&](const Row& r) -> double {
    if (window >= r.windows.size()) return 0;
    const Aggregate& a = r.windows[window];
    if (stat == "volume") return a.total_volume;
    if (stat == "volume_usd") return a.volume_usd;
    if (stat == "trades") return static_cast<double>(a.total_trades);
    return a.price_change;
  };
  std::vector<std::pair<double, const Row*>> all;
  std::lock_guard lk(mu_);
  all.reserve(snapshot_.size());
  for (auto& [t, r] : snapshot_) all.emplace_back(key(r), &r);
  size_t n = std::min(limit, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : a.second->token < b.second->token;
  });
  std::vector<Row> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*all[i].second);
  return out;
}

size_t Output::tokens() const {
  std::lock_guard lk(mu_);
  return snapshot_.size();
}

Output::Stats Output::stats() const {
  Stats s;
  s.writes = writes_.load();
  s.write_errors = write_errors_.load();
  s.commands = commands_.load();
  s.publishes = publishes_.load();
  s.publish_errors = publish_errors_.load();
  s.write_seconds = static_cast<double>(write_ns_.load()) / 1e9;
  s.redis_up = redis_up_.load();
  std::lock_guard lk(mu_);
  s.pending = pending_.size() + in_flight_.load();
  return s;
}

}  // namespace gantry::trades
