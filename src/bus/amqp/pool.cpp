#include "bus/amqp/pool.h"

#include <algorithm>

#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"

namespace gantry::bus::amqp {

using core::Code;
namespace resilience = core::resilience;

namespace {
const core::log::Logger pool_log("amqp.pool");
}

struct Pool::Metrics {
  explicit Metrics(const std::string& name)
      : breaker("rabbitmq:" + name, resilience::BreakerRegistry::preset("rabbitmq")) {
    auto& r = core::metrics::Registry::global();
    auto& dials = r.counter("amqp_pool_dials_total", "Connections dialled by the AMQP pool, by result.", {"pool", "result"});
    dial_ok = &dials.with({name, "ok"});
    dial_failed = &dials.with({name, "failed"});
    retired = &r.counter("amqp_pool_retired_total", "Pooled AMQP connections closed, by reason.", {"pool", "reason"});
    auto& confirms = r.counter("amqp_publish_confirms_total",
                               "Publishes through the AMQP pool by outcome: ack, nack (refused), failed.", {"pool", "result"});
    ack = &confirms.with({name, "ack"});
    nack = &confirms.with({name, "nack"});
    failed = &confirms.with({name, "failed"});
    this->name = name;
  }
  resilience::CircuitBreaker breaker;
  core::metrics::Counter *dial_ok, *dial_failed, *ack, *nack, *failed;
  core::metrics::Family<core::metrics::Counter>* retired;
  std::string name;
};

Pool::Pool(PoolOptions o) : o_(std::move(o)), m_(std::make_unique<Metrics>(o_.name)) {
  if (o_.channel.connection_name == "gantry") o_.channel.connection_name = "gantry-" + o_.name;
  o_.min_open = std::max(0, o_.min_open);
  o_.max_open = std::max({1, o_.max_open, o_.min_open});
}

Result<std::unique_ptr<Pool>> Pool::open(PoolOptions o) {
  std::unique_ptr<Pool> p(new Pool(std::move(o)));
  for (int i = 0; i < p->o_.min_open; ++i) {
    {
      std::lock_guard lk(p->mu_);
      ++p->open_;
    }
    auto ch = p->dial();
    if (!ch.is_ok()) {
      std::lock_guard lk(p->mu_);
      --p->open_;
      if (i == 0) return ch.status();
      break;  // the maintainer fills up later
    }
    std::lock_guard lk(p->mu_);
    p->idle_.push_back({std::move(*ch), std::chrono::steady_clock::now()});
  }
  auto& reg = core::metrics::Registry::global();
  for (const char* state : {"idle", "in_use"}) {
    std::string st = state;
    reg.gauge_callback("amqp_pool_connections", "Connections of the AMQP pool, by state.", {"pool", "state"},
                       {p->o_.name, st}, [pp = p.get(), st] {
                         PoolStats s = pp->stats();
                         return static_cast<double>(st == "idle" ? s.idle : s.in_use);
                       });
  }
  p->maintainer_ = std::thread([pp = p.get()] { pp->maintain(); });
  return p;
}

Pool::~Pool() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (maintainer_.joinable()) maintainer_.join();
  auto& reg = core::metrics::Registry::global();
  reg.remove_callback("amqp_pool_connections", {o_.name, "idle"});
  reg.remove_callback("amqp_pool_connections", {o_.name, "in_use"});
}

Result<std::unique_ptr<Channel>> Pool::dial() {
  resilience::RetryPolicy p;
  p.name = "amqp_dial";
  p.max_retries = o_.dial_retries;
  p.base_delay = o_.dial_wait;
  p.max_delay = o_.dial_wait;
  p.multiplier = 1.0;
  p.jitter = 0;
  p.timeout = o_.dial_wait * (o_.dial_retries + 1) + o_.channel.timeout * (o_.dial_retries + 1);
  resilience::RetryOptions ro;
  ro.operation = "amqp.dial";
  // An open breaker is worth waiting out here: the dial budget is the spec's, not the breaker's.
  ro.retryable = [](const Status& s) { return resilience::is_retryable(s) || s.code() == Code::kCircuitOpen; };
  return resilience::retry(p, [&] { return dial_once(); }, ro);
}

Result<std::unique_ptr<Channel>> Pool::dial_once() {
  auto r = m_->breaker.call([&] { return Channel::connect(o_.url, o_.channel); });
  std::lock_guard lk(mu_);
  ++dials_;
  if (r.is_ok()) {
    m_->dial_ok->inc();
  } else {
    ++dial_failures_;
    m_->dial_failed->inc();
  }
  return r;
}

Result<std::unique_ptr<Channel>> Pool::acquire() {
  std::unique_lock lk(mu_);
  auto deadline = std::chrono::steady_clock::now() + o_.acquire_timeout;
  for (;;) {
    if (stopping_) return Status(Code::kUnavailable, "pool closed", "amqp.pool");
    while (!idle_.empty()) {
      Idle it = std::move(idle_.back());
      idle_.pop_back();
      if (it.ch->alive()) return std::move(it.ch);
      --open_;
      ++retired_;
      m_->retired->with({o_.name, "dead"}).inc();
    }
    if (open_ < o_.max_open) {
      ++open_;
      lk.unlock();
      auto ch = dial();
      if (!ch.is_ok()) {
        lk.lock();
        --open_;
        cv_.notify_one();
      }
      return ch;
    }
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= o_.max_open)
      return Status(Code::kDeadlineExceeded,
                    "all " + std::to_string(o_.max_open) + " connections busy for " +
                        std::to_string(o_.acquire_timeout.count()) + " ms",
                    "amqp.pool");
  }
}

void Pool::give_back(std::unique_ptr<Channel> ch) {
  if (!ch->alive()) return retire(std::move(ch), "failed");
  {
    std::lock_guard lk(mu_);
    idle_.push_back({std::move(ch), std::chrono::steady_clock::now()});
  }
  cv_.notify_one();
}

void Pool::retire(std::unique_ptr<Channel> ch, const char* reason) {
  ch.reset();
  {
    std::lock_guard lk(mu_);
    --open_;
    ++retired_;
  }
  m_->retired->with({o_.name, reason}).inc();
  cv_.notify_all();
}

Status Pool::run(const std::function<Status(Channel&)>& fn) {
  GANTRY_ASSIGN(ch, acquire());
  Status s = fn(*ch);
  give_back(std::move(ch));
  return s;
}

std::vector<Status> Pool::publish_batch(std::span<const Message> messages) {
  auto ch = acquire();
  if (!ch.is_ok()) {
    m_->failed->inc(messages.size());
    return std::vector<Status>(messages.size(), ch.status());
  }
  std::vector<Status> out = (*ch)->publish_batch(messages);
  for (const Status& s : out) {
    if (s.is_ok()) m_->ack->inc();
    else if (s.code() == Code::kResourceExhausted) m_->nack->inc();
    else m_->failed->inc();
  }
  give_back(std::move(*ch));  // a channel that failed is closed: give_back retires it
  return out;
}

Status Pool::publish(const std::string& exchange, const std::string& routing_key, std::string_view body,
                     const std::string& content_type) {
  Message m{exchange, routing_key, std::string(body), content_type};
  return std::move(publish_batch(std::span<const Message>(&m, 1)).front());
}

PoolStats Pool::stats() const {
  std::lock_guard lk(mu_);
  PoolStats s;
  s.open = open_;
  s.idle = static_cast<int>(idle_.size());
  s.in_use = open_ - s.idle;
  s.dials = dials_;
  s.dial_failures = dial_failures_;
  s.retired = retired_;
  return s;
}

void Pool::maintain() {
  // Often enough to send every heartbeat in time (the broker allows two missed).
  auto every = std::chrono::milliseconds(o_.channel.heartbeat_s > 0 ? o_.channel.heartbeat_s * 1000 / 4 : 1000);
  every = std::clamp(every, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, every, [this] { return stopping_; })) {
    auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<std::unique_ptr<Channel>, const char*>> drop;
    // Idle channels are the pool's alone: serviced here, under the lock, without blocking
    // (service() does not wait).
    for (auto it = idle_.begin(); it != idle_.end();) {
      const char* reason = nullptr;
      if (!it->ch->service()) reason = "dead";
      else if (now - it->ch->opened_at() > o_.max_lifetime) reason = "lifetime";
      else if (now - it->since > o_.max_idle && open_ - static_cast<int>(drop.size()) > o_.min_open) reason = "idle";
      if (reason) {
        drop.emplace_back(std::move(it->ch), reason);
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
    int missing = o_.min_open - (open_ - static_cast<int>(drop.size()));
    lk.unlock();
    for (auto& [ch, reason] : drop) retire(std::move(ch), reason);
    for (int i = 0; i < missing; ++i) {
      {
        std::lock_guard g(mu_);
        if (stopping_) break;
        ++open_;
      }
      auto ch = dial_once();  // one try per round: the next round tries again
      std::lock_guard g(mu_);
      if (ch.is_ok()) {
        idle_.push_back({std::move(*ch), std::chrono::steady_clock::now()});
        cv_.notify_one();
      } else {
        --open_;
        pool_log.warn("cannot refill the pool", {{"pool", o_.name}, {"error", ch.status().to_string()}});
        break;
      }
    }
    lk.lock();
  }
  idle_.clear();
}

}  // namespace gantry::bus::amqp
