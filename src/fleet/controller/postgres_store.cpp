// The controller's store on PostgreSQL (DATABASE_URL): several controllers may share it.
// Timestamps are timestamptz and configurations JSONB, so operators can query them; they
// cross this interface as RFC 3339 text.
#include "fleet/controller/store.h"
#include "store/postgres/pg.h"

namespace gantry::fleet::controller {

namespace {

using store::postgres::Connection;
using store::postgres::Param;
using store::postgres::Rows;

constexpr store::Migration kPostgresMigrations[] = {
    {1, "fleet controller tables", R"sql(
CREATE TABLE agent_configs (
  id TEXT PRIMARY KEY,
  agent_name TEXT NOT NULL,
  api_token_hash TEXT NOT NULL UNIQUE,
  poll_interval_seconds INTEGER,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY REFERENCES agent_configs(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT '',
  last_heartbeat TIMESTAMPTZ,
  last_config_version TEXT NOT NULL DEFAULT '',
  hostname TEXT NOT NULL,
  version TEXT NOT NULL DEFAULT '',
  start_time TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE configurations (
  id BIGSERIAL PRIMARY KEY,
  etag TEXT NOT NULL UNIQUE,
  config_data JSONB NOT NULL,
  created_by TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL
);
)sql"},
};

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

constexpr const char* kAgentSelect =
    "SELECT c.id, c.agent_name, c.api_token_hash, c.poll_interval_seconds, a.status, " TS("a.last_heartbeat") ", "
    "a.last_config_version, a.hostname, a.version, a.start_time, " TS("c.created_at") ", " TS("a.updated_at") " "
    "FROM agent_configs c JOIN agents a ON a.agent_id = c.id";
constexpr const char* kConfigSelect =
    "SELECT id, etag, config_data::text, created_by, " TS("created_at") " FROM configurations";

AgentRecord agent_from(const Rows& r, int i) {
  AgentRecord a;
  a.agent_id = r.get(i, 0);
  a.agent_name = r.get(i, 1);
  a.token_hash = r.get(i, 2);
  if (!r.is_null(i, 3)) a.poll_interval_seconds = static_cast<int>(r.int64(i, 3));
  a.status = r.get(i, 4);
  if (!r.is_null(i, 5)) a.last_heartbeat = r.get(i, 5);
  a.last_config_version = r.get(i, 6);
  a.hostname = r.get(i, 7);
  a.version = r.get(i, 8);
  a.start_time = r.get(i, 9);
  a.created_at = r.get(i, 10);
  a.updated_at = r.get(i, 11);
  return a;
}

ConfigRecord config_from(const Rows& r, int i) {
  return {r.int64(i, 0), std::string(r.get(i, 1)), std::string(r.get(i, 2)), std::string(r.get(i, 3)),
          std::string(r.get(i, 4))};
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(std::unique_ptr<Connection> c) : c_(std::move(c)) {}

  Status migrate() override { return c_->migrate(kPostgresMigrations); }

  Result<std::vector<AgentRecord>> load_agents() override {
    GANTRY_ASSIGN(r, c_->query(std::string(kAgentSelect) + " ORDER BY c.created_at"));
    std::vector<AgentRecord> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(agent_from(r, i));
    return out;
  }

  Result<AgentSync> agent_sync(const std::string& since) override {
    // The high water first: a change committed after it is seen next time, by the overlap.
    GANTRY_ASSIGN(m, c_->query("SELECT " TS("max(updated_at)") ", count(*) FROM agent_configs"));
    AgentSync out;
    out.high_water = m.is_null(0, 0) ? since : std::string(m.get(0, 0));
    out.count = m.int64(0, 1);
    GANTRY_ASSIGN(r, since.empty() ? c_->query(kAgentSelect)
                                   : c_->query(std::string(kAgentSelect) +
                                                   " WHERE c.updated_at >= $1::timestamptz - interval '5 seconds'",
                                               {since}));
    for (int i = 0; i < r.size(); ++i) out.changed.push_back(agent_from(r, i));
    return out;
  }

  Result<std::vector<std::string>> agent_ids() override {
    GANTRY_ASSIGN(r, c_->query("SELECT id FROM agent_configs"));
    std::vector<std::string> out;
    for (int i = 0; i < r.size(); ++i) out.emplace_back(r.get(i, 0));
    return out;
  }

  Result<std::optional<AgentRecord>> agent_by_token_hash(const std::string& hash) override {
    GANTRY_ASSIGN(r, c_->query(std::string(kAgentSelect) + " WHERE c.api_token_hash = $1", {hash}));
    if (r.size() == 0) return std::optional<AgentRecord>();
    return std::optional<AgentRecord>(agent_from(r, 0));
  }

  Result<std::optional<ConfigRecord>> latest_config() override {
    GANTRY_ASSIGN(r, c_->query(std::string(kConfigSelect) + " ORDER BY id DESC LIMIT 1"));
    if (r.size() == 0) return std::optional<ConfigRecord>();
    return std::optional<ConfigRecord>(config_from(r, 0));
  }

  Result<std::optional<ConfigRecord>> config_by_etag(const std::string& etag) override {
    GANTRY_ASSIGN(r, c_->query(std::string(kConfigSelect) + " WHERE etag = $1", {etag}));
    if (r.size() == 0) return std::optional<ConfigRecord>();
    return std::optional<ConfigRecord>(config_from(r, 0));
  }

  Result<std::vector<ConfigRecord>> history(int limit) override {
    std::string l = std::to_string(limit);
    GANTRY_ASSIGN(r, c_->query(std::string(kConfigSelect) + " ORDER BY id DESC LIMIT $1", {l}));
    std::vector<ConfigRecord> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(config_from(r, i));
    return out;
  }

  Status insert_config(ConfigRecord& c) override {
    GANTRY_ASSIGN(r, c_->query("INSERT INTO configurations(etag, config_data, created_by, created_at) "
                               "VALUES ($1, $2::jsonb, $3, $4) RETURNING id, config_data::text",
                               {c.etag, c.config_data, c.created_by, c.created_at}));
    c.id = r.int64(0, 0);
    return {};
  }

  Status insert_agent(const AgentRecord& a) override {
    std::optional<std::string> interval;
    if (a.poll_interval_seconds) interval = std::to_string(*a.poll_interval_seconds);
    return c_->transaction([&]() -> Status {
      auto r = c_->query("INSERT INTO agent_configs(id, agent_name, api_token_hash, poll_interval_seconds, created_at, "
                         "updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                         {a.agent_id, a.agent_name, a.token_hash, interval ? Param(*interval) : Param(), a.created_at,
                          a.updated_at});
      if (!r.is_ok()) return r.status();
      return c_->query("INSERT INTO agents(agent_id, status, last_config_version, hostname, version, start_time, "
                       "created_at, updated_at) VALUES ($1, $2, '', $3, $4, $5, $6, $7)",
                       {a.agent_id, a.status, a.hostname, a.version, a.start_time, a.created_at, a.updated_at})
          .status();
    });
  }

  Result<bool> set_token_hash(const std::string& id, const std::string& hash, const std::string& at) override {
    GANTRY_ASSIGN(r, c_->query("UPDATE agent_configs SET api_token_hash = $1, updated_at = $2 WHERE id = $3", {hash, at, id}));
    return r.affected() > 0;
  }

  Result<bool> set_poll_interval(const std::string& id, std::optional<int> seconds, const std::string& at) override {
    std::optional<std::string> s;
    if (seconds) s = std::to_string(*seconds);
    GANTRY_ASSIGN(r, c_->query("UPDATE agent_configs SET poll_interval_seconds = $1, updated_at = $2 WHERE id = $3",
                               {s ? Param(*s) : Param(), at, id}));
    return r.affected() > 0;
  }

  Result<bool> delete_agent(const std::string& id) override {
    GANTRY_ASSIGN(r, c_->query("DELETE FROM agent_configs WHERE id = $1", {id}));
    return r.affected() > 0;
  }

  // One statement for the whole batch: one round trip however many heartbeats it carries.
  Status write_heartbeats(std::span<const HeartbeatRow> rows) override {
    std::vector<std::string_view> ids, ats, versions, statuses;
    for (const HeartbeatRow& r : rows) {
      ids.push_back(r.agent_id);
      ats.push_back(r.at);
      versions.push_back(r.config_version);
      statuses.push_back(r.status);
    }
    return c_->query("UPDATE agents a SET last_heartbeat = u.at, last_config_version = u.v, status = u.s, "
                     "updated_at = u.at FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) "
                     "AS u(id, at, v, s) WHERE a.agent_id = u.id",
                     {store::postgres::array_literal(ids), store::postgres::array_literal(ats), store::postgres::array_literal(versions),
                      store::postgres::array_literal(statuses)})
        .status();
  }

  std::string describe() const override { return "postgres"; }

 private:
  std::unique_ptr<Connection> c_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url, std::chrono::milliseconds timeout) {
  store::postgres::Options o;
  o.statement_timeout = timeout;
  o.call_timeout = timeout + std::chrono::seconds(1);
  auto c = Connection::connect(url, o);
  if (!c.is_ok()) return c.status();
  return std::unique_ptr<Store>(std::make_unique<PostgresStore>(std::move(*c)));
}

}  // namespace gantry::fleet::controller
