// The controller's agent API: registration, heartbeats (group-committed, answered once
// durable), listing and administering agents. See controller.h.
#include "fleet/controller/controller.h"

#include "core/clock.h"
#include "core/http/auth.h"

namespace gantry::fleet::controller {

namespace {
const core::log::Logger agents_api_log("controller");
}  // namespace

void Controller::do_register(const http::Request& q, http::Response& out) {
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
  agents_.remember(a);
  agents_api_log.info("agent registered", {{"agent_id", a.agent_id}, {"hostname", hostname}, {"version", version}});
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

void Controller::heartbeat(const http::Request& q, http::Responder resp, bool from_pool) {
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
      agents_api_log.error("heartbeat not persisted", {{"agent_id", agent->id}, {"error", s.to_string()}});
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

void Controller::agent_json(const Agent& a, const std::string& latest, core::WallTime now, core::json::Writer& w) const {
  std::lock_guard lk(a.mu);
  w.object()
      .field("agent_id", a.id)
      .field("agent_name", a.name)
      .field("hostname", a.hostname)
      .field("version", a.version)
      .field("start_time", a.start_time)
      .field("status", agents_.status_of(a, now))
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

void Controller::list_agents(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  std::vector<std::shared_ptr<Agent>> all = agents_.newest_first();
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

void Controller::get_agent(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  auto a = agents_.find(q.param("id"));
  if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
  std::string body;
  core::json::Writer w(body);
  agent_json(*a, latest_.load()->rec.etag, std::chrono::system_clock::now(), w);
  out.json(200, std::move(body));
}

void Controller::set_interval(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  auto a = agents_.find(q.param("id"));
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
  agents_api_log.info("poll interval updated", {{"agent_id", a->id}, {"seconds", static_cast<int64_t>(seconds.value_or(0))}});
  // Tell the agent now rather than at its next poll.
  if (publisher_) {
    PushMessage m{a->id, latest_.load()->rec.etag, uuid4()};
    publisher_->post([this, msg = to_json(m)] { (void)redis_->publish(kPushChannel, msg); });
  }
  out.json_string(200, "poll interval updated");
}

void Controller::rotate(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  auto a = agents_.find(q.param("id"));
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
  agents_.set_token(*a, hash, now);
  agents_api_log.info("token rotated", {{"agent_id", a->id}});
  std::string body;
  core::json::Writer(body).object().field("agent_id", a->id).field("api_token", token).field("message", "token rotated").end();
  out.json(200, std::move(body));
}

void Controller::delete_agent(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  auto a = agents_.find(q.param("id"));
  if (!a) return out.error(404, "agent not found: " + std::string(q.param("id")));
  core::Result<bool> r = [&] {
    std::lock_guard lk(store_mu_);
    return store_->delete_agent(a->id);
  }();
  if (!r.is_ok()) return store_failure(out, "deleting agent", r.status());
  agents_.forget(*a);
  agents_api_log.info("agent deleted", {{"agent_id", a->id}});
  out.json_string(200, "agent deleted");
}

}  // namespace gantry::fleet::controller
