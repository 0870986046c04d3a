#include "fleet/controller/agents.h"

#include <algorithm>

namespace gantry::fleet::controller {

std::shared_ptr<Agent> Agents::by_token(const std::string& hash) const {
  std::shared_lock lk(mu_);
  auto it = by_token_.find(hash);
  return it == by_token_.end() ? nullptr : it->second;
}

bool Agents::interval_by_token(const std::string& hash, int* interval) const {
  std::shared_lock lk(mu_);
  auto it = by_token_.find(hash);
  if (it == by_token_.end()) return false;
  *interval = it->second->interval.load(std::memory_order_relaxed);
  return true;
}

std::shared_ptr<Agent> Agents::find(std::string_view id) const {
  std::shared_lock lk(mu_);
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Agent>> Agents::newest_first() const {
  std::vector<std::shared_ptr<Agent>> all;
  {
    std::shared_lock lk(mu_);
    all.reserve(by_id_.size());
    for (auto& [_, a] : by_id_) all.push_back(a);
  }
  std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) {
    return x->created_at != y->created_at ? x->created_at > y->created_at : x->id > y->id;
  });
  return all;
}

size_t Agents::size() const {
  std::shared_lock lk(mu_);
  return by_id_.size();
}

std::shared_ptr<Agent> Agents::remember(const AgentRecord& r) {
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
  a->last_contact =
      core::parse_rfc3339(r.last_heartbeat.empty() ? r.created_at : r.last_heartbeat).value_or(core::WallTime{});
  std::unique_lock lk(mu_);
  if (auto it = by_id_.find(a->id); it != by_id_.end()) return it->second;
  by_id_[a->id] = a;
  by_token_[a->token_hash] = a;
  return a;
}

bool Agents::update(const AgentRecord& r) {
  {
    std::unique_lock lk(mu_);
    if (auto it = by_id_.find(r.agent_id); it != by_id_.end()) {
      Agent& a = *it->second;
      std::lock_guard al(a.mu);
      bool rotated = a.token_hash != r.token_hash;
      if (rotated) {
        by_token_.erase(a.token_hash);
        a.token_hash = r.token_hash;
        by_token_[a.token_hash] = it->second;
      }
      a.interval = r.poll_interval_seconds.value_or(0);
      return rotated;
    }
  }
  remember(r);
  return false;
}

void Agents::set_token(Agent& a, const std::string& hash, const std::string& at) {
  std::unique_lock lk(mu_);
  std::lock_guard al(a.mu);
  auto held = by_id_.find(a.id);
  by_token_.erase(a.token_hash);
  a.token_hash = hash;
  a.updated_at = at;
  if (held != by_id_.end()) by_token_[hash] = held->second;  // not brought back if forgotten meanwhile
}

void Agents::forget(Agent& a) {
  std::unique_lock lk(mu_);
  std::lock_guard al(a.mu);
  by_token_.erase(a.token_hash);
  by_id_.erase(a.id);
}

std::vector<std::string> Agents::keep_only(const std::unordered_set<std::string>& present) {
  std::vector<std::string> gone;
  std::unique_lock lk(mu_);
  for (auto it = by_id_.begin(); it != by_id_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    {
      std::lock_guard al(it->second->mu);
      by_token_.erase(it->second->token_hash);
    }
    gone.push_back(it->first);
    it = by_id_.erase(it);
  }
  return gone;
}

std::string_view Agents::status_of(const Agent& a, core::WallTime now) const {
  auto age = now - a.last_contact;
  if (age < stale_after_) return "online";
  if (age < offline_after_) return "stale";
  return "offline";
}

Census Agents::census(std::string_view latest_etag, core::WallTime now) const {
  Census c;
  std::shared_lock lk(mu_);
  for (auto& [_, a] : by_id_) {
    std::lock_guard alk(a->mu);
    std::string_view st = status_of(*a, now);
    ++(st == "online" ? c.online : st == "stale" ? c.stale : c.offline);
    if (a->last_config_version != latest_etag) ++c.lagging;
  }
  return c;
}

}  // namespace gantry::fleet::controller
