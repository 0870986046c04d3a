// The controller's durable state: registered agents (agent_configs + agents) and the
// append-only configuration history (configurations). Table and column names are the
// original system's, so its operators' queries keep working.
//
// Two implementations, one contract: SQLite (the default; one controller owns the file) and
// PostgreSQL (DATABASE_URL; several controllers may share it). Neither is thread-safe; the
// controller serialises calls. Timestamps are RFC 3339 UTC text at this interface.
#pragma once

#include <chrono>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace gantry::fleet::controller {

using core::Result;
using core::Status;

struct AgentRecord {
  std::string agent_id;
  std::string agent_name;
  std::string token_hash;
  std::optional<int> poll_interval_seconds;  // nullopt = the global default
  std::string status;                        // as last reported by the agent
  std::string last_heartbeat;                // "" = never
  std::string last_config_version;
  std::string hostname;
  std::string version;
  std::string start_time;
  std::string created_at;
  std::string updated_at;
};

struct ConfigRecord {
  int64_t id = 0;
  std::string etag;
  std::string config_data;  // JSON object text
  std::string created_by;
  std::string created_at;
};

struct HeartbeatRow {
  std::string agent_id;
  std::string at;
  std::string config_version;
  std::string status;
};

class Store {
 public:
  virtual ~Store() = default;
  // Applies pending schema migrations.
  virtual Status migrate() = 0;
  virtual Result<std::vector<AgentRecord>> load_agents() = 0;
  virtual Result<std::optional<AgentRecord>> agent_by_token_hash(const std::string& hash) = 0;
  virtual Result<std::optional<ConfigRecord>> latest_config() = 0;
  virtual Result<std::optional<ConfigRecord>> config_by_etag(const std::string& etag) = 0;
  // Newest first.
  virtual Result<std::vector<ConfigRecord>> history(int limit) = 0;
  // Fills in the id.
  virtual Status insert_config(ConfigRecord& c) = 0;
  // Both rows in one transaction.
  virtual Status insert_agent(const AgentRecord& a) = 0;
  // Each returns false when no such agent exists (nothing changed).
  virtual Result<bool> set_token_hash(const std::string& agent_id, const std::string& hash, const std::string& at) = 0;
  virtual Result<bool> set_poll_interval(const std::string& agent_id, std::optional<int> seconds, const std::string& at) = 0;
  virtual Result<bool> delete_agent(const std::string& agent_id) = 0;
  // All rows in one transaction: the group commit of heartbeats.
  virtual Status write_heartbeats(std::span<const HeartbeatRow> rows) = 0;

  // What other controllers sharing the database changed: agents whose credentials or settings
  // changed (registered, token rotated, interval set) at or after `since` (a high_water of an
  // earlier call, with a few seconds' overlap for late commits; "" = all agents), the number
  // of agents, and the high water to pass next time. Only a shared store needs it: the default
  // (a store one controller owns) reports no change.
  struct AgentSync {
    std::vector<AgentRecord> changed;
    int64_t count = -1;  // -1: not known
    std::string high_water;
  };
  virtual Result<AgentSync> agent_sync(const std::string& since) {
    (void)since;
    return AgentSync{};
  }
  // Every agent's id (to find the ones deleted elsewhere).
  virtual Result<std::vector<std::string>> agent_ids() { return std::vector<std::string>{}; }
  virtual std::string describe() const = 0;
};

// path: a file (directories created). url: postgres://…
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);
// Every statement is bounded by `timeout` (server and client side, see store/postgres/pg.h).
Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace gantry::fleet::controller
