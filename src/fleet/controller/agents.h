// The controller's registered agents in memory: what every authenticated request consults,
// never the store. Callers write the store first and change this only after it committed, so
// a failed write leaves both as they were. Thread-safe: lookups take a shared lock, changes an
// exclusive one; an Agent's mutable fields are under its own mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "fleet/controller/store.h"

namespace gantry::fleet::controller {

// One registered agent. Identity is fixed at registration; the rest changes under mu.
struct Agent {
  std::string id, name, hostname, version, start_time, created_at;
  std::atomic<int> interval{0};  // 0 = the global default
  mutable std::mutex mu;
  std::string token_hash, reported_status, last_heartbeat, last_config_version, updated_at;
  core::WallTime last_contact{};
};

// Agents by status, from the age of their last contact, and how many reported a version other
// than the latest.
struct Census {
  size_t online = 0, stale = 0, offline = 0, lagging = 0;
  size_t by_status(std::string_view s) const { return s == "online" ? online : s == "stale" ? stale : offline; }
};

class Agents {
 public:
  // An agent silent for stale_after is "stale", for offline_after "offline".
  Agents(std::chrono::milliseconds stale_after, std::chrono::milliseconds offline_after)
      : stale_after_(stale_after), offline_after_(offline_after) {}

  // The agent holding the token with this hash, or null.
  std::shared_ptr<Agent> by_token(const std::string& hash) const;
  // The hot path of polling: that agent's own interval (0 = the default) without taking a
  // reference to it; false when no agent holds the token.
  bool interval_by_token(const std::string& hash, int* interval) const;
  std::shared_ptr<Agent> find(std::string_view id) const;
  // Every agent, newest registration first.
  std::vector<std::shared_ptr<Agent>> newest_first() const;
  size_t size() const;

  // Adds the agent of `r`; an id already known keeps the agent held (returned either way).
  std::shared_ptr<Agent> remember(const AgentRecord& r);
  // A stored change made by another controller sharing the store: a rotated token (the old one
  // stops working here) or a new interval; an unknown id is remembered. True when the token of
  // a known agent changed.
  bool update(const AgentRecord& r);
  // The agent's token is now the one with this hash; the old one stops working.
  void set_token(Agent& a, const std::string& hash, const std::string& at);
  // The agent and its token are gone.
  void forget(Agent& a);
  // Forgets every agent whose id is not in `present`; returns the ids forgotten.
  std::vector<std::string> keep_only(const std::unordered_set<std::string>& present);

  // "online", "stale" or "offline". Call with a.mu held.
  std::string_view status_of(const Agent& a, core::WallTime now) const;
  Census census(std::string_view latest_etag, core::WallTime now) const;

 private:
  const std::chrono::milliseconds stale_after_, offline_after_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Agent>> by_id_, by_token_;
};

}  // namespace gantry::fleet::controller
