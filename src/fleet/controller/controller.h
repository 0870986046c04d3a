// The Fleet controller role (`gantry controller`): the versioned configuration and the
// registered agents. One class, defined in three files:
//   controller.cpp  start and stop, routes, authentication, taking in what other controllers
//                   sharing the store changed; the role's settings
//   config_api.cpp  publishing a version, serving it to polls (ETag, long poll), history, rollback
//   agents_api.cpp  registration, heartbeats, listing and administering agents
//
// Reads never touch the database: the latest configuration is an immutable snapshot swapped
// atomically (latest.h), and agents are found by the SHA-256 of their token in memory
// (agents.h). Writes go to the store first and to memory after they committed, so a failed
// write changes nothing. Heartbeats are group-committed (group_commit.h) and answered once
// durable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bus/redis/redis.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/thread_pool.h"
#include "fleet/controller/agents.h"
#include "fleet/controller/group_commit.h"
#include "fleet/controller/latest.h"
#include "fleet/controller/long_poll.h"
#include "fleet/controller/store.h"
#include "fleet/protocol.h"

namespace gantry::fleet::controller {

namespace http = core::http;
using core::Status;

struct Settings {
  Listen listen = Listen::on_port(8080);
  std::string database_path = "./data/data.db";
  std::string database_url;
  std::string admin_user = "admin";
  std::string admin_password = "password";
  std::string agent_user = "agent";
  std::string agent_password = "agentpass";
  int poll_interval = 5;  // the original's default
  RedisPush redis;
  std::chrono::milliseconds long_poll_max{300'000};
  std::chrono::milliseconds stale_after{90'000};
  std::chrono::milliseconds offline_after{300'000};
  std::chrono::milliseconds refresh_interval{1'000};
  int heartbeat_batch = 4096;
  // Longest a database statement may take (PostgreSQL: statement_timeout and the client's own
  // deadline; a frozen server fails writes with 503 after about this).
  std::chrono::milliseconds db_timeout{5'000};
  http::ServerOptions http;
};

class Controller final : public core::runtime::HttpRole {
 public:
  explicit Controller(Settings s);
  ~Controller() override;
  bool ready() const override { return store_ != nullptr; }

 protected:
  Status on_start() override;
  void before_drain() override;
  void on_stop(std::chrono::milliseconds) override;

 private:
  // ---- controller.cpp: routes, auth, helpers, the refresh from a shared store ------------

  void routes();

  // A handler that may touch the store, run on the store pool (the Request stays valid until
  // the answer is sent). A full pool is answered 503 at once.
  http::AsyncHandler offload(std::function<void(const http::Request&, http::Response&)> h);
  bool basic(const http::Request& q, http::Response& out, const std::string& user, const std::string& pass,
             std::string* who = nullptr);
  bool admin(const http::Request& q, http::Response& out, std::string* who = nullptr);
  static void bearer_error(http::Response& out, std::string_view message);

  // The agent presenting the request's token, or nullptr after answering 401. A token not in
  // memory may have been issued by another controller sharing the database: with
  // `needs_lookup` given, that case returns nullptr with *needs_lookup set and nothing
  // answered, so the caller can look it up off the HTTP thread (lookup_token) and come back.
  std::shared_ptr<Agent> bearer(const http::Request& q, http::Response& out, bool* needs_lookup = nullptr);

  // On the store pool: remembers the agent holding the request's token, if the store knows it.
  void lookup_token(const http::Request& q);

  // ---- config_api.cpp: publishing and serving the configuration ---------------------------

  void post_config(const http::Request& q, http::Response& out);

  // Stores a new version and tells everyone; answers the failure in `out` and returns null
  // when the store refused it.
  std::shared_ptr<const Snapshot> publish(std::string data, const std::string& who, http::Response& out);

  // Makes `snap` the latest and wakes everyone waiting for it.
  void adopt(std::shared_ptr<const Snapshot> snap, bool push);

  // The hot path: agents polling with the etag they have. No database, no allocation for the
  // 304, the agent map read under a shared lock.
  bool get_config(const http::Request& q, http::Response& out, const std::function<http::Responder()>& defer,
                  bool from_pool = false);
  static bool etag_matches(std::string_view given, std::string_view etag);
  void answer_config(const Snapshot& s, int interval, http::Response& out);
  void not_modified(int interval, http::Response& out);
  void history(const http::Request& q, http::Response& out);

  // A rollback is a new version carrying an earlier one's data: history stays append-only and
  // every agent sees a new etag, so it applies like any change.
  void rollback(const http::Request& q, http::Response& out);

  // ---- agents_api.cpp: registration, heartbeats, the agents' administration -------------

  void do_register(const http::Request& q, http::Response& out);
  void heartbeat(const http::Request& q, http::Responder resp, bool from_pool = false);
  Census census() { return agents_.census(latest_.load()->rec.etag, std::chrono::system_clock::now()); }

  void agent_json(const Agent& a, const std::string& latest, core::WallTime now, core::json::Writer& w) const;
  void list_agents(const http::Request& q, http::Response& out);
  void get_agent(const http::Request& q, http::Response& out);
  void set_interval(const http::Request& q, http::Response& out);
  void rotate(const http::Request& q, http::Response& out);
  void delete_agent(const http::Request& q, http::Response& out);

  // Unique per version and stable across restarts: hex length of the data, then the wall
  // clock in nanoseconds, kept increasing even if the clock steps back.
  std::string new_etag(const std::string& data);
  void store_failure(http::Response& out, std::string_view what, const Status& s);

  // With a shared PostgreSQL database another controller may publish (adopt its versions),
  // rotate a token or delete an agent (the old token stops working here too), all within
  // refresh_interval.
  void refresh_loop();
  void refresh_agents();

  Settings st_;
  Agents agents_;
  core::metrics::Family<core::metrics::Counter>& polls_;
  core::metrics::Counter &polls_200_, &polls_304_, &polls_401_;
  core::metrics::Counter& heartbeats_;
  core::metrics::Counter& heartbeat_failures_;
  core::metrics::Histogram& batch_size_;
  core::metrics::Family<core::metrics::Counter>& pushes_;

  std::mutex store_mu_;  // the store is single-threaded; writes are rare except heartbeats
  std::unique_ptr<Store> store_;
  bool shared_store_ = false;
  std::string agents_since_;  // refresh_agents' high water (the refresher thread's)

  Latest latest_;
  std::atomic<int64_t> last_etag_ns_{0};

  std::unique_ptr<LongPollHub> hub_;
  std::unique_ptr<GroupCommit<HeartbeatRow>> commit_;
  std::unique_ptr<bus::redis::Connection> redis_;
  std::unique_ptr<core::ThreadPool> publisher_;
  std::unique_ptr<core::ThreadPool> store_pool_;  // runs every handler that touches the store

  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  bool stopping_ = false;
  std::thread refresher_;
};

}  // namespace gantry::fleet::controller
