// What the controller, the agents and the workers say to each other, in one place: the push
// message on Redis, the target a configuration names, and its checks. Each role's HTTP shapes
// live with the role; these are the pieces two roles must agree on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bus/redis/redis.h"
#include "core/config.h"
#include "core/http/server.h"
#include "core/status.h"

namespace gantry::fleet {

// Longest poll interval an agent can be told, seconds.
inline constexpr int kMaxInterval = 86400;

// ---- request bodies the controller takes (outside input; fuzz/fleet_protocol.cpp) ----------
// Each returns the body's fields, or kInvalidArgument whose message is the 400 answer's text
// (the spec's wording: "missing required field: hostname", "field url must be a string").

// POST /register: {"hostname", "start_time" (RFC 3339), "version"?}.
struct RegisterBody {
  std::string hostname, start_time, version;
};
core::Result<RegisterBody> parse_register(std::string_view body);
// POST /config: {"url", "proxy"?}; url checked and normalized (check_target_url), proxy checked.
struct ConfigBody {
  std::string url, proxy;
};
core::Result<ConfigBody> parse_config_body(std::string_view body);
// POST /heartbeat: {"config_version", "status"? (default "online")}.
struct HeartbeatBody {
  std::string config_version, status = "online";
};
core::Result<HeartbeatBody> parse_heartbeat(std::string_view body);
// PUT /agents/{id}/interval: {"poll_interval_seconds" or "pollIntervalSeconds": 1..86400 or
// null}; nullopt = back to the default.
core::Result<std::optional<int>> parse_interval(std::string_view body);

// POST /config to a worker (from its agent): {"etag", "config_data" (or "config"): {"url"?,
// "proxy"?}, "id"?}; url normalized and checked when given, proxy checked.
struct WorkerConfig {
  std::string id;  // as the agent sent it (the controller's number), for display
  std::string etag;
  std::string url;
  std::string proxy;
};
core::Result<WorkerConfig> parse_worker_config(std::string_view body);

// ---- the controller's answers the agent reads (outside input too: fuzz/fleet_protocol.cpp) --

// 200 to POST /register: {"agent_id", "api_token", "poll_interval_seconds"?}; an interval that
// is not 1..kMaxInterval is ignored (nullopt).
struct RegisterAnswer {
  std::string agent_id, api_token;
  std::optional<int> poll_interval;
};
core::Result<RegisterAnswer> parse_register_answer(std::string_view body);
// 200 to GET /config: {"etag", "config", "id"?}; worker_body is what the agent forwards to its
// worker: {"id"?, "etag", "config_data"}, which parse_worker_config reads.
struct ConfigAnswer {
  std::string etag;
  std::string worker_body;
};
core::Result<ConfigAnswer> parse_config_answer(std::string_view body);

// Redis channel the controller publishes new versions on.
inline constexpr std::string_view kPushChannel = "config-updates";

// {"agent_id":"","etag":"…","correlation_id":"…"}; an empty agent_id addresses every agent.
struct PushMessage {
  std::string agent_id;
  std::string etag;
  std::string correlation_id;
};
std::string to_json(const PushMessage& m);
core::Result<PushMessage> parse_push(std::string_view json);

// A configuration's url must be an absolute http(s) URL with a host. Returns the problem.
// Accepts what the original (Go's url.Parse) accepted: non-ASCII bytes, spaces and the other
// characters RFC 3986 leaves out are percent-encoded into *normalized (the form to store and
// fetch); control characters are refused.
std::optional<std::string> check_target_url(std::string_view url, std::string* normalized = nullptr);
// A proxy is "", "host:port", "host:port:user:pass" or an http(s):// URL. Returns the problem.
std::optional<std::string> check_proxy(std::string_view proxy);
// The URL libcurl takes for a proxy setting: host:port -> http://host:port,
// host:port:user:pass -> http://user:pass@host:port; URLs and "" unchanged.
std::string proxy_url(std::string_view proxy);

// The original took listen addresses as "[host]:port" (":8080", "127.0.0.1:9000").
// split_listen_addr fills host ("0.0.0.0" when omitted) and port, or returns the problem;
// check_listen_addr accepts "" (not set) too.
std::optional<std::string> split_listen_addr(const std::string& addr, std::string* host, uint16_t* port);
std::optional<std::string> check_listen_addr(const std::string& addr);

// Where a Fleet role listens: `address` and `port`, or `addr` in the original's "[host]:port"
// form, which wins when set. Keys address/port/addr; environment <PREFIX>_HOST, _PORT, _ADDR.
struct Listen {
  std::string address = "0.0.0.0";
  uint16_t port = 0;
  std::string addr;
  static Listen on_port(uint16_t p) {
    Listen l;
    l.port = p;
    return l;
  }
};
void bind(core::config::Schema& s, Listen* l, const std::string& env_prefix);
// The server's address and port from these settings.
void apply(const Listen& l, core::http::ServerOptions* o);

// Push over Redis: the controller publishes on kPushChannel, agents subscribe; both take the
// same settings. Keys redis_enabled, redis_host, redis_port, redis_password, redis_db;
// environment REDIS_ENABLED, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB.
struct RedisPush {
  bool enabled = false;
  std::string host = "localhost";
  int port = 6379;
  std::string password;
  int db = 0;
  bus::redis::Endpoint endpoint() const;
};
// `enabled_help` says what the role does with it.
void bind(core::config::Schema& s, RedisPush* r, const std::string& enabled_help);

// Random identifiers from the system's entropy source.
std::string random_hex(size_t bytes);
std::string uuid4();

// SHA-256 of an API token, lower-case hex: what the controller stores and indexes by.
std::string token_hash(std::string_view token);

}  // namespace gantry::fleet
