// The domain administration API (beyond the original, which had only the data layer):
//   GET /domains, POST /domains, GET/PUT/DELETE /domains/{uuid}
// behind admin Basic auth. Every statement goes through the PostgreSQL pool's batched queue
// (Pool::submit_query) and is answered from the pool thread, so no io thread waits on the
// database. Errors: 400 bad body or id (nothing written), 401 credentials, 404 unknown id,
// 409 duplicate name, 503 database unavailable.
#pragma once

#include <string>

#include "core/http/router.h"
#include "store/postgres/pool.h"

namespace gantry::orchestrator {

struct AdminCredentials {
  std::string user = "admin", password = "password";
};

void add_domain_routes(core::http::Router& r, store::postgres::Pool* const* db, const AdminCredentials* admin);

}  // namespace gantry::orchestrator
