// `gantry orchestrator` (also `gantry orchestrator launch --ip --port`, the original's form).
#include <boost/json.hpp>

#include "core/clock.h"
#include "core/http/auth.h"
#include "core/json.h"
#include "core/log.h"
#include "core/runtime.h"
#include "orchestrator/api/domains.h"
#include "orchestrator/roles.h"
#include "orchestrator/scheduler/scheduler.h"
#include "orchestrator/schema.h"
#include "orchestrator/settings.h"
#include "orchestrator/topology.h"

namespace gantry::orchestrator {

namespace {

namespace http = core::http;
namespace pg = store::postgres;
using core::Status;

const core::log::Logger role_log("orchestrator");

// FNV-1a of "gantry-orchestrator/<schema>": stable across versions and machines.
int64_t lock_key_for(const std::string& schema) {
  uint64_t h = 1469598103934665603ull;
  for (char c : "gantry-orchestrator/" + schema) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

struct Settings {
  std::string ip = "0.0.0.0";
  uint16_t port = 8005;
  DbSettings db;
  AmqpSettings amqp;
  std::vector<std::string> services = default_services();
  std::chrono::milliseconds reconcile_interval{900'000};
  int64_t leader_lock_key = 0;  // 0: derived from the schema (lock_key_for)
  std::chrono::milliseconds leader_retry{1000};
  bool migrate = true;
  AdminCredentials admin;
  http::ServerOptions http;
};

class Orchestrator final : public core::runtime::HttpRole {
 public:
  explicit Orchestrator(Settings s) : HttpRole("orchestrator", s.http), st_(std::move(s)) {
    auto& r = router();
    r.get("/health", [](const http::Request&, http::Response& out) {
      std::string b;
      core::json::Writer(b).object().field("status", "healthy").field("timestamp", core::rfc3339_nano(std::chrono::system_clock::now()))
          .field("service", kSource).end();
      out.json(200, std::move(b));
    });
    r.get("/ready", [this](const http::Request&, http::Response& out) {
      bool db = sched_ && sched_->database_ok(), mq = sched_ && sched_->rabbitmq_ok();
      std::string b;
      core::json::Writer w(b);
      w.object().field("status", db && mq ? "ready" : "not ready")
          .field("timestamp", core::rfc3339_nano(std::chrono::system_clock::now()))
          .field("service", kSource)
          .key("checks").object()
          .field("database", db ? "healthy" : "unhealthy")
          .field("rabbitmq", mq ? "healthy" : "unhealthy")
          .field("leader", sched_ && sched_->leader() ? "leader" : "standby")
          .end().end();
      out.json(db && mq ? 200 : 503, std::move(b));
    });
    add_domain_routes(r, &db_raw_, &st_.admin);
  }

  bool ready() const override { return sched_ && sched_->database_ok() && sched_->rabbitmq_ok(); }

 protected:
  Status on_start() override {
    std::string conn = st_.db.connection_string();
    if (st_.migrate) {
      GANTRY_ASSIGN(c, pg::Connection::connect(conn));
      GANTRY_RETURN_IF_ERROR(apply_schema(*c, st_.db.schema).within("migrating the orchestrator schema"));
    }
    GANTRY_ASSIGN(db, pg::Pool::open(st_.db.pool("orchestrator")));
    db_ = std::move(db);
    GANTRY_ASSIGN(mq, bus::amqp::Pool::open(st_.amqp.pool("orchestrator")));
    amqp_ = std::move(mq);
    GANTRY_RETURN_IF_ERROR(amqp_->run([this](bus::amqp::Channel& ch) { return declare_topology(ch, st_.services); }));
    SchedulerSettings ss;
    ss.db = conn;
    ss.schema = st_.db.schema;
    ss.services = st_.services;
    ss.reconcile_interval = st_.reconcile_interval;
    ss.leader_lock_key = st_.leader_lock_key ? st_.leader_lock_key : lock_key_for(st_.db.schema);
    ss.leader_retry = st_.leader_retry;
    sched_ = std::make_unique<Scheduler>(ss, *db_, *amqp_);
    GANTRY_RETURN_IF_ERROR(sched_->start());
    db_raw_ = db_.get();
    role_log.info("orchestrator ready", {{"services", static_cast<int64_t>(st_.services.size())},
                                   {"kick", scan_key(st_.services.front())},
                                   {"reconcile_interval_s", static_cast<int64_t>(st_.reconcile_interval.count() / 1000)}});
    return {};
  }

  void on_stop(std::chrono::milliseconds) override {
    db_raw_ = nullptr;
    if (sched_) sched_->stop();  // releases leadership at once: the standby need not wait
    sched_.reset();
    amqp_.reset();
    db_.reset();
  }

 private:
  Settings st_;
  std::unique_ptr<pg::Pool> db_;
  pg::Pool* db_raw_ = nullptr;  // read by the API's handlers; set once the pool is open
  std::unique_ptr<bus::amqp::Pool> amqp_;
  std::unique_ptr<Scheduler> sched_;
};

class DomainApiFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("ip", &st_.ip, "listen address").env("ORCHESTRATOR_IP");
    s.add("port", &st_.port, "listen port: 8000-9000 as the original, or 0 for any free port")
        .env("ORCHESTRATOR_PORT")
        .check([this]() -> std::optional<std::string> {
          if (st_.port != 0 && (st_.port < 8000 || st_.port > 9000)) return "must be within 8000-9000 (or 0 for any free port)";
          return std::nullopt;
        });
    orchestrator::bind(s, &st_.db, true);
    orchestrator::bind(s, &st_.amqp, true);
    s.add("services", &st_.services, "the scanner ring, in order; the kick goes to the first")
        .env("ORCHESTRATOR_SERVICES")
        .check([this] { return check_services(st_.services); });
    s.add("reconcile_interval", &st_.reconcile_interval, "full re-read of the enabled domains (safety net)")
        .env("RECONCILE_INTERVAL")
        .range(1000, 86'400'000);
    s.add("leader_lock_key", &st_.leader_lock_key,
          "PostgreSQL advisory lock key instances elect a leader with (0 = derived from the schema, so deployments in "
          "different schemas of one database elect apart)");
    s.add("leader_retry", &st_.leader_retry, "how often a standby tries to become leader").range(100, 60'000);
    s.add("migrate", &st_.migrate, "apply the schema migrations at start");
    s.add("admin_user", &st_.admin.user, "Basic auth user of the domain API").env("ADMIN_USER");
    s.add("admin_password", &st_.admin.password, "Basic auth password of the domain API").env("ADMIN_PASSWORD").secret();
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.ip;
    st_.http.port = st_.port;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Orchestrator>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

core::runtime::RoleInfo orchestrator_role() {
  return {"orchestrator",
          "Orchestrator: domain changes (LISTEN/NOTIFY) become scan kicks on RabbitMQ; leader election, domain API (also: orchestrator launch)",
          [] { return std::make_unique<DomainApiFactory>(); }};
}

store::postgres::MigrationTarget migration_target() {
  auto st = std::make_shared<DbSettings>();
  return {[st](core::config::Schema& s) { orchestrator::bind(s, st.get(), false, false); },
          [st](const std::string& url) {
            DbSettings d = *st;
            d.url = url;
            return d.connection_string();
          },
          [st](pg::Connection& c) { return apply_schema(c, st->schema); },
          [](pg::Connection& c) { return c.schema_version(kVersionTable); }};
}

}  // namespace gantry::orchestrator
