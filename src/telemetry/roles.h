// The Telemetry system's roles, as the CLI offers them (spec telemetry.md):
//
//   probe       measures targets and delivers one event per measurement to ingest (probe/)
//   ingest      validates, rate-limits and appends probe events to JetStream (ingest/)
//   aggregator  consumes them into exact per-minute statistics and diagnosis in PostgreSQL
//               (aggregator/)
//   diagnoser   job: re-labels the windows of a time range (jobs/)
//   `gantry migrate telemetry` applies aggregator/schema.h (the CLI's migrate job uses
//               migration_target())
#pragma once

#include "core/runtime.h"
#include "store/postgres/pg.h"

namespace gantry::telemetry {

core::runtime::RoleInfo probe_role();
core::runtime::RoleInfo ingest_role();
core::runtime::RoleInfo aggregator_role();
core::runtime::RoleInfo diagnoser_role();
// For `gantry migrate telemetry`: the database's location settings (the DB_* parts; the CLI binds
// db_url once for every system) and how to apply the schema.
store::postgres::MigrationTarget migration_target();

}  // namespace gantry::telemetry
