// The Fleet system's roles, as the CLI offers them:
//
//   controller  holds the versioned configuration and the registered agents (controller/)
//   agent       registers, learns of new versions (push or poll), forwards them (agent/)
//   worker      applies a version and performs hits against its target (worker/)
//
// Data flows operator -> controller -> agents -> workers; each role only talks HTTP (and
// Redis pub/sub) to the next. See docs/fleet.md.
#pragma once

#include "core/runtime.h"

namespace gantry::fleet {

core::runtime::RoleInfo controller_role();
core::runtime::RoleInfo agent_role();
core::runtime::RoleInfo worker_role();

}  // namespace gantry::fleet
