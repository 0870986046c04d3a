// Where the Orchestrator's PostgreSQL and RabbitMQ are, with the original's environment names,
// and the scanner ring (spec orchestrator.md). Shared by `gantry orchestrator`,
// `gantry scan-bridge` and `gantry migrate orchestrator`.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "bus/amqp/pool.h"
#include "core/config.h"
#include "store/postgres/pool.h"

namespace gantry::orchestrator {

struct DbSettings {
  std::string url;  // wins over the parts
  std::string host = "localhost", name = "postgres", user = "postgres", password, schema = "public";
  int port = 5432;
  int max_open = 25, max_idle = 10;
  std::chrono::milliseconds max_lifetime{300'000};
  // libpq connection string: the URL, or keywords from the parts; the schema becomes the
  // session's search_path either way.
  std::string connection_string() const;
  store::postgres::PoolOptions pool(std::string name) const;
};
// db_url (--db-url, DATABASE_URL) and POSTGRESQL_{HOSTNAME,PORT,DB,USERNAME,PASSWORD,SCHEMA};
// with_pool adds the pool limits (max open 25, max idle 10, lifetime 5 min); with_url = false
// leaves db_url out (`gantry migrate` binds one for every system).
void bind(core::config::Schema& s, DbSettings* d, bool with_pool, bool with_url = true);

struct AmqpSettings {
  std::string url;  // wins over the parts
  std::string host = "localhost", user = "guest", password = "guest", vhost = "/";
  int port = 5672;
  int min_open = 2, max_open = 10, dial_retries = 10;
  std::chrono::milliseconds max_idle{3'600'000}, max_lifetime{7'200'000}, dial_wait{2'000};
  std::string amqp_url() const;  // amqp://user:pass@host:port/vhost, parts percent-encoded
  bus::amqp::PoolOptions pool(std::string name) const;
};
// amqp_url (--amqp-url, AMQP_URL) and RABBITMQ_{HOSTNAME,PORT,USERNAME,PASSWORD,VHOST}; with_pool
// adds the spec's pool limits (min 2, max 10, idle 1 h, lifetime 2 h, dial retries 10 × 2 s).
void bind(core::config::Schema& s, AmqpSettings* a, bool with_pool);

// The scanner ring: asmm8 -> naabum8 -> katanam8 -> num8 -> asmm8. The kick goes to the first.
inline std::vector<std::string> default_services() { return {"asmm8", "naabum8", "katanam8", "num8"}; }
// A service name is a routing-key word: letters, digits, '-' and '_' (no '.', '#', '*').
bool valid_service_name(std::string_view s);
// A rule for Schema::check: every service valid, none twice, at least one.
std::optional<std::string> check_services(const std::vector<std::string>& services);

}  // namespace gantry::orchestrator
