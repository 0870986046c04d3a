#include "orchestrator/schema.h"

namespace gantry::orchestrator {

core::Status apply_schema(store::postgres::Connection& c, const std::string& schema) {
  if (schema != "public") GANTRY_RETURN_IF_ERROR(c.exec("CREATE SCHEMA IF NOT EXISTS \"" + schema + "\""));
  return c.migrate(kMigrations, kVersionTable);
}

}  // namespace gantry::orchestrator
