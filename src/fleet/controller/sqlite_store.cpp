// The controller's store on SQLite: one file, one writer (WAL, synchronous=NORMAL).
#include "fleet/controller/store.h"
#include "store/sqlite/db.h"

namespace gantry::fleet::controller {

namespace {

using store::sqlite::Db;
using store::sqlite::Statement;

constexpr store::Migration kSqliteMigrations[] = {
    {1, "fleet controller tables", R"sql(
CREATE TABLE agent_configs (
  id TEXT PRIMARY KEY,
  agent_name TEXT NOT NULL,
  api_token_hash TEXT NOT NULL UNIQUE,
  poll_interval_seconds INTEGER,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY REFERENCES agent_configs(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT '',
  last_heartbeat TEXT,
  last_config_version TEXT NOT NULL DEFAULT '',
  hostname TEXT NOT NULL,
  version TEXT NOT NULL DEFAULT '',
  start_time TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE configurations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  etag TEXT NOT NULL UNIQUE,
  config_data TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL
);
)sql"},
};

constexpr const char* kAgentColumns =
    "c.id, c.agent_name, c.api_token_hash, c.poll_interval_seconds, a.status, a.last_heartbeat, "
    "a.last_config_version, a.hostname, a.version, a.start_time, c.created_at, a.updated_at "
    "FROM agent_configs c JOIN agents a ON a.agent_id = c.id";

AgentRecord agent_from(const Statement& st) {
  AgentRecord a;
  a.agent_id = st.text(0);
  a.agent_name = st.text(1);
  a.token_hash = st.text(2);
  if (!st.is_null(3)) a.poll_interval_seconds = static_cast<int>(st.int64(3));
  a.status = st.text(4);
  if (!st.is_null(5)) a.last_heartbeat = st.text(5);
  a.last_config_version = st.text(6);
  a.hostname = st.text(7);
  a.version = st.text(8);
  a.start_time = st.text(9);
  a.created_at = st.text(10);
  a.updated_at = st.text(11);
  return a;
}

ConfigRecord config_from(const Statement& st) {
  return {st.int64(0), std::string(st.text(1)), std::string(st.text(2)), std::string(st.text(3)),
          std::string(st.text(4))};
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  Status migrate() override {
    GANTRY_RETURN_IF_ERROR(db_->migrate(kSqliteMigrations));
    // Heartbeats are the one hot write; prepare it once.
    auto st = db_->prepare(
        "UPDATE agents SET last_heartbeat = ?, last_config_version = ?, status = ?, updated_at = ? "
        "WHERE agent_id = ?");
    if (!st.is_ok()) return st.status();
    heartbeat_.emplace(std::move(*st));
    return {};
  }

  Result<std::vector<AgentRecord>> load_agents() override {
    GANTRY_ASSIGN(st, db_->prepare(std::string("SELECT ") + kAgentColumns + " ORDER BY c.created_at"));
    std::vector<AgentRecord> out;
    for (;;) {
      auto more = st.step();
      if (!more.is_ok()) return more.status();
      if (!*more) break;
      out.push_back(agent_from(st));
    }
    return out;
  }

  Result<std::optional<AgentRecord>> agent_by_token_hash(const std::string& hash) override {
    GANTRY_ASSIGN(st, db_->prepare(std::string("SELECT ") + kAgentColumns + " WHERE c.api_token_hash = ?"));
    st.bind(1, hash);
    auto more = st.step();
    if (!more.is_ok()) return more.status();
    if (!*more) return std::optional<AgentRecord>();
    return std::optional<AgentRecord>(agent_from(st));
  }

  Result<std::optional<ConfigRecord>> latest_config() override {
    return one_config("SELECT id, etag, config_data, created_by, created_at FROM configurations ORDER BY id DESC LIMIT 1", {});
  }

  Result<std::optional<ConfigRecord>> config_by_etag(const std::string& etag) override {
    return one_config("SELECT id, etag, config_data, created_by, created_at FROM configurations WHERE etag = ?", etag);
  }

  Result<std::vector<ConfigRecord>> history(int limit) override {
    GANTRY_ASSIGN(st, db_->prepare("SELECT id, etag, config_data, created_by, created_at FROM configurations "
                                   "ORDER BY id DESC LIMIT ?"));
    st.bind(1, limit);
    std::vector<ConfigRecord> out;
    for (;;) {
      auto more = st.step();
      if (!more.is_ok()) return more.status();
      if (!*more) break;
      out.push_back(config_from(st));
    }
    return out;
  }

  Status insert_config(ConfigRecord& c) override {
    GANTRY_ASSIGN(st, db_->prepare("INSERT INTO configurations(etag, config_data, created_by, created_at) VALUES (?, ?, ?, ?)"));
    st.bind(1, c.etag).bind(2, c.config_data).bind(3, c.created_by).bind(4, c.created_at);
    GANTRY_RETURN_IF_ERROR(st.run());
    c.id = db_->last_insert_rowid();
    return {};
  }

  Status insert_agent(const AgentRecord& a) override {
    return db_->transaction([&]() -> Status {
      GANTRY_ASSIGN(c, db_->prepare("INSERT INTO agent_configs(id, agent_name, api_token_hash, poll_interval_seconds, "
                                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"));
      c.bind(1, a.agent_id).bind(2, a.agent_name).bind(3, a.token_hash).bind(4, a.poll_interval_seconds);
      c.bind(5, a.created_at).bind(6, a.updated_at);
      GANTRY_RETURN_IF_ERROR(c.run());
      GANTRY_ASSIGN(g, db_->prepare("INSERT INTO agents(agent_id, status, last_heartbeat, last_config_version, hostname, "
                                    "version, start_time, created_at, updated_at) VALUES (?, ?, NULL, '', ?, ?, ?, ?, ?)"));
      g.bind(1, a.agent_id).bind(2, a.status).bind(3, a.hostname).bind(4, a.version).bind(5, a.start_time);
      g.bind(6, a.created_at).bind(7, a.updated_at);
      return g.run();
    });
  }

  Result<bool> set_token_hash(const std::string& id, const std::string& hash, const std::string& at) override {
    return update("UPDATE agent_configs SET api_token_hash = ?, updated_at = ? WHERE id = ?", hash, at, id);
  }

  Result<bool> set_poll_interval(const std::string& id, std::optional<int> seconds, const std::string& at) override {
    GANTRY_ASSIGN(st, db_->prepare("UPDATE agent_configs SET poll_interval_seconds = ?, updated_at = ? WHERE id = ?"));
    st.bind(1, seconds).bind(2, at).bind(3, id);
    GANTRY_RETURN_IF_ERROR(st.run());
    return st.changes() > 0;
  }

  Result<bool> delete_agent(const std::string& id) override {
    GANTRY_ASSIGN(st, db_->prepare("DELETE FROM agent_configs WHERE id = ?"));
    st.bind(1, id);
    GANTRY_RETURN_IF_ERROR(st.run());
    return st.changes() > 0;  // agents row goes by ON DELETE CASCADE
  }

  Status write_heartbeats(std::span<const HeartbeatRow> rows) override {
    return db_->transaction([&]() -> Status {
      for (const HeartbeatRow& r : rows) {
        heartbeat_->bind(1, r.at).bind(2, r.config_version).bind(3, r.status).bind(4, r.at).bind(5, r.agent_id);
        GANTRY_RETURN_IF_ERROR(heartbeat_->run());
      }
      return Status();
    });
  }

  std::string describe() const override { return "sqlite:" + db_->path(); }

 private:
  Result<std::optional<ConfigRecord>> one_config(std::string_view sql, std::optional<std::string> arg) {
    GANTRY_ASSIGN(st, db_->prepare(sql));
    if (arg) st.bind(1, *arg);
    auto more = st.step();
    if (!more.is_ok()) return more.status();
    if (!*more) return std::optional<ConfigRecord>();
    return std::optional<ConfigRecord>(config_from(st));
  }

  Result<bool> update(std::string_view sql, const std::string& a, const std::string& b, const std::string& c) {
    GANTRY_ASSIGN(st, db_->prepare(sql));
    st.bind(1, a).bind(2, b).bind(3, c);
    GANTRY_RETURN_IF_ERROR(st.run());
    return st.changes() > 0;
  }

  std::unique_ptr<Db> db_;
  std::optional<Statement> heartbeat_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  auto db = Db::open(path);
  if (!db.is_ok()) return db.status();
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(*db)));
}

}  // namespace gantry::fleet::controller
