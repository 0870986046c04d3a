// The Telemetry system's roles, as the CLI offers them (spec telemetry.md):
//
//   ingest      validates, rate-limits and appends probe events to JetStream (ingest/)
//
// Still to come (issue 5): probe, aggregator, diagnoser, `migrate telemetry`.
#pragma once

#include "core/runtime.h"

namespace gantry::telemetry {

core::runtime::RoleInfo ingest_role();

}  // namespace gantry::telemetry
