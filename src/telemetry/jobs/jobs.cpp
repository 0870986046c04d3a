// One-shot Telemetry jobs, run like roles (settings, logs, exit status) but ending by
// themselves:
//   gantry diagnoser --from T --to T [--client-id C]   re-labels the windows in [from, to)
// Exit status 0 on success, 1 when the job failed (the reason is logged).
#include <charconv>

#include "core/clock.h"
#include "core/log.h"
#include "core/runtime.h"
#include "store/postgres/pg.h"
#include "telemetry/aggregator/schema.h"
#include "telemetry/db.h"
#include "telemetry/roles.h"

namespace gantry::telemetry::jobs {

namespace {

using core::Status;
namespace pg = store::postgres;

const core::log::Logger jobs_log("telemetry");

// RFC 3339 or Unix milliseconds.
std::optional<int64_t> parse_time(const std::string& t) {
  int64_t ms = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
  if (ec == std::errc() && p == t.data() + t.size()) return ms;
  if (auto w = core::parse_rfc3339(t))
    return std::chrono::duration_cast<std::chrono::milliseconds>(w->time_since_epoch()).count();
  return std::nullopt;
}

// The diagnoser reads and relabels what the aggregator's migrations made. On a database that
// lacks them it says what to run, instead of passing on "relation agg_1m does not exist"; it
// only reads here (schema_version() would create the version table).
Status require_schema(pg::Connection& db) {
  const int wanted = std::rbegin(aggregator::kMigrations)->version;
  GANTRY_ASSIGN(exists, db.query("SELECT to_regclass('schema_migrations') IS NOT NULL"));
  int have = 0;
  if (exists.get(0, 0) == "t") {
    GANTRY_ASSIGN(v, db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    have = static_cast<int>(v.int64(0, 0));
  }
  if (have >= wanted) return {};
  return core::Status(core::Code::kFailedPrecondition,
                      (have == 0 ? std::string("this database has no Telemetry schema")
                                 : "this database has Telemetry's schema at version " + std::to_string(have) + " of " +
                                       std::to_string(wanted)) +
                          ": run `gantry migrate telemetry` with the same database settings, or start the aggregator "
                          "(it migrates at start)");
}

struct DiagnoserSettings {
  DbSettings db;
  std::string from, to, client_id;
  aggregator::Thresholds thresholds;
};

class DiagnoserFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    telemetry::bind(s, &st_.db);
    auto time_rule = [](const std::string* v) {
      return [v]() -> std::optional<std::string> {
        if (v->empty()) return "is required (RFC 3339, e.g. 2026-11-22T10:00:00Z, or Unix ms)";
        if (!parse_time(*v)) return "must be RFC 3339 (2026-11-22T10:00:00Z) or Unix milliseconds";
        return std::nullopt;
      };
    };
    s.add("from", &st_.from, "first window start to re-label (RFC 3339 or Unix ms)").check(time_rule(&st_.from));
    s.add("to", &st_.to, "re-label windows starting before this").check(time_rule(&st_.to));
    s.add("client_id", &st_.client_id, "only this client (default: all)");
    aggregator::bind(s, &st_.thresholds);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    int64_t from = *parse_time(st_.from), to = *parse_time(st_.to);
    if (to <= from) return core::invalid_argument("diagnoser: --to must be after --from");
    auto st = st_;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<core::runtime::Job>("diagnoser", [st, from, to]() -> Status {
      GANTRY_ASSIGN(db, pg::Connection::connect(st.db.connection_string()));
      GANTRY_RETURN_IF_ERROR(require_schema(*db));
      // Oldest first: a window's baseline is the windows before it.
      GANTRY_ASSIGN(rows, db->query("SELECT client_id, target, window_start_ts FROM agg_1m WHERE window_start_ts >= $1::bigint "
                                    "AND window_start_ts < $2::bigint AND ($3 = '' OR client_id = $3) ORDER BY window_start_ts",
                                    {std::to_string(from), std::to_string(to), st.client_id}));
      std::map<std::string, int64_t> counts;
      for (int i = 0; i < rows.size(); ++i) {
        GANTRY_ASSIGN(l, aggregator::relabel(*db, std::string(rows.get(i, 0)), std::string(rows.get(i, 1)), rows.int64(i, 2),
                                                    st.thresholds));
        counts[l.value_or("none")]++;
      }
      jobs_log.info("windows re-labelled", {{"windows", static_cast<int64_t>(rows.size())},
                                      {"dns_bound", counts["dns-bound"]},
                                      {"handshake_bound", counts["handshake-bound"]},
                                      {"server_bound", counts["server-bound"]},
                                      {"throughput_bound", counts["throughput-bound"]},
                                      {"unlabelled", counts["none"]}});
      return {};
    }));
  }

 private:
  DiagnoserSettings st_;
};

}  // namespace

}  // namespace gantry::telemetry::jobs

namespace gantry::telemetry {

core::runtime::RoleInfo diagnoser_role() {
  return {"diagnoser", "Telemetry job: re-label the agg_1m windows of a time range (--from, --to), then exit",
          [] { return std::make_unique<jobs::DiagnoserFactory>(); }};
}

store::postgres::MigrationTarget migration_target() {
  auto st = std::make_shared<DbSettings>();
  return {[st](core::config::Schema& s) { telemetry::bind(s, st.get(), false); },
          [st](const std::string& url) {
            DbSettings d = *st;
            d.url = url;
            return d.connection_string();
          },
          [](store::postgres::Connection& c) { return c.migrate(aggregator::kMigrations); },
          [](store::postgres::Connection& c) { return c.schema_version(); }};
}

}  // namespace gantry::telemetry
