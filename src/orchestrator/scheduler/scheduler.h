// The heart of `gantry orchestrator`: turns domain changes into kick messages, on one instance
// at a time.
//
// One thread (the scheduler's) owns the leader lock session and decides every kick; the
// Listener's thread only queues notifications for it. Each turn of its loop (at least every
// leader_check):
//   1. leadership: a standby tries the session advisory lock every leader_retry; the leader
//      checks its lock session every turn (no round trip: a terminated session's goodbye is
//      read from the socket) and pings it every second (a frozen server). A lost session ends
//      leadership at once: no kick is published without holds() true just before it.
//   2. reconcile (at start, on becoming leader, every reconcile_interval, and after the
//      listener lost its session): the enabled set is read in full and replaces the cache.
//   3. notifications update the cache: a domain inserted enabled, or updated from disabled
//      to enabled, wants a kick.
//   4. the leader publishes one kick for everything that wanted one this turn (a burst of
//      inserts is one kick), with publisher confirms. A full queue (x-max-length 1,
//      reject-publish) is "already pending": counted, not an error. Any other failure keeps
//      the kick owed and it is retried with the reconnect backoff until confirmed or pending.
// Its PostgreSQL sessions are named (application_name) gantry-orchestrator-listen/<schema> and
// gantry-orchestrator-lock/<schema>, so pg_stat_activity tells them apart.
// The kick rule on a full read (start, takeover) is the original's: a non-empty enabled set
// kicks. On a periodic or after-loss read, only enabled domains the cache did not have kick.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "bus/amqp/pool.h"
#include "core/status.h"
#include "orchestrator/domain.h"
#include "store/postgres/listener.h"
#include "store/postgres/pool.h"

namespace gantry::orchestrator {

struct SchedulerSettings {
  std::string db;                     // libpq connection string, for the listener and the lock session
  std::string schema = "public";      // notifications from cptm8domain of other schemas are ignored
  std::vector<std::string> services;  // the ring; the kick goes to services[0]
  std::chrono::milliseconds reconcile_interval{900'000};
  int64_t leader_lock_key = 0x6370746d386f7263;  // "cptm8orc"; the role derives one per schema
  std::chrono::milliseconds leader_retry{1000};
  std::chrono::milliseconds leader_check{100};
};

class Scheduler {
 public:
  Scheduler(SchedulerSettings s, store::postgres::Pool& db, bus::amqp::Pool& amqp);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // LISTENs (failing when PostgreSQL cannot be had), then runs the loop on its thread.
  core::Status start();
  void stop();

  bool leader() const { return leader_.load(); }
  bool database_ok() const { return listener_ && listener_->listening() && db_ok_.load(); }
  bool rabbitmq_ok() const { return amqp_ok_.load(); }
  size_t enabled_domains() const { return enabled_count_.load(); }

 private:
  struct Event {
    DomainNotice notice;
    std::chrono::steady_clock::time_point received;
  };
  enum class Full { kNo, kStart, kCatchUp };

  void loop();
  void keep_leadership();
  bool still_leader();
  void reconcile(Full how);
  void apply(const Event& e);
  void kick();
  void check_rabbitmq();

  SchedulerSettings s_;
  store::postgres::Pool& db_;
  bus::amqp::Pool& amqp_;
  std::unique_ptr<store::postgres::Listener> listener_;
  std::unique_ptr<store::postgres::Connection> lock_;  // the loop thread's

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;  // bounded: beyond kMaxEvents they are dropped for a full read
  bool missed_ = false;       // notifications may be lost: read everything again
  bool stopping_ = false;
  std::thread thread_;

  // The loop thread's own state.
  std::unordered_set<std::string> enabled_;
  bool want_kick_ = false;
  Full owed_ = Full::kNo;  // a full read that failed (or was asked for) and is still owed
  int64_t want_since_us_ = 0;  // the earliest trigger time among what wants the kick
  std::chrono::steady_clock::time_point next_kick_try_{}, next_reconcile_{}, next_try_lock_{}, next_ping_{},
      next_amqp_check_{};
  int kick_failures_ = 0;

  std::atomic<bool> leader_{false}, db_ok_{true}, amqp_ok_{false};
  std::atomic<size_t> enabled_count_{0};
  static constexpr size_t kMaxEvents = 100'000;
};

}  // namespace gantry::orchestrator
