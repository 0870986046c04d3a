#include "cli/catalog.h"

#include "cli/hello.h"
#include "cli/migrate.h"
#include "cluster/roles.h"
#include "fleet/roles.h"
#include "orchestrator/roles.h"
#include "telemetry/roles.h"
#include "trades/roles.h"

namespace gantry::cli {

std::vector<core::runtime::RoleInfo> catalog() {
  std::vector<core::runtime::RoleInfo> roles;
  roles.push_back(hello_role());
  roles.push_back(fleet::controller_role());
  roles.push_back(fleet::agent_role());
  roles.push_back(fleet::worker_role());
  roles.push_back(telemetry::probe_role());
  roles.push_back(telemetry::ingest_role());
  roles.push_back(telemetry::aggregator_role());
  roles.push_back(telemetry::diagnoser_role());
  roles.push_back(orchestrator::orchestrator_role());
  roles.push_back(orchestrator::scan_bridge_role());
  roles.push_back(trades::trades_role());
  roles.push_back(trades::generate_role());
  roles.push_back(trades::top_role());
  for (auto& r : cluster::cluster_roles()) roles.push_back(std::move(r));
  roles.push_back(migrate_role());
  return roles;
}

}  // namespace gantry::cli
