#include "orchestrator/scheduler/scheduler.h"

#include <cmath>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/retry.h"
#include "orchestrator/schema.h"
#include "orchestrator/topology.h"

namespace gantry::orchestrator {

namespace pg = store::postgres;
using core::Code;
using core::Status;
using Clock = std::chrono::steady_clock;

namespace {

const core::log::Logger scheduler_log("orchestrator");

struct SchedulerMetrics {
  core::metrics::Counter &publishes, &confirmed, &pending, &failed, &notifications, &bad_notifications;
  core::metrics::Family<core::metrics::Counter>& reconciles;
  core::metrics::Histogram& notify_to_confirm;
  core::metrics::Histogram& reconcile_seconds;
  core::metrics::Gauge &leader, &enabled;
  core::metrics::Counter& leader_changes;

  static SchedulerMetrics& get() {
    static SchedulerMetrics m = [] {
      auto& r = core::metrics::Registry::global();
      auto& kicks = r.counter("orchestrator_kick_outcomes_total",
                              "Kick messages by the broker's answer: confirmed, already_pending (queue full), failed",
                              {"outcome"});
      return SchedulerMetrics{
          r.counter("orchestrator_publishes_total", "Kick messages published (each awaits its confirm)").get(),
          kicks.with({"confirmed"}),
          kicks.with({"already_pending"}),
          kicks.with({"failed"}),
          r.counter("orchestrator_notifications_total", "Domain change notifications received").get(),
          r.counter("orchestrator_notifications_invalid_total", "Notifications whose payload could not be read").get(),
          r.counter("orchestrator_reconciles_total", "Full reads of the enabled domains, by reason", {"reason"}),
          r.histogram("orchestrator_notify_to_confirm_seconds",
                      "From the domain change (trigger time) to the kick's confirm",
                      {}, {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
              .get(),
          r.histogram("orchestrator_db_query_duration_seconds",
                      "Statements of the orchestrator: queued to answered, by query", {"query"})
              .with({"enabled_set"}),
          r.gauge("orchestrator_leader", "1 while this instance holds the leader lock").get(),
          r.gauge("orchestrator_enabled_domains", "Enabled domains in the cache").get(),
          r.counter("orchestrator_leader_changes_total", "Times this instance became or stopped being leader").get(),
      };
    }();
    return m;
  }
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Scheduler::Scheduler(SchedulerSettings s, pg::Pool& db, bus::amqp::Pool& amqp)
    : s_(std::move(s)), db_(db), amqp_(amqp) {
  SchedulerMetrics::get();
}

Scheduler::~Scheduler() { stop(); }

Status Scheduler::start() {
  pg::Listener::Handlers h;
  h.on_notify = [this](std::string_view, std::string_view payload) {
    auto n = parse_notice(payload);
    if (!n.is_ok()) {
      SchedulerMetrics::get().bad_notifications.inc();
      scheduler_log.warn("notification ignored", {{"error", n.status().to_string()}});
      return;
    }
    if (!n->schema.empty() && n->schema != s_.schema) return;  // another deployment's table
    SchedulerMetrics::get().notifications.inc();
    std::lock_guard lk(mu_);
    if (events_.size() >= kMaxEvents) {
      events_.clear();  // nothing is lost: the full read that follows sees every change
      missed_ = true;
    } else {
      events_.push_back({std::move(*n), Clock::now()});
    }
    cv_.notify_one();
  };
  h.on_missed = [this](const Status& why) {
    scheduler_log.warn("domain notifications may have been missed; re-reading", {{"reason", why.to_string()}});
    std::lock_guard lk(mu_);
    missed_ = true;
    cv_.notify_one();
  };
  pg::Listener::Settings ls;
  ls.pg.application_name = ("gantry-orchestrator-listen/" + s_.schema).substr(0, 63);
  listener_ = std::make_unique<pg::Listener>(s_.db, std::vector<std::string>{kNotifyChannel}, std::move(h), ls);
  GANTRY_RETURN_IF_ERROR(listener_->start().within("listening for domain changes"));

  pg::Options lo;
  lo.application_name = ("gantry-orchestrator-lock/" + s_.schema).substr(0, 63);
  lo.statement_timeout = std::chrono::milliseconds(2000);
  lo.call_timeout = std::chrono::milliseconds(3000);
  GANTRY_ASSIGN(lock, pg::Connection::connect(s_.db, lo));
  lock_ = std::move(lock);
  lock_->on_session_lost([this](const Status& why, const std::set<int64_t>& locks) {
    if (!locks.count(s_.leader_lock_key) || !leader_.exchange(false)) return;
    SchedulerMetrics::get().leader.set(0);
    SchedulerMetrics::get().leader_changes.inc();
    scheduler_log.error("leadership lost with the lock session; no longer publishing", {{"reason", why.to_string()}});
  });
  check_rabbitmq();
  thread_ = std::thread([this] { loop(); });
  return {};
}

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (listener_) listener_->stop();
  if (lock_ && leader_.exchange(false)) {
    (void)lock_->unlock(s_.leader_lock_key);  // the standby need not wait for the session to end
    SchedulerMetrics::get().leader.set(0);
    scheduler_log.info("leadership released");
  }
  lock_.reset();
}

void Scheduler::loop() {
  // A standby reads the enabled set too, so its cache and /ready are right before it leads;
  // an instance that leads at once reads it on becoming leader.
  keep_leadership();
  if (!leader_) reconcile(Full::kStart);
  for (;;) {
    std::deque<Event> events;
    bool missed = false;
    {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, s_.leader_check, [this] { return stopping_ || !events_.empty() || missed_; });
      if (stopping_) return;
      events.swap(events_);
      std::swap(missed, missed_);
    }
    if (missed && owed_ == Full::kNo) owed_ = Full::kCatchUp;
    keep_leadership();
    auto now = Clock::now();
    // A failed full read is retried every 5 s (next_reconcile_), not on every turn.
    if (owed_ != Full::kNo && (missed || now >= next_reconcile_)) reconcile(owed_);
    else if (now >= next_reconcile_) reconcile(Full::kNo);
    for (auto& e : events) apply(e);
    if (now >= next_amqp_check_) check_rabbitmq();
    if (want_kick_ && !leader_) want_kick_ = false;  // the leader kicks; a standby only keeps its cache
    if (want_kick_ && Clock::now() >= next_kick_try_) kick();
  }
}

bool Scheduler::still_leader() {
  if (!leader_) return false;
  if (!lock_->holds(s_.leader_lock_key)) {
    if (leader_.exchange(false)) {
      SchedulerMetrics::get().leader.set(0);
      SchedulerMetrics::get().leader_changes.inc();
      scheduler_log.error("leadership lost: the lock session ended; no longer publishing");
    }
    return false;
  }
  return true;
}

void Scheduler::keep_leadership() {
  auto now = Clock::now();
  if (leader_) {
    if (!still_leader()) {
      next_try_lock_ = now + s_.leader_retry;
      return;
    }
    if (now >= next_ping_) {
      // A frozen server answers nothing and keepalives come from its kernel: only a ping with a
      // deadline tells. A failed ping reports the session lost (on_session_lost above).
      (void)lock_->query("SELECT 1");
      next_ping_ = now + std::chrono::seconds(1);
    }
    return;
  }
  if (now < next_try_lock_) return;
  next_try_lock_ = now + s_.leader_retry;
  auto got = lock_->try_lock(s_.leader_lock_key);
  if (!got.is_ok()) {
    scheduler_log.warn("cannot try the leader lock", {{"error", got.status().to_string()}});
    return;
  }
  if (!*got) return;
  leader_ = true;
  next_ping_ = now + std::chrono::seconds(1);
  SchedulerMetrics::get().leader.set(1);
  SchedulerMetrics::get().leader_changes.inc();
  scheduler_log.info("leader: this instance now publishes kicks", {{"lock_key", s_.leader_lock_key}});
  reconcile(Full::kStart);  // a new leader starts as the original did: a non-empty set kicks
}

void Scheduler::reconcile(Full how) {
  auto t0 = Clock::now();
  next_reconcile_ = t0 + s_.reconcile_interval;
  auto job = [](pg::Connection& c) -> core::Result<std::vector<std::string>> {
    GANTRY_ASSIGN(rows, c.query("SELECT id::text FROM cptm8domain WHERE enabled"));
    std::vector<std::string> ids;
    ids.reserve(static_cast<size_t>(rows.size()));
    for (int i = 0; i < rows.size(); ++i) ids.emplace_back(rows.get(i, 0));
    return ids;
  };
  auto ids = db_.run(job);
  SchedulerMetrics::get().reconcile_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  const char* reason = how == Full::kStart ? "start" : how == Full::kCatchUp ? "missed_notifications" : "interval";
  SchedulerMetrics::get().reconciles.with({reason}).inc();
  if (!ids.is_ok()) {
    db_ok_ = false;
    scheduler_log.warn("cannot read the enabled domains; retrying in 5 s", {{"error", ids.status().to_string()}});
    next_reconcile_ = t0 + std::min<std::chrono::milliseconds>(s_.reconcile_interval, std::chrono::seconds(5));
    // What was to be caught up still is; a start read owed stays one (it kicks on success).
    if (how == Full::kStart || owed_ == Full::kNo) owed_ = how == Full::kNo ? Full::kCatchUp : how;
    return;
  }
  db_ok_ = true;
  owed_ = Full::kNo;
  std::unordered_set<std::string> fresh(ids->begin(), ids->end());
  bool kick_now = how == Full::kStart ? !fresh.empty() : false;
  for (auto& id : fresh)
    if (!enabled_.count(id)) kick_now = true;  // enabled while nobody listened
  enabled_.swap(fresh);
  enabled_count_ = enabled_.size();
  SchedulerMetrics::get().enabled.set(static_cast<double>(enabled_.size()));
  if (kick_now && leader_) {
    if (!want_kick_) want_since_us_ = 0;  // no trigger time: a read, not a notification
    want_kick_ = true;
  }
  scheduler_log.info("enabled domains read", {{"reason", reason}, {"enabled", static_cast<int64_t>(enabled_.size())}, {"kick", kick_now && leader_.load()}});
}

void Scheduler::apply(const Event& e) {
  const DomainNotice& n = e.notice;
  bool was = enabled_.count(n.id) > 0;
  if (n.op != "DELETE" && n.enabled) {
    if (!was) {
      enabled_.insert(n.id);
      // Inserted enabled, or enabled now: the ring starts (or the kick is already pending).
      if (!want_kick_ || (n.ts_us && (want_since_us_ == 0 || n.ts_us < want_since_us_))) want_since_us_ = n.ts_us;
      want_kick_ = true;
    }
  } else if (was) {
    enabled_.erase(n.id);
  }
  enabled_count_ = enabled_.size();
  SchedulerMetrics::get().enabled.set(static_cast<double>(enabled_.size()));
}

void Scheduler::kick() {
  if (!still_leader()) {
    want_kick_ = false;
    return;
  }
  auto& m = SchedulerMetrics::get();
  const std::string& svc = s_.services.front();
  m.publishes.inc();
  Status s = amqp_.publish(kExchange, scan_key(svc), kick_body(svc, std::chrono::system_clock::now()));
  if (s.is_ok() || s.code() == Code::kResourceExhausted) {
    bool pending = !s.is_ok();
    (pending ? m.pending : m.confirmed).inc();
    double latency = want_since_us_ ? std::max<double>(0, static_cast<double>(now_us() - want_since_us_) / 1e6) : -1;
    if (latency >= 0) m.notify_to_confirm.observe(latency);
    if (pending) scheduler_log.info("kick already pending: the queue holds one", {{"queue", queue_of(svc)}});
    else if (latency >= 0) scheduler_log.info("kick published", {{"routing_key", scan_key(svc)}, {"latency_ms", core::log::ms(std::chrono::duration<double>(latency))}});
    else scheduler_log.info("kick published", {{"routing_key", scan_key(svc)}, {"after", "a full read"}});
    want_kick_ = false;
    kick_failures_ = 0;
    amqp_ok_ = true;
    return;
  }
  m.failed.inc();
  amqp_ok_ = false;
  ++kick_failures_;
  auto policy = core::resilience::RetryPolicy::reconnect();
  auto wait = policy.nominal_delay(std::min(kick_failures_, 16));
  next_kick_try_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(wait);
  if (kick_failures_ == 1 || kick_failures_ % 20 == 0)
    scheduler_log.warn("kick not published; retrying", {{"error", s.to_string()}, {"attempts", kick_failures_}});
}

void Scheduler::check_rabbitmq() {
  next_amqp_check_ = Clock::now() + std::chrono::seconds(5);
  Status s = amqp_.run([](bus::amqp::Channel& ch) {
    return ch.service() ? Status() : Status(Code::kUnavailable, "connection closed", "amqp");
  });
  amqp_ok_ = s.is_ok();
}

}  // namespace gantry::orchestrator
