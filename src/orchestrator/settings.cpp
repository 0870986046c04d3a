#include "orchestrator/settings.h"

#include <set>

namespace gantry::orchestrator {

namespace {

// RFC 3986 unreserved characters stay; everything else is %XX (user, password, vhost "/").
std::string pct(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// A libpq keyword value: quoted, with \ and ' escaped.
std::string kw(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

std::string DbSettings::connection_string() const {
  // search_path through the startup packet's options, so every session (pool, listener, lock)
  // sees the schema without a SET that a pooled connection could lose.
  std::string opts = "-csearch_path=" + schema;
  if (!url.empty()) {
    bool is_uri = url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
    if (schema == "public") return url;
    if (is_uri) return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=" + pct(opts);
    return url + " options=" + kw(opts);
  }
  std::string s = "host=" + kw(host) + " port=" + std::to_string(port) + " dbname=" + kw(name) + " user=" + kw(user);
  if (!password.empty()) s += " password=" + kw(password);
  if (schema != "public") s += " options=" + kw(opts);
  return s;
}

store::postgres::PoolOptions DbSettings::pool(std::string label) const {
  store::postgres::PoolOptions o;
  o.url = connection_string();
  o.name = std::move(label);
  o.max_open = max_open;
  o.max_idle = max_idle;
  o.max_lifetime = max_lifetime;
  o.max_idle_time = max_lifetime;
  o.connection.application_name = "gantry-orchestrator";
  return o;
}

void bind(core::config::Schema& s, DbSettings* d, bool with_pool, bool with_url) {
  if (with_url) s.add("db_url", &d->url, "PostgreSQL URL (else built from the POSTGRESQL_* settings)").env("DATABASE_URL").secret();
  s.add("postgresql_hostname", &d->host, "PostgreSQL host").env("POSTGRESQL_HOSTNAME");
  s.add("postgresql_port", &d->port, "PostgreSQL port").env("POSTGRESQL_PORT").range(1, 65535);
  s.add("postgresql_db", &d->name, "PostgreSQL database").env("POSTGRESQL_DB");
  s.add("postgresql_username", &d->user, "PostgreSQL user").env("POSTGRESQL_USERNAME");
  s.add("postgresql_password", &d->password, "PostgreSQL password").env("POSTGRESQL_PASSWORD").secret();
  s.add("postgresql_schema", &d->schema, "schema holding cptm8domain (the session's search_path)")
      .env("POSTGRESQL_SCHEMA")
      .check([d]() -> std::optional<std::string> {
        if (d->schema.empty()) return "must not be empty";
        for (char c : d->schema)
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return "letters, digits and '_' only";
        return std::nullopt;
      });
  if (!with_pool) return;
  s.add("db_max_open", &d->max_open, "PostgreSQL pool: most connections").env("DB_MAX_OPEN_CONNS").range(1, 1000);
  s.add("db_max_idle", &d->max_idle, "PostgreSQL pool: idle connections kept").env("DB_MAX_IDLE_CONNS").range(0, 1000);
  s.add("db_max_lifetime", &d->max_lifetime, "PostgreSQL pool: a connection is replaced after this")
      .env("DB_CONN_MAX_LIFETIME")
      .range(1000, 86'400'000);
}

std::string AmqpSettings::amqp_url() const {
  if (!url.empty()) return url;
  return "amqp://" + pct(user) + ":" + pct(password) + "@" + host + ":" + std::to_string(port) + "/" + pct(vhost);
}

bus::amqp::PoolOptions AmqpSettings::pool(std::string label) const {
  bus::amqp::PoolOptions o;
  o.url = amqp_url();
  o.name = label;
  o.min_open = min_open;
  o.max_open = max_open;
  o.max_idle = max_idle;
  o.max_lifetime = max_lifetime;
  o.dial_retries = dial_retries;
  o.dial_wait = dial_wait;
  o.channel.connection_name = "gantry-" + label;
  return o;
}

void bind(core::config::Schema& s, AmqpSettings* a, bool with_pool) {
  s.add("amqp_url", &a->url, "RabbitMQ URL (else built from the RABBITMQ_* settings)").env("AMQP_URL").secret();
  s.add("rabbitmq_hostname", &a->host, "RabbitMQ host").env("RABBITMQ_HOSTNAME");
  s.add("rabbitmq_port", &a->port, "RabbitMQ port").env("RABBITMQ_PORT").range(1, 65535);
  s.add("rabbitmq_username", &a->user, "RabbitMQ user").env("RABBITMQ_USERNAME");
  s.add("rabbitmq_password", &a->password, "RabbitMQ password").env("RABBITMQ_PASSWORD").secret();
  s.add("rabbitmq_vhost", &a->vhost, "RabbitMQ virtual host").env("RABBITMQ_VHOST");
  if (!with_pool) return;
  s.add("amqp_min_open", &a->min_open, "RabbitMQ pool: connections kept open").range(1, 100);
  s.add("amqp_max_open", &a->max_open, "RabbitMQ pool: most connections").range(1, 100).check([a]() -> std::optional<std::string> {
    if (a->max_open < a->min_open) return "must be at least amqp_min_open";
    return std::nullopt;
  });
  s.add("amqp_max_idle", &a->max_idle, "RabbitMQ pool: an idle connection beyond the minimum is closed after this")
      .range(1000, 86'400'000);
  s.add("amqp_max_lifetime", &a->max_lifetime, "RabbitMQ pool: a connection is replaced after this").range(1000, 86'400'000);
  s.add("amqp_dial_retries", &a->dial_retries, "RabbitMQ: connection attempts before giving up").range(1, 1000);
  s.add("amqp_dial_wait", &a->dial_wait, "RabbitMQ: wait between connection attempts").range(0, 600'000);
}

bool valid_service_name(std::string_view s) {
  if (s.empty() || s.size() > 100) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  return true;
}

std::optional<std::string> check_services(const std::vector<std::string>& services) {
  if (services.empty()) return "needs at least one service";
  std::set<std::string> seen;
  for (auto& s : services) {
    if (!valid_service_name(s)) return "'" + s + "' is not a service name (letters, digits, '-', '_')";
    if (!seen.insert(s).second) return "'" + s + "' given twice";
  }
  return std::nullopt;
}

}  // namespace gantry::orchestrator
