// The Telemetry system's roles, as the CLI offers them (spec telemetry.md):
//
//   ingest      validates, rate-limits and appends probe events to JetStream (ingest/)
//   aggregator  consumes them into exact per-minute statistics and diagnosis in PostgreSQL
//               (aggregator/)
//
// Still to come (issue 5): probe, diagnoser (re-labelling a range), `migrate telemetry`.
#pragma once

#include "core/runtime.h"

namespace gantry::telemetry {

core::runtime::RoleInfo ingest_role();
core::runtime::RoleInfo aggregator_role();

}  // namespace gantry::telemetry
