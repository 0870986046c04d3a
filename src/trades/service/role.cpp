// The trades role's lifecycle: connections, replay, the consumer and the memory monitor.
#include <algorithm>

#include "core/log.h"
#include "trades/memory.h"
#include "trades/roles.h"
#include "trades/service/service.h"

namespace gantry::trades {

namespace {
namespace nats = bus::nats;
using core::Status;
using Ms = std::chrono::milliseconds;

const core::log::Logger role_log("trades");

bool log_this(uint64_t n) { return n <= 10 || (n & (n - 1)) == 0; }  // the first ten, then 16, 32, 64, …
}  // namespace

Service::Service(Settings s)
    : HttpRole("trades", s.http),
      st_(std::move(s)),
      windows_(*parse_windows(st_.time_windows)),
      flush_ms_(st_.flush_interval.count()),
      fetch_batch_(st_.batch_processing_size) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  shards_ = std::clamp(st_.max_workers, 1, static_cast<int>(cores));
  routes();
}

Service::~Service() {
  if (consumer_.joinable() || monitor_.joinable()) before_drain();
}

bool Service::stopping() {
  std::lock_guard lk(mu_);
  return stop_;
}

std::string Service::publish_subject(std::string_view token) const {
  std::string_view subj = st_.subject;
  if (subj.size() >= 2 && subj.substr(subj.size() - 2) == ".>") {
    bool plain = std::none_of(token.begin(), token.end(), [](char c) {
      return c == '.' || c == '*' || c == '>' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
    });
    return std::string(subj.substr(0, subj.size() - 1)) + (plain ? std::string(token) : std::string("other"));
  }
  return std::string(subj);  // a literal subject (or one with '*' the operator chose) as given
}

Status Service::on_start() {
  if (!set_decay_ms(10'000LL * st_.gc_target_percentage / 100))
    role_log.info("GC_TARGET_PERCENTAGE has no effect: not running on jemalloc");
  GANTRY_RETURN_IF_ERROR(nats::Publisher::check_urls(st_.nats_url));
  GANTRY_ASSIGN(js, nats::JetStream::connect(st_.nats_url, {.name = "gantry-trades"}));
  js_ = std::move(js);
  nats::StreamSpec spec;
  spec.name = st_.stream;
  spec.subjects = {st_.subject};
  spec.max_age = st_.stream_max_age.count() > 0 ? st_.stream_max_age
                                                 : std::max(Ms(7'200'000), Ms(2 * windows_.back().ms));
  GANTRY_RETURN_IF_ERROR(js_->ensure_stream(spec).within("creating stream " + st_.stream));
  GANTRY_ASSIGN(ep, st_.redis.endpoint());

  output_ = std::make_unique<Output>(st_, windows_, js_.get(), ep, &flush_ms_);
  EngineOptions eo;
  eo.windows = windows_;
  eo.resolution_ms = st_.resolution.count();
  eo.dedup = st_.dedup;
  eo.max_future_ms = st_.max_future.count();
  eo.shards = shards_;
  eo.max_tokens = static_cast<size_t>(st_.max_token_processors);
  eo.max_queued_batches = static_cast<size_t>(st_.processor_channel_size);
  eo.flush_interval = st_.flush_interval;
  auto& latency = core::metrics::Registry::global()
                      .histogram("realtime_aggregation_processing_latency_seconds",
                                 "from a batch's fetch to its trades applied",
                                 {}, {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1})
                      .with({});
  engine_ = std::make_unique<Engine>(
      eo, [this](std::vector<TokenUpdate>&& u) { output_->add(std::move(u)); },
      [this](std::string_view data, const Status& why) {
        uint64_t n = invalid_logged_.fetch_add(1) + 1;
        if (log_this(n))
          role_log.warn("invalid trade skipped", {{"error", std::string(why.message())},
                                            {"message", std::string(data.substr(0, 200))},
                                            {"invalid_so_far", static_cast<int64_t>(n)}});
      },
      [&latency](size_t, std::chrono::nanoseconds d) { latency.observe(std::chrono::duration<double>(d).count()); });
  engine_->start();
  output_->start();
  register_metrics();
  consumer_ = std::thread([this] { consume(); });
  monitor_ = std::thread([this] { monitor(); });
  role_log.info("trades ready to consume", {{"nats", st_.nats_url},
                                      {"stream", st_.stream},
                                      {"redis", ep.describe()},
                                      {"windows", st_.time_windows},
                                      {"shards", shards_}});
  return {};
}

Status Service::on_worker(boost::asio::io_context& ioc) {
  auto p = std::make_unique<nats::Publisher>(ioc, nats::Publisher::Options{.urls = st_.nats_url, .name = "gantry-trades-http"});
  Status s = p->connect();
  pubs_.emplace_back(&ioc, std::move(p));
  return s.within("connecting to NATS");
}

// State is rebuilt from the stream: every message stored within the longest window, up to the
// last one stored when the replay began. The durable consumer is then made to start right
// after it, so nothing is applied twice and nothing between is missed.
Status Service::replay() {
  GANTRY_ASSIGN(end, js_->last_message(st_.stream));
  const uint64_t last = end.sequence;
  replay_last_ = last;
  uint64_t applied_to = 0;
  auto since = std::chrono::system_clock::now() - Ms(windows_.back().ms);
  // Nothing stored within the longest window: no replay (its first fetch would wait out its
  // timeout to learn that). The same test as the replay consumer's: the server's stored time.
  if (last > 0 && end.stored >= since) {
    GANTRY_ASSIGN(rc, js_->replay_consumer(st_.stream, st_.subject, since));
    auto t0 = std::chrono::steady_clock::now();
    while (!stopping() && applied_to < last) {
      auto batch = rc->fetch(1000, Ms(2000));
      if (!batch.is_ok()) return batch.status().within("replaying the stream");
      if (batch->empty()) break;  // nothing more within the window
      auto owner = std::make_shared<std::vector<nats::Message>>(std::move(*batch));
      RawBatch rb;
      rb.owner = owner;
      for (auto& m : *owner) {
        uint64_t seq = m.stream_sequence();
        if (seq > last) continue;  // after the replay began: the durable consumer's
        applied_to = std::max(applied_to, seq);
        rb.data.push_back(m.data());
        rb.seq.push_back(seq);
      }
      replayed_messages_ += rb.data.size();
      if (!rb.data.empty()) engine_->submit_raw(std::move(rb));
    }
    engine_->wait_idle();
    role_log.info("state rebuilt from the stream",
            {{"messages", static_cast<int64_t>(replayed_messages_.load())},
             {"took_ms", core::log::ms(std::chrono::steady_clock::now() - t0)},
             {"window", windows_.back().name}});
  } else {
    role_log.info("no state to rebuild: nothing stored within the longest window", {{"window", windows_.back().name}});
  }
  return {};
}

void Service::consume() {
  std::unique_ptr<nats::PullConsumer> consumer;
  while (!stopping() && !consumer) {
    Status s = replay();
    if (s.is_ok()) {
      auto c = js_->pull_consumer(st_.stream, st_.subject,
                                  {.durable = st_.durable,
                                   .max_deliver = -1,
                                   .ack_wait = Ms(30'000),
                                   .max_ack_pending = st_.worker_queue_size,
                                   .ack_all = true,
                                   .start_sequence = replay_last_ + 1});
      if (c.is_ok()) consumer = std::move(*c);
      else s = c.status();
    }
    if (!consumer) {
      role_log.error("could not start consuming; retrying", {{"error", s.to_string()}});
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, Ms(2000), [&] { return stop_; });
    }
  }
  if (!consumer) return;
  replayed_ = true;
  while (!stopping()) {
    // A fetch waits for a full batch or fetch_wait: short, so a trade on a quiet stream does
    // not wait for a batch to fill before it is applied.
    auto batch = consumer->fetch(fetch_batch_.load(), st_.fetch_wait);
    if (!batch.is_ok()) {
      fetch_errors_++;
      role_log.warn("fetch failed", {{"error", batch.status().to_string()}});
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, Ms(500), [&] { return stop_; });
      continue;
    }
    if (batch->empty()) continue;
    fetched_ += batch->size();
    // One ack covers the batch (AckAll). Acked before it is applied: what a crash loses here
    // is in the stream and comes back with the replay.
    (void)batch->back().ack_nowait();
    auto owner = std::make_shared<std::vector<nats::Message>>(std::move(*batch));
    RawBatch rb;
    rb.owner = owner;
    rb.data.reserve(owner->size());
    rb.seq.reserve(owner->size());
    for (auto& m : *owner) {
      rb.data.push_back(m.data());
      rb.seq.push_back(m.stream_sequence());
    }
    engine_->submit_raw(std::move(rb));
  }
}

void Service::monitor() {
  uint64_t limit = static_cast<uint64_t>(st_.memory_limit_mb) << 20;
  bool over = false;
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, Ms(1000), [&] { return stop_; })) {
    lk.unlock();
    MemoryStats m = read_memory();
    uint64_t used = m.jemalloc ? m.allocated : m.resident;
    bool now_over = used > limit;
    if (now_over != over) {
      over = now_over;
      over_memory_ = over;
      engine_->set_over_memory_limit(over);
      if (over) {
        role_log.warn("over MEMORY_LIMIT_MB: new tokens are refused, idle ones evicted",
                {{"used_mb", static_cast<int64_t>(used >> 20)}, {"limit_mb", st_.memory_limit_mb}});
      } else {
        role_log.info("back under MEMORY_LIMIT_MB", {{"used_mb", static_cast<int64_t>(used >> 20)}});
      }
    }
    lk.lock();
  }
}

void Service::before_drain() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (consumer_.joinable()) consumer_.join();
  if (monitor_.joinable()) monitor_.join();
}

void Service::on_stop(Ms deadline) {
  // The last reports of every shard, then what is pending goes to Redis.
  if (engine_) engine_->stop();
  if (output_) output_->stop(deadline / 2);
  auto& reg = core::metrics::Registry::global();
  for (const char* s : {"applied", "duplicate", "too_old", "too_new", "invalid", "refused"})
    reg.remove_callback("realtime_aggregation_trades_processed_total", {s});
  for (const char* r : {"idle", "limit", "memory"}) reg.remove_callback("realtime_aggregation_tokens_evicted_total", {r});
  for (const char* k : {"allocated", "active", "resident", "retained", "token_state"})
    reg.remove_callback("realtime_aggregation_memory_bytes", {k});
  for (const char* n : {"realtime_aggregation_active_tokens", "realtime_aggregation_redis_success_rate",
                        "realtime_aggregation_redis_pending_tokens", "realtime_aggregation_memory_limit_exceeded", "realtime_aggregation_nats_publishes_total",
                        "realtime_aggregation_replayed_messages_total", "realtime_aggregation_fetched_messages_total"})
    reg.remove_callback(n);
  engine_.reset();
  output_.reset();
  pubs_.clear();
  js_.reset();
}

namespace {
class TradesFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override { trades::bind(s, &st_); }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Service>(st_));
  }

 private:
  Settings st_;
};
}  // namespace

core::runtime::RoleInfo trades_role() {
  return {"trades", "Trades: per-token rolling-window statistics over a JetStream trade stream, into Redis and NATS",
          [] { return std::make_unique<TradesFactory>(); }};
}

}  // namespace gantry::trades
