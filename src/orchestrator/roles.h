// The Orchestrator system's roles, as the CLI offers them (spec orchestrator.md):
//
//   orchestrator  watches cptm8domain (LISTEN/NOTIFY + reconcile), elects a leader, publishes
//                 the kick that starts the scanner ring; domain API, /health, /ready, /metrics
//                 (scheduler/ decides and publishes, api/ serves HTTP)
//   scan-bridge   gives an HTTP scanner a queue: consumes q<svc>, calls the scanner, acks,
//                 publishes the next hop (bridge/)
//   `gantry migrate orchestrator` applies schema.h (the CLI's migrate job uses migration_target()).
#pragma once

#include "core/runtime.h"
#include "store/postgres/pg.h"

namespace gantry::orchestrator {

core::runtime::RoleInfo orchestrator_role();
core::runtime::RoleInfo scan_bridge_role();

// For `gantry migrate orchestrator`: the database's location settings (the POSTGRESQL_* parts;
// the CLI binds db_url once for every system) and how to apply the schema.
store::postgres::MigrationTarget migration_target();

}  // namespace gantry::orchestrator
