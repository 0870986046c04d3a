// `gantry controller`: start and stop, routes, authentication, and taking in what other
// controllers sharing a PostgreSQL store changed. See controller.h for the whole role.
#include "fleet/controller/controller.h"

#include <algorithm>
#include <unordered_set>

#include "core/clock.h"
#include "core/http/auth.h"
#include "fleet/roles.h"

namespace gantry::fleet::controller {

namespace {
const core::log::Logger controller_log("controller");
}  // namespace

Controller::Controller(Settings s)
    : HttpRole("controller", s.http),
      st_(std::move(s)),
      agents_(st_.stale_after, st_.offline_after),
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

Controller::~Controller() {
  auto& reg = core::metrics::Registry::global();
  reg.remove_callback("fleet_agents_registered");
  reg.remove_callback("fleet_long_polls_held");
  for (const char* status : {"online", "stale", "offline"}) reg.remove_callback("fleet_agents", {status});
  reg.remove_callback("fleet_agents_lagging");
}

Status Controller::on_start() {
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
  for (AgentRecord& a : agents) agents_.remember(a);

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
  if (st_.redis.enabled) {
    bus::redis::Endpoint ep = st_.redis.endpoint();
    redis_ = std::make_unique<bus::redis::Connection>(ep);
    publisher_ = std::make_unique<core::ThreadPool>(1, "redis-push");
    controller_log.info("redis push enabled", {{"redis", ep.describe()}});
  }
  if (shared_store_) refresher_ = std::thread([this] { refresh_loop(); });

  auto& reg = core::metrics::Registry::global();
  reg.gauge_callback("fleet_agents_registered", "agents with a valid token",
                     [this] { return static_cast<double>(agents_.size()); });
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

void Controller::before_drain() {
  if (hub_) hub_->close();
}

void Controller::on_stop(std::chrono::milliseconds) {
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

void Controller::routes() {
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

http::AsyncHandler Controller::offload(std::function<void(const http::Request&, http::Response&)> h) {
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

bool Controller::basic(const http::Request& q, http::Response& out, const std::string& user, const std::string& pass, std::string* who) {
  if (http::check_basic(q, user, pass)) {
    if (who) *who = user;
    return true;
  }
  http::basic_challenge(out, "Restricted", R"({"message":"Invalid auth"})");
  return false;
}

bool Controller::admin(const http::Request& q, http::Response& out, std::string* who) {
  return basic(q, out, st_.admin_user, st_.admin_password, who);
}

void Controller::bearer_error(http::Response& out, std::string_view message) {
  std::string body;
  core::json::Writer(body).object().field("success", false).field("message", message).field_null("data").end();
  out.json(401, std::move(body));
}

std::shared_ptr<Agent> Controller::bearer(const http::Request& q, http::Response& out, bool* needs_lookup) {
  http::Bearer b = http::parse_bearer(q);
  if (b.error != http::BearerError::kNone) {
    bearer_error(out, http::describe(b.error));
    return nullptr;
  }
  if (auto a = agents_.by_token(token_hash(b.token))) return a;
  if (shared_store_ && needs_lookup) {
    *needs_lookup = true;
    return nullptr;
  }
  bearer_error(out, "invalid api token");
  return nullptr;
}

void Controller::lookup_token(const http::Request& q) {
  http::Bearer b = http::parse_bearer(q);
  if (b.error != http::BearerError::kNone) return;
  std::string hash = token_hash(b.token);
  std::optional<AgentRecord> rec;
  {
    std::lock_guard lk(store_mu_);
    auto r = store_->agent_by_token_hash(hash);
    if (r.is_ok()) rec = std::move(*r);
  }
  if (rec) agents_.remember(*rec);
}

std::string Controller::new_etag(const std::string& data) {
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  int64_t prev = last_etag_ns_.load();
  while (!last_etag_ns_.compare_exchange_weak(prev, std::max(ns, prev + 1))) {
  }
  ns = std::max(ns, prev + 1);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%zx-%lld", data.size(), static_cast<long long>(ns));
  return buf;
}

void Controller::store_failure(http::Response& out, std::string_view what, const Status& s) {
  controller_log.error("store write failed", {{"what", what}, {"error", s.to_string()}});
  out.error(503, std::string(what) + " failed: " + s.to_string());
}

void Controller::refresh_loop() {
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

void Controller::refresh_agents() {
  core::Result<Store::AgentSync> sync = [&] {
    std::lock_guard sl(store_mu_);
    return store_->agent_sync(agents_since_);
  }();
  if (!sync.is_ok()) {
    controller_log.warn("cannot read agent changes; will retry", {{"error", sync.status().to_string()}});
    return;
  }
  for (const AgentRecord& rec : sync->changed)
    if (agents_.update(rec)) controller_log.info("token rotated by another controller", {{"agent_id", rec.agent_id}});
  agents_since_ = sync->high_water;
  if (sync->count < 0 || static_cast<size_t>(sync->count) >= agents_.size()) return;
  // Fewer agents in the database than here: some were deleted elsewhere.
  core::Result<std::vector<std::string>> ids = [&] {
    std::lock_guard sl(store_mu_);
    return store_->agent_ids();
  }();
  if (!ids.is_ok()) return;
  for (const std::string& id : agents_.keep_only({ids->begin(), ids->end()}))
    controller_log.info("agent deleted by another controller", {{"agent_id", id}});
}

namespace {

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
    fleet::bind(s, &st_.redis, "publish new versions on Redis channel config-updates");
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

