// Where Telemetry's PostgreSQL is: one URL, or the original's DB_* variables. Shared by the
// aggregator, the diagnoser and `gantry migrate telemetry`.
#pragma once

#include <string>

#include "core/config.h"

namespace gantry::telemetry {

struct DbSettings {
  std::string url;
  std::string host = "localhost", user = "postgres", password, name = "telemetry", sslmode = "disable";
  int port = 5432;
  // The URL when given, else a libpq keyword string from the parts.
  std::string connection_string() const {
    if (!url.empty()) return url;
    return "host=" + host + " port=" + std::to_string(port) + " user=" + user + " password=" + password +
           " dbname=" + name + " sslmode=" + sslmode;
  }
};

// with_url = false binds only the parts (`gantry migrate` binds one db_url for every system).
inline void bind(core::config::Schema& s, DbSettings* d, bool with_url = true) {
  if (with_url)
    s.add("db_url", &d->url, "PostgreSQL URL (else built from the DB_* settings)").env("DB_URL").env("DATABASE_URL").secret();
  s.add("db_host", &d->host, "PostgreSQL host").env("DB_HOST");
  s.add("db_port", &d->port, "PostgreSQL port").env("DB_PORT").range(1, 65535);
  s.add("db_user", &d->user, "PostgreSQL user").env("DB_USER");
  s.add("db_password", &d->password, "PostgreSQL password").env("DB_PASSWORD").secret();
  s.add("db_name", &d->name, "PostgreSQL database").env("DB_NAME");
  s.add("db_sslmode", &d->sslmode, "libpq sslmode").env("DB_SSLMODE");
}

}  // namespace gantry::telemetry
