// The Telemetry system's roles, as the CLI offers them (spec telemetry.md):
//
//   probe       measures targets and delivers one event per measurement to ingest (probe/)
//   ingest      validates, rate-limits and appends probe events to JetStream (ingest/)
//   aggregator  consumes them into exact per-minute statistics and diagnosis in PostgreSQL
//               (aggregator/)
//
// Still to come (issue 5): diagnoser (re-labelling a range), `migrate telemetry`, retention.
#pragma once

#include "core/runtime.h"

namespace gantry::telemetry {

core::runtime::RoleInfo probe_role();
core::runtime::RoleInfo ingest_role();
core::runtime::RoleInfo aggregator_role();

}  // namespace gantry::telemetry
