// `gantry migrate <system>`: the one job that applies any system's schema (the CLI is the one
// layer that may know every system).
#pragma once

#include "core/runtime.h"

namespace gantry::cli {

core::runtime::RoleInfo migrate_role();

}  // namespace gantry::cli
