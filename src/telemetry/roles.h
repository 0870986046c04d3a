// The Telemetry system's roles, as the CLI offers them (spec telemetry.md):
//
//   probe       measures targets and delivers one event per measurement to ingest (probe/)
//   ingest      validates, rate-limits and appends probe events to JetStream (ingest/)
//   aggregator  consumes them into exact per-minute statistics and diagnosis in PostgreSQL
//               (aggregator/)
//   diagnoser   job: re-labels the windows of a time range (jobs/)
//   migrate     job: `gantry migrate telemetry` applies the schema (jobs/)
#pragma once

#include "core/runtime.h"

namespace gantry::telemetry {

core::runtime::RoleInfo probe_role();
core::runtime::RoleInfo ingest_role();
core::runtime::RoleInfo aggregator_role();
core::runtime::RoleInfo diagnoser_role();
core::runtime::RoleInfo migrate_role();

}  // namespace gantry::telemetry
