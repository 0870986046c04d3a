#include "cli/migrate.h"

#include "core/log.h"
#include "orchestrator/roles.h"
#include "store/postgres/pg.h"
#include "telemetry/roles.h"

namespace gantry::cli {

namespace {

using core::Status;

const core::log::Logger migrate_log("migrate");

// Each system keeps its own environment names for the database's parts (DB_* for Telemetry,
// POSTGRESQL_* for the Orchestrator); db_url serves both.
class MigrateFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("system", &system_, "the system whose schema to migrate: telemetry or orchestrator (also the first argument)")
        .one_of({"telemetry", "orchestrator"});
    s.add("db_url", &url_, "PostgreSQL URL (else built from the system's own settings below)")
        .env("DB_URL")
        .env("DATABASE_URL")
        .secret();
    telemetry_.bind(s);
    orchestrator_.bind(s);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    if (system_.empty()) return core::invalid_argument("migrate: which system? (gantry migrate telemetry | orchestrator)");
    bool tel = system_ == "telemetry";
    std::string conn = tel ? telemetry_.connection_string(url_) : orchestrator_.connection_string(url_);
    const auto& target = tel ? telemetry_ : orchestrator_;
    auto apply = target.apply;
    auto version = target.version;
    std::string system = system_;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<core::runtime::Job>("migrate", [conn, apply, version, system]() -> Status {
      GANTRY_ASSIGN(db, store::postgres::Connection::connect(conn));
      GANTRY_RETURN_IF_ERROR(apply(*db));
      GANTRY_ASSIGN(v, version(*db));
      migrate_log.info("schema migrated", {{"system", system}, {"version", static_cast<int64_t>(v)}});
      return {};
    }));
  }

 private:
  std::string system_, url_;
  store::postgres::MigrationTarget telemetry_ = telemetry::migration_target();
  store::postgres::MigrationTarget orchestrator_ = orchestrator::migration_target();
};

}  // namespace

core::runtime::RoleInfo migrate_role() {
  return {"migrate", "job: apply a system's database migrations (gantry migrate telemetry|orchestrator), then exit",
          [] { return std::make_unique<MigrateFactory>(); }};
}

}  // namespace gantry::cli
