// `gantry controller`: the versioned configuration and the registered agents.
//
// Reads never touch the database: the latest configuration is an immutable snapshot swapped
// atomically, and agents are found by the SHA-256 of their token in an in-memory map. Writes
// go to the store first and to memory after they committed, so a failed write changes
// nothing. Heartbeats are group-committed (group_commit.h) and answered once durable.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include <boost/json.hpp>

#include "bus/redis/redis.h"
#include "core/clock.h"
#include "core/http/auth.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/thread_pool.h"
#include "fleet/controller/group_commit.h"
#include "fleet/controller/long_poll.h"
#include "fleet/controller/store.h"
#include "fleet/protocol.h"
#include "fleet/roles.h"

namespace gantry::fleet::controller {

namespace {

using namespace std::chrono_literals;
namespace http = core::http;
namespace json = boost::json;
using core::Status;

const core::log::Logger controller_log("controller");

struct Settings {
  Listen listen = Listen::on_port(8080);
  std::string database_path = "./data/data.db";
  std::string database_url;
  std::string admin_user = "admin";
  std::string admin_password = "password";
  std::string agent_user = "agent";
  std::string agent_password = "agentpass";
  int poll_interval = 5;  // the original's default
  bool redis_enabled = false;
  std::string redis_host = "localhost";
  int redis_port = 6379;
  std::string redis_password;
  int redis_db = 0;
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


// The latest configuration and the parts of its answers that never change.
struct Snapshot {
  ConfigRecord rec;
  std::string body_head;  // {"id":…,"etag":…,"config":…,"poll_interval_seconds":
};

std::shared_ptr<const Snapshot> make_snapshot(ConfigRecord rec) {
  auto s = std::make_shared<Snapshot>();
  // Left open after the last key: each answer appends its interval and the closing brace.
  core::json::Writer(s->body_head)
      .object()
      .field("id", rec.id)
      .field("etag", rec.etag)
      .field_raw("config", rec.config_data)
      .key("poll_interval_seconds");
  s->rec = std::move(rec);
  return s;
}

// The latest configuration, read on every poll by every HTTP thread. A reader keeps a
// per-thread reference and re-reads only when the generation moved, so the common read is one
// load of a counter that is written once per published version.
class Latest {
 public:
  void store(std::shared_ptr<const Snapshot> s) {
    std::lock_guard lk(mu_);
    cur_ = std::move(s);
    gen_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const Snapshot> load() const {
    std::lock_guard lk(mu_);
    return cur_;
  }
  // Valid until this thread's next call.
  const Snapshot& cached() const {
    thread_local struct {
      uint64_t owner = 0, gen = 0;
      std::shared_ptr<const Snapshot> snap;
    } c;
    uint64_t g = gen_.load(std::memory_order_acquire);
    if (c.owner != id_ || c.gen != g || !c.snap) {
      c.snap = load();
      c.owner = id_;
      c.gen = g;
    }
    return *c.snap;
  }

 private:
  static inline std::atomic<uint64_t> next_id_{1};
  const uint64_t id_ = next_id_.fetch_add(1);  // not the address: a later instance may reuse it
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> cur_;
  std::atomic<uint64_t> gen_{1};
};

// One registered agent. Identity is fixed at registration; the rest changes under mu.
struct Agent {
  std::string id, name, hostname, version, start_time, created_at;
  std::atomic<int> interval{0};  // 0 = the global default
  mutable std::mutex mu;
  std::string token_hash, reported_status, last_heartbeat, last_config_version, updated_at;
  core::WallTime last_contact{};
};

class Controller final : public core::runtime::HttpRole {
 public:
  explicit Controller(Settings s)
      : HttpRole("controller", s.http),
        st_(std::move(s)),
        polls_(core::metrics::Registry::global().counter("fleet_config_polls_total",
                                                         "GET /config answers by status", {"status"})),
        polls_200_(polls_.with({"200"})),
        polls_304_(polls_.with({"304"})),
        polls_401_(polls_.with({"401"})),
        heartbeats_(core::metrics::Registry::global().counter("fleet_heartbeats_total", "heartbeats persisted").with({})),
        heartbeat_failures_(core::metrics::Registry::global()
                                .counter("fleet_heartbeat_failures_total", "heartbeats the store failed to persist (answered 503)")
                                .with({})),
        batch_size_(core::metrics::Registry::global()
                        .histogram("fleet_heartbeat_batch_rows", "heartbeats per group commit", {},
                                   {1, 4, 16, 64, 256, 1024, 4096})
                        .with({})),
        pushes_(core::metrics::Registry::global().counter("fleet_push_total", "Redis push publications by result",
                                                          {"result"})) {
    routes();
  }

  ~Controller() override {
    auto& reg = core::metrics::Registry::global();
    reg.remove_callback("fleet_agents_registered");
    reg.remove_callback("fleet_long_polls_held");
    for (const char* status : {"online", "stale", "offline"}) reg.remove_callback("fleet_agents", {status});
    reg.remove_callback("fleet_agents_lagging");
  }

  bool ready() const override { return store_ != nullptr; }

 protected:
  Status on_start() override {
    if (!st_.database_url.empty()) {
      GANTRY_ASSIGN(s, open_postgres_store(st_.database_url, st_.db_timeout));
      store_ = std::move(s);
      shared_store_ = true;
    } else {
      GANTRY_ASSIGN(s, open_sqlite_store(st_.database_path));
      store_ = std::move(s);
    }
    GANTRY_RETURN_IF_ERROR(store_->migrate().within("migrating " + store_->describe()));
    GANTRY_ASSIGN(latest, store_->latest_config());
    if (!latest) {
      ConfigRecord seed{0, new_etag("{}"), "{}", "system", core::rfc3339(std::chrono::system_clock::now())};
      GANTRY_RETURN_IF_ERROR(store_->insert_config(seed));
      latest = seed;
    }
    latest_.store(make_snapshot(std::move(*latest)));
    GANTRY_ASSIGN(agents, store_->load_agents());
    for (AgentRecord& a : agents) remember(a);

    // Handlers that touch the store run here, never on an HTTP thread: a slow or frozen
    // database then delays only the requests that need it (answered 503 after db_timeout),
    // while polls answered from memory go on.
    store_pool_ = std::make_unique<core::ThreadPool>(1, "store", 1024);
    hub_ = std::make_unique<LongPollHub>();
    commit_ = std::make_unique<GroupCommit<HeartbeatRow>>(
        [this](std::span<const HeartbeatRow> rows) {
          std::lock_guard lk(store_mu_);
          return store_->write_heartbeats(rows);
        },
        static_cast<size_t>(st_.heartbeat_batch), [this](size_t n) { batch_size_.observe(static_cast<double>(n)); });
    if (st_.redis_enabled) {
      bus::redis::Endpoint ep;
      ep.host = st_.redis_host;
      ep.port = st_.redis_port;
      ep.password = st_.redis_password;
      ep.db = st_.redis_db;
      redis_ = std::make_unique<bus::redis::Connection>(ep);
      publisher_ = std::make_unique<core::ThreadPool>(1, "redis-push");
      controller_log.info("redis push enabled", {{"redis", ep.describe()}});
    }
    if (shared_store_) refresher_ = std::thread([this] { refresh_loop(); });

    auto& reg = core::metrics::Registry::global();
    reg.gauge_callback("fleet_agents_registered", "agents with a valid token", [this] {
      std::shared_lock lk(agents_mu_);
      return static_cast<double>(by_id_.size());
    });
    reg.gauge_callback("fleet_long_polls_held", "GET /config?wait= requests being held",
                       [this] { return hub_ ? static_cast<double>(hub_->holding()) : 0.0; });
    // What the alerts of deploy/prometheus/fleet-alerts.yml watch: counted at scrape time, so
    // an agent that went silent turns stale, then offline, without anything happening here.
    for (const char* status : {"online", "stale", "offline"})
      reg.gauge_callback("fleet_agents", "agents by status, from the age of their last contact (stale_after, offline_after)",
                         {"status"}, {status}, [this, status] { return static_cast<double>(census().by_status(status)); });
    reg.gauge_callback("fleet_agents_lagging", "agents whose last heartbeat reported a version other than the latest",
                       [this] { return static_cast<double>(census().lagging); });
    controller_log.info("controller ready", {{"store", store_->describe()},
                                 {"agents", static_cast<int64_t>(agents.size())},
                                 {"etag", latest_.load()->rec.etag}});
    return {};
  }

  void before_drain() override {
    if (hub_) hub_->close();
  }

  void on_stop(std::chrono::milliseconds) override {
    {
      std::lock_guard lk(refresh_mu_);
      stopping_ = true;
    }
    refresh_cv_.notify_all();
    if (refresher_.joinable()) refresher_.join();
    if (commit_) commit_->stop();  // what was acknowledged is already durable; this writes the rest
    if (publisher_) publisher_->stop();
    if (store_pool_) store_pool_->stop();
    std::lock_guard lk(store_mu_);
    store_.reset();
  }

 private:
  // ---- routes -------------------------------------------------------------------------

  void routes() {
    auto& r = router();
    r.get("/health", [](const http::Request&, http::Response& out) { out.json(200, R"({"status":"healthy"})"); });
    r.add_async(http::Method::kPost, "/register", offload([this](const http::Request& q, http::Response& out) { do_register(q, out); }));
    for (const char* p : {"/config", "/controller/config"}) {
      r.add_async(http::Method::kPost, p, offload([this](const http::Request& q, http::Response& out) { post_config(q, out); }));
      r.add_deferrable(http::Method::kGet, p,
                       [this](const http::Request& q, http::Response& out, const std::function<http::Responder()>& d) {
                         return get_config(q, out, d);
                       });
    }
    r.add_async(http::Method::kGet, "/config/history", offload([this](const http::Request& q, http::Response& out) { history(q, out); }));
    r.add_async(http::Method::kPost, "/config/rollback/{etag}",
                offload([this](const http::Request& q, http::Response& out) { rollback(q, out); }));
    r.add_async(http::Method::kPost, "/heartbeat",
                [this](const http::Request& q, http::Responder resp) { heartbeat(q, std::move(resp)); });
    r.get("/agents", [this](const http::Request& q, http::Response& out) { list_agents(q, out); });
    r.get("/agents/{id}", [this](const http::Request& q, http::Response& out) { get_agent(q, out); });
    for (const char* p : {"/agents/{id}/interval", "/agents/{id}/poll-interval"})
      r.add_async(http::Method::kPut, p, offload([this](const http::Request& q, http::Response& out) { set_interval(q, out); }));
    r.add_async(http::Method::kPost, "/agents/{id}/token/rotate",
                offload([this](const http::Request& q, http::Response& out) { rotate(q, out); }));
    r.add_async(http::Method::kDelete, "/agents/{id}",
                offload([this](const http::Request& q, http::Response& out) { delete_agent(q, out); }));
  }

  // A handler that may touch the store, run on the store pool (the Request stays valid until
  // the answer is sent). A full pool is answered 503 at once.
  http::AsyncHandler offload(std::function<void(const http::Request&, http::Response&)> h) {
    return [this, h = std::move(h)](const http::Request& q, http::Responder resp) {
      bool queued = store_pool_ && store_pool_->post([h, &q, resp] {
        http::Response out;
        h(q, out);
        resp.send(std::move(out));
      });
      if (!queued) {
        http::Response out;
        out.error(503, "the store is busy; retry later");
        out.set_header("Retry-After", "1");
        resp.send(std::move(out));
      }
    };
  }

  // ---- auth ---------------------------------------------------------------------------

  bool basic(const http::Request& q, http::Response& out, const std::string& user, const std::string& pass,
             std::string* who = nullptr) {
    if (http::check_basic(q, user, pass)) {
      if (who) *who = user;
      return true;
    }
    http::basic_challenge(out, "Restricted", R"({"message":"Invalid auth"})");
    return false;
  }
  bool admin(const http::Request& q, http::Response& out, std::string* who = nullptr) {
    return basic(q, out, st_.admin_user, st_.admin_password, who);
  }

  static void bearer_error(http::Response& out, std::string_view message) {
    std::string body;
    core::json::Writer(body).object().field("success", false).field("message", message).field_null("data").end();
    out.json(401, std::move(body));
  }

  // The agent presenting the request's token, or nullptr after answering 401. A token not in
  // memory may have been issued by another controller sharing the database: with
  // `needs_lookup` given, that case returns nullptr with *needs_lookup set and nothing
  // answered, so the caller can look it up off the HTTP thread (lookup_token) and come back.
  std::shared_ptr<Agent> bearer(const http::Request& q, http::Response& out, bool* needs_lookup = nullptr) {
    http::Bearer b = http::parse_bearer(q);
    if (b.error != http::BearerError::kNone) {
      bearer_error(out, http::describe(b.error));
      return nullptr;
    }
    std::string hash = token_hash(b.token);
    {
      std::shared_lock lk(agents_mu_);
      if (auto it = by_token_.find(hash); it != by_token_.end()) return it->second;
    }
    if (shared_store_ && needs_lookup) {
      *needs_lookup = true;
      return nullptr;
    }
    bearer_error(out, "invalid api token");
    return nullptr;
  }

  // On the store pool: remembers the agent holding the request's token, if the store knows it.
  void lookup_token(const http::Request& q) {
    http::Bearer b = http::parse_bearer(q);
    if (b.error != http::BearerError::kNone) return;
    std::string hash = token_hash(b.token);
    std::optional<AgentRecord> rec;
    {
      std::lock_guard lk(store_mu_);
      auto r = store_->agent_by_token_hash(hash);
      if (r.is_ok()) rec = std::move(*r);
    }
    if (rec) remember(*rec);
  }

  // ---- registration -------------------------------------------------------------------

  void do_register(const http::Request& q, http::Response& out) {
    if (!basic(q, out, st_.agent_user, st_.agent_password)) return;
    auto body = parse_register(q.body());
    if (!body.is_ok()) return out.error(400, body.status().message());
    auto& [hostname, start_time, version] = *body;

    std::string token = random_hex(32);
    AgentRecord a;
    a.agent_id = uuid4();
    a.agent_name = "agent-" + a.agent_id.substr(0, 8);
    a.token_hash = token_hash(token);
    a.status = "registered";
    a.hostname = hostname;
    a.version = version;
    a.start_time = start_time;
    a.created_at = a.updated_at = core::rfc3339(std::chrono::system_clock::now());
    {
      std::lock_guard lk(store_mu_);
      if (Status s = store_->insert_agent(a); !s.is_ok()) return store_failure(out, "registering agent", s);
    }
    remember(a);
    controller_log.info("agent registered", {{"agent_id", a.agent_id}, {"hostname", hostname}, {"version", version}});
    std::string res;
    core::json::Writer(res)
        .object()
        .field("agent_id", a.agent_id)
        .field("agent_name", a.agent_name)
        .field("api_token", token)
        .field("poll_url", "/config")
        .field("poll_interval_seconds", st_.poll_interval)
        .end();
    out.json(200, std::move(res));
  }

  // ---- configuration ------------------------------------------------------------------

  void post_config(const http::Request& q, http::Response& out) {
    std::string who;
    if (!admin(q, out, &who)) return;
    auto body = parse_config_body(q.body());
    if (!body.is_ok()) return out.error(400, body.status().message());
    std::string data;
    core::json::Writer(data).object().field("url", body->url).field("proxy", body->proxy).end();
    auto snap = publish(std::move(data), who, out);
    if (!snap) return;
    out.json_string(200, "Config updated successfully");
    out.set_header("ETag", snap->rec.etag);
  }

  // Stores a new version and tells everyone; answers the failure in `out` and returns null
  // when the store refused it.
  std::shared_ptr<const Snapshot> publish(std::string data, const std::string& who, http::Response& out) {
    ConfigRecord rec{0, new_etag(data), std::move(data), who, core::rfc3339(std::chrono::system_clock::now())};
    {
      std::lock_guard lk(store_mu_);
      if (Status s = store_->insert_config(rec); !s.is_ok()) {
        store_failure(out, "storing configuration", s);
        return nullptr;
      }
    }
    auto snap = make_snapshot(std::move(rec));
    adopt(snap, /*push=*/true);
    controller_log.info("configuration published", {{"etag", snap->rec.etag}, {"by", who}});
    return snap;
  }

  // Makes `snap` the latest and wakes everyone waiting for it.
  void adopt(std::shared_ptr<const Snapshot> snap, bool push) {
    latest_.store(snap);
    hub_->publish();
    if (push && publisher_) {
      PushMessage m{"", snap->rec.etag, uuid4()};
      publisher_->post([this, msg = to_json(m)] {
        auto r = redis_->publish(kPushChannel, msg);
        if (r.is_ok()) {
          pushes_.with({"ok"}).inc();
        } else {
          pushes_.with({"failed"}).inc();
          controller_log.warn("redis push failed; agents will learn by polling", {{"error", r.status().to_string()}});
        }
      });
    }
  }

  // The hot path: agents polling with the etag they have. No database, no allocation for the
  // 304, the agent map read under a shared lock.
  bool get_config(const http::Request& q, http::Response& out, const std::function<http::Responder()>& defer,
                  bool from_pool = false) {
    http::Bearer b = http::parse_bearer(q);
    if (b.error != http::BearerError::kNone) {
      polls_401_.inc();
      bearer_error(out, http::describe(b.error));
      return true;
    }
    std::string hash = token_hash(b.token);
    int interval = 0;
    bool known = false;
    {
      std::shared_lock lk(agents_mu_);
      if (auto it = by_token_.find(hash); it != by_token_.end()) {
        known = true;
        interval = it->second->interval.load(std::memory_order_relaxed);
      }
    }
    if (!known) {
      bool lookup = false;
      auto agent = bearer(q, out, from_pool ? nullptr : &lookup);  // a token another controller issued, or a 401
      if (lookup) {
        // Looked up on the store pool, then answered from there as if it had been known.
        http::Responder resp = defer();
        bool queued = store_pool_->post([this, &q, resp] {
          lookup_token(q);
          http::Response again;
          if (get_config(q, again, [resp] { return resp; }, /*from_pool=*/true)) resp.send(std::move(again));
        });
        if (!queued) {
          http::Response busy;
          busy.error(503, "the store is busy; retry later");
          resp.send(std::move(busy));
        }
        return false;
      }
      if (!agent) {
        polls_401_.inc();
        return true;
      }
      interval = agent->interval.load(std::memory_order_relaxed);
    }
    int64_t wait_s = 0;
    if (!q.query().empty()) {
      if (auto w = q.query_param("wait")) {
        auto [p, ec] = std::from_chars(w->data(), w->data() + w->size(), wait_s);
        if (ec != std::errc() || p != w->data() + w->size() || wait_s < 0) {
          out.error(400, "wait must be a whole number of seconds");
          return true;
        }
      }
    }
    if (interval == 0) interval = st_.poll_interval;
    auto held = from_pool ? latest_.load() : nullptr;  // the per-thread cache is for HTTP threads
    const Snapshot& snap = from_pool ? *held : latest_.cached();
    std::string_view inm = q.header("If-None-Match");
    if (!etag_matches(inm, snap.rec.etag)) {
      answer_config(snap, interval, out);
      return true;
    }
    if (wait_s > 0) {
      std::shared_ptr<Agent> agent;
      {
        std::shared_lock lk(agents_mu_);
        if (auto it = by_token_.find(hash); it != by_token_.end()) agent = it->second;
      }
      if (agent) {
        auto wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(wait_s), st_.long_poll_max);
        std::string etag(inm);
        auto answer = [this, agent, etag](bool) {
          http::Response r;
          int iv = agent->interval.load(std::memory_order_relaxed);
          if (iv == 0) iv = st_.poll_interval;
          auto now = latest_.load();
          if (etag_matches(etag, now->rec.etag)) {
            not_modified(iv, r);
          } else {
            answer_config(*now, iv, r);
          }
          return r;
        };
        // Registered first, then re-checked: a version published in between is not missed.
        if (hub_->hold(std::chrono::steady_clock::now() + wait, defer(), answer)) {
          if (!etag_matches(inm, latest_.load()->rec.etag)) hub_->publish();
          return false;
        }
      }
    }
    not_modified(interval, out);
    return true;
  }

  static bool etag_matches(std::string_view given, std::string_view etag) {
    if (given == etag) return true;
    // Clients that follow RFC 9110 quote it.
    return given.size() == etag.size() + 2 && given.front() == '"' && given.back() == '"' &&
           given.substr(1, etag.size()) == etag;
  }

  void answer_config(const Snapshot& s, int interval, http::Response& out) {
    std::string iv = std::to_string(interval);
    out.json(200, s.body_head + iv + "}");
    out.set_header("ETag", s.rec.etag);
    out.set_header("X-Poll-Interval-Seconds", std::move(iv));
    polls_200_.inc();
  }

  void not_modified(int interval, http::Response& out) {
    out.status = 304;
    out.body.clear();
    out.set_header("X-Poll-Interval-Seconds", std::to_string(interval));
    polls_304_.inc();
  }

  void history(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    int limit = 100;
    if (auto l = q.query_param("limit")) {
      auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), limit);
      if (ec != std::errc() || p != l->data() + l->size() || limit < 1 || limit > 10000)
        return out.error(400, "limit must be a number 1..10000");
    }
    core::Result<std::vector<ConfigRecord>> h = [&] {
      std::lock_guard lk(store_mu_);
      return store_->history(limit);
    }();
    if (!h.is_ok()) return store_failure(out, "reading history", h.status());
    std::string latest = latest_.load()->rec.etag;
    std::string body;
    core::json::Writer w(body);
    w.object().key("configurations").array();
    for (const ConfigRecord& c : *h) {
      w.object()
          .field("id", c.id)
          .field("etag", c.etag)
          .field_raw("config", c.config_data)
          .field("created_by", c.created_by)
          .field("created_at", c.created_at)
          .field("latest", c.etag == latest)
          .end();
    }
    w.end().field("total", h->size()).end();
    out.json(200, std::move(body));
  }

  // A rollback is a new version carrying an earlier one's data: history stays append-only and
  // every agent sees a new etag, so it applies like any change.
  void rollback(const http::Request& q, http::Response& out) {
    std::string who;
    if (!admin(q, out, &who)) return;
    std::string etag(q.param("etag"));
    core::Result<std::optional<ConfigRecord>> old = [&] {
      std::lock_guard lk(store_mu_);
      return store_->config_by_etag(etag);
    }();
    if (!old.is_ok()) return store_failure(out, "reading history", old.status());
    if (!*old) return out.error(404, "no configuration with etag " + etag);
    auto snap = publish((*old)->config_data, who + " (rollback to " + etag + ")", out);
    if (!snap) return;
    std::string body;
    core::json::Writer(body)
        .object()
        .field("message", "rolled back")
        .field("etag", snap->rec.etag)
        .field("rolled_back_to", etag)
        .end();
    out.json(200, std::move(body));
    out.set_header("ETag", snap->rec.etag);
  }

  // ---- heartbeats ---------------------------------------------------------------------

  void heartbeat(const http::Request& q, http::Responder resp, bool from_pool = false) {
    http::Response out;
    bool lookup = false;
    auto agent = bearer(q, out, from_pool ? nullptr : &lookup);
    if (lookup) {
      bool queued = store_pool_->post([this, &q, resp] {
        lookup_token(q);
        heartbeat(q, resp, /*from_pool=*/true);
      });
      if (!queued) {
        out.error(503, "the store is busy; retry later");
        resp.send(std::move(out));
      }
      return;
    }
    if (!agent) return resp.send(std::move(out));
    auto body = parse_heartbeat(q.body());
    if (!body.is_ok()) {
      out.error(400, body.status().message());
      return resp.send(std::move(out));
    }
    auto now = std::chrono::system_clock::now();
    HeartbeatRow row{agent->id, core::rfc3339(now), body->config_version, body->status};
    std::string latest = latest_.load()->rec.etag;
    auto done = [this, agent, row, latest, resp](const Status& s) {
      http::Response r;
      if (!s.is_ok()) {
        heartbeat_failures_.inc();
        controller_log.error("heartbeat not persisted", {{"agent_id", agent->id}, {"error", s.to_string()}});
        r.error(503, "heartbeat not persisted: " + s.to_string());
        return resp.send(std::move(r));
      }
      heartbeats_.inc();
      {
        std::lock_guard lk(agent->mu);
        agent->reported_status = row.status;
        agent->last_heartbeat = row.at;
        agent->last_config_version = row.config_version;
        agent->updated_at = row.at;
        agent->last_contact = core::parse_rfc3339(row.at).value_or(std::chrono::system_clock::now());
      }
      std::string b;
      core::json::Writer(b).object().field("latest_config_version", latest).field("received_at", row.at).end();
      r.json(200, std::move(b));
      resp.send(std::move(r));
    };
    if (!commit_->submit(row, done)) {
      out.error(503, "shutting down");
      resp.send(std::move(out));
    }
  }

  // ---- agents -------------------------------------------------------------------------

  struct Census {
    size_t online = 0, stale = 0, offline = 0, lagging = 0;
    size_t by_status(std::string_view s) const { return s == "online" ? online : s == "stale" ? stale : offline; }
  };
  Census census() {
    Census c;
    auto now = std::chrono::system_clock::now();
    std::string latest = latest_.load()->rec.etag;
    std::shared_lock lk(agents_mu_);
    for (auto& [_, a] : by_id_) {
      std::lock_guard alk(a->mu);
      std::string_view st = derived_status(*a, now);
      ++(st == "online" ? c.online : st == "stale" ? c.stale : c.offline);
      if (a->last_config_version != latest) ++c.lagging;
    }
    return c;
  }

  std::string_view derived_status(const Agent& a, core::WallTime now) const {
    auto age = now - a.last_contact;
    if (age < st_.stale_after) return "online";
    if (age < st_.offline_after) return "stale";
    return "offline";
  }

  void agent_json(const Agent& a, const std::string& latest, core::WallTime now, core::json::Writer& w) const {
    std::lock_guard lk(a.mu);
    w.object()
        .field("agent_id", a.id)
        .field("agent_name", a.name)
        .field("hostname", a.hostname)
        .field("version", a.version)
        .field("start_time", a.start_time)
        .field("status", derived_status(a, now))
        .field("reported_status", a.reported_status);
    if (a.last_heartbeat.empty()) w.field_null("last_heartbeat");
    else w.field("last_heartbeat", a.last_heartbeat);
    w.field("last_config_version", a.last_config_version).field("config_up_to_date", a.last_config_version == latest);
    int iv = a.interval.load();
    if (iv) w.field("poll_interval_seconds", iv);
    else w.field_null("poll_interval_seconds");
    w.field("effective_poll_interval_seconds", iv ? iv : st_.poll_interval)
        .field("created_at", a.created_at)
        .field("updated_at", a.updated_at)
        .end();
  }

  void list_agents(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    std::vector<std::shared_ptr<Agent>> all;
    {
      std::shared_lock lk(agents_mu_);
      all.reserve(by_id_.size());
      for (auto& [_, a] : by_id_) all.push_back(a);
    }
    std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
      return x->created_at != y->created_at ? x->created_at > y->created_at : x->id > y->id;
    });
    std::string latest = latest_.load()->rec.etag;
    auto now = std::chrono::system_clock::now();
    size_t lagging = 0;
    std::string body;
    core::json::Writer w(body);
    w.object().key("agents").array();
    for (auto& a : all) {
      agent_json(*a, latest, now, w);
      std::lock_guard lk(a->mu);
      if (a->last_config_version != latest) ++lagging;
    }
    w.end().field("total", all.size()).field("latest_config_version", latest).field("lagging", lagging).end();
    out.json(200, std::move(body));
  }

  std::shared_ptr<Agent> find(std::string_view id) {
    std::shared_lock lk(agents_mu_);
    auto it = by_id_.find(std::string(id));
    return it == by_id_.end() ? nullptr : it->second;
  }

  void get_agent(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    auto a = find(q.param("id"));
    if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
    std::string body;
    core::json::Writer w(body);
    agent_json(*a, latest_.load()->rec.etag, std::chrono::system_clock::now(), w);
    out.json(200, std::move(body));
  }

  void set_interval(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    auto a = find(q.param("id"));
    if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
    auto parsed = parse_interval(q.body());
    if (!parsed.is_ok()) return out.error(400, parsed.status().message());
    std::optional<int> seconds = *parsed;
    auto now = core::rfc3339(std::chrono::system_clock::now());
    core::Result<bool> r = [&] {
      std::lock_guard lk(store_mu_);
      return store_->set_poll_interval(a->id, seconds, now);
    }();
    if (!r.is_ok()) return store_failure(out, "updating interval", r.status());
    if (!*r) return out.error(404, "agent not found: " + a->id);
    a->interval.store(seconds.value_or(0));
    {
      std::lock_guard lk(a->mu);
      a->updated_at = now;
    }
    controller_log.info("poll interval updated", {{"agent_id", a->id}, {"seconds", static_cast<int64_t>(seconds.value_or(0))}});
    // Tell the agent now rather than at its next poll.
    if (publisher_) {
      PushMessage m{a->id, latest_.load()->rec.etag, uuid4()};
      publisher_->post([this, msg = to_json(m)] { (void)redis_->publish(kPushChannel, msg); });
    }
    out.json_string(200, "poll interval updated");
  }

  void rotate(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    auto a = find(q.param("id"));
    if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
    std::string token = random_hex(32);
    std::string hash = token_hash(token);
    auto now = core::rfc3339(std::chrono::system_clock::now());
    core::Result<bool> r = [&] {
      std::lock_guard lk(store_mu_);
      return store_->set_token_hash(a->id, hash, now);
    }();
    if (!r.is_ok()) return store_failure(out, "rotating token", r.status());
    if (!*r) return out.error(404, "agent not found: " + a->id);
    {
      std::unique_lock lk(agents_mu_);
      std::lock_guard al(a->mu);
      by_token_.erase(a->token_hash);
      a->token_hash = hash;
      a->updated_at = now;
      by_token_[hash] = a;
    }
    controller_log.info("token rotated", {{"agent_id", a->id}});
    std::string body;
    core::json::Writer(body).object().field("agent_id", a->id).field("api_token", token).field("message", "token rotated").end();
    out.json(200, std::move(body));
  }

  void delete_agent(const http::Request& q, http::Response& out) {
    if (!admin(q, out)) return;
    auto a = find(q.param("id"));
    if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
    core::Result<bool> r = [&] {
      std::lock_guard lk(store_mu_);
      return store_->delete_agent(a->id);
    }();
    if (!r.is_ok()) return store_failure(out, "deleting agent", r.status());
    {
      std::unique_lock lk(agents_mu_);
      std::lock_guard al(a->mu);
      by_token_.erase(a->token_hash);
      by_id_.erase(a->id);
    }
    controller_log.info("agent deleted", {{"agent_id", a->id}});
    out.json_string(200, "agent deleted");
  }

  // ---- helpers ------------------------------------------------------------------------

  std::shared_ptr<Agent> remember(const AgentRecord& r) {
    auto a = std::make_shared<Agent>();
    a->id = r.agent_id;
    a->name = r.agent_name;
    a->hostname = r.hostname;
    a->version = r.version;
    a->start_time = r.start_time;
    a->created_at = r.created_at;
    a->interval = r.poll_interval_seconds.value_or(0);
    a->token_hash = r.token_hash;
    a->reported_status = r.status;
    a->last_heartbeat = r.last_heartbeat;
    a->last_config_version = r.last_config_version;
    a->updated_at = r.updated_at;
    a->last_contact = core::parse_rfc3339(r.last_heartbeat.empty() ? r.created_at : r.last_heartbeat)
                          .value_or(core::WallTime{});
    std::unique_lock lk(agents_mu_);
    if (auto it = by_id_.find(a->id); it != by_id_.end()) return it->second;
    by_id_[a->id] = a;
    by_token_[a->token_hash] = a;
    return a;
  }

  // Unique per version and stable across restarts: hex length of the data, then the wall
  // clock in nanoseconds, kept increasing even if the clock steps back.
  std::string new_etag(const std::string& data) {
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    int64_t prev = last_etag_ns_.load();
    while (!last_etag_ns_.compare_exchange_weak(prev, std::max(ns, prev + 1))) {
    }
    ns = std::max(ns, prev + 1);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%zx-%lld", data.size(), static_cast<long long>(ns));
    return buf;
  }

  void store_failure(http::Response& out, std::string_view what, const Status& s) {
    controller_log.error("store write failed", {{"what", what}, {"error", s.to_string()}});
    out.error(503, std::string(what) + " failed: " + s.to_string());
  }

  // With a shared PostgreSQL database another controller may publish (adopt its versions),
  // rotate a token or delete an agent (the old token stops working here too), all within
  // refresh_interval.
  void refresh_loop() {
    std::unique_lock lk(refresh_mu_);
    while (!refresh_cv_.wait_for(lk, st_.refresh_interval, [&] { return stopping_; })) {
      core::Result<std::optional<ConfigRecord>> r = [&] {
        std::lock_guard sl(store_mu_);
        return store_->latest_config();
      }();
      if (r.is_ok() && *r && (*r)->id > latest_.load()->rec.id) {
        controller_log.info("adopting a version published by another controller", {{"etag", (*r)->etag}});
        adopt(make_snapshot(std::move(**r)), /*push=*/false);
      }
      refresh_agents();
    }
  }

  void refresh_agents() {
    core::Result<Store::AgentSync> sync = [&] {
      std::lock_guard sl(store_mu_);
      return store_->agent_sync(agents_since_);
    }();
    if (!sync.is_ok()) {
      controller_log.warn("cannot read agent changes; will retry", {{"error", sync.status().to_string()}});
      return;
    }
    for (const AgentRecord& rec : sync->changed) {
      std::shared_ptr<Agent> a;
      {
        std::unique_lock lk(agents_mu_);
        if (auto it = by_id_.find(rec.agent_id); it != by_id_.end()) {
          a = it->second;
          std::lock_guard al(a->mu);
          if (a->token_hash != rec.token_hash) {
            by_token_.erase(a->token_hash);
            a->token_hash = rec.token_hash;
            by_token_[a->token_hash] = a;
            controller_log.info("token rotated by another controller", {{"agent_id", a->id}});
          }
          a->interval = rec.poll_interval_seconds.value_or(0);
        }
      }
      if (!a) remember(rec);
    }
    agents_since_ = sync->high_water;
    size_t known;
    {
      std::shared_lock lk(agents_mu_);
      known = by_id_.size();
    }
    if (sync->count < 0 || static_cast<size_t>(sync->count) >= known) return;
    // Fewer agents in the database than here: some were deleted elsewhere.
    core::Result<std::vector<std::string>> ids = [&] {
      std::lock_guard sl(store_mu_);
      return store_->agent_ids();
    }();
    if (!ids.is_ok()) return;
    std::unordered_set<std::string> present(ids->begin(), ids->end());
    std::unique_lock lk(agents_mu_);
    for (auto it = by_id_.begin(); it != by_id_.end();) {
      if (present.count(it->first)) {
        ++it;
        continue;
      }
      {
        std::lock_guard al(it->second->mu);
        by_token_.erase(it->second->token_hash);
      }
      controller_log.info("agent deleted by another controller", {{"agent_id", it->first}});
      it = by_id_.erase(it);
    }
  }

  Settings st_;
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

  std::shared_mutex agents_mu_;
  std::unordered_map<std::string, std::shared_ptr<Agent>> by_id_, by_token_;

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

class ControllerFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    fleet::bind(s, &st_.listen, "CONTROLLER");
    s.add("database_path", &st_.database_path, "SQLite file (used unless database_url is set)").env("DATABASE_PATH");
    s.add("database_url", &st_.database_url, "PostgreSQL URL postgres://…; several controllers may share it")
        .env("DATABASE_URL")
        .secret();
    s.add("admin_user", &st_.admin_user, "Basic auth user for configuration and agent management").env("ADMIN_USER");
    s.add("admin_password", &st_.admin_password, "its password").env("ADMIN_PASSWORD").secret();
    s.add("agent_user", &st_.agent_user, "Basic auth user agents register with").env("AGENT_USER");
    s.add("agent_password", &st_.agent_password, "its password").env("AGENT_PASSWORD").secret();
    s.add("poll_interval", &st_.poll_interval, "default poll interval told to agents, seconds")
        .env("POLL_INTERVAL")
        .range(1, kMaxInterval);
    s.add("redis_enabled", &st_.redis_enabled, "publish new versions on Redis channel config-updates").env("REDIS_ENABLED");
    s.add("redis_host", &st_.redis_host, "Redis host").env("REDIS_HOST");
    s.add("redis_port", &st_.redis_port, "Redis port").env("REDIS_PORT").range(1, 65535);
    s.add("redis_password", &st_.redis_password, "Redis password").env("REDIS_PASSWORD").secret();
    s.add("redis_db", &st_.redis_db, "Redis database number").env("REDIS_DB").range(0, 15);
    s.add("long_poll_max", &st_.long_poll_max, "longest GET /config?wait= hold").range(1000, 3'600'000);
    s.add("stale_after", &st_.stale_after, "an agent silent this long is shown stale").range(1000, 86'400'000);
    s.add("offline_after", &st_.offline_after, "an agent silent this long is shown offline").range(1000, 604'800'000);
    s.add("refresh_interval", &st_.refresh_interval,
          "with PostgreSQL: how often to take in what other controllers changed (versions, tokens, deletions)")
        .env("REFRESH_INTERVAL")
        .range(100, 3'600'000);
    s.add("heartbeat_batch", &st_.heartbeat_batch, "most heartbeats written in one transaction").range(1, 100'000);
    s.add("db_timeout", &st_.db_timeout, "with PostgreSQL: longest a statement may take before the request fails 503")
        .env("DB_TIMEOUT").range(100, 600'000);
    http::bind(s, &st_.http);
  }

  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    apply(st_.listen, &st_.http);
    // A long poll is held on purpose: the server's forgotten-responder deadline must not cut it.
    st_.http.handler_timeout = std::max(st_.http.handler_timeout, st_.long_poll_max + std::chrono::seconds(10));
    if (st_.offline_after <= st_.stale_after)
      return core::invalid_argument("controller.offline_after must be longer than controller.stale_after");
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Controller>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::fleet::controller

namespace gantry::fleet {

core::runtime::RoleInfo controller_role() {
  return {"controller", "Fleet: holds the versioned configuration; agents register, poll or are pushed new versions",
          [] { return std::make_unique<controller::ControllerFactory>(); }};
}

}  // namespace gantry::fleet
