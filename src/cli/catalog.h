// Every role the binary offers. Each system contributes its roles here; nothing else in the
// CLI knows about systems.
#pragma once

#include <vector>

#include "core/runtime.h"

namespace gantry::cli {

std::vector<core::runtime::RoleInfo> catalog();

}  // namespace gantry::cli
