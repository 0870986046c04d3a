// The Trades system's roles, as the CLI offers them (spec trades.md):
//
//   trades           JetStream trades -> per-token rolling windows -> Redis, aggregates.<token>,
//                    the query API (service/; the windows in windows.h, the shards in engine.h)
//   trades-generate  synthetic random-walk trades into the stream (`gantry trades generate`)
//   trades-top       a live terminal view of the top tokens (`gantry trades top`)
#pragma once

#include "core/runtime.h"

namespace gantry::trades {

core::runtime::RoleInfo trades_role();
core::runtime::RoleInfo generate_role();
core::runtime::RoleInfo top_role();

}  // namespace gantry::trades
