// How machines are obtained and reached (spec cluster.md, Providers).
//
// A provider's calls are plain blocking calls with a deadline; the reconciler puts each one
// behind the provider's circuit breaker and retry preset (ProviderCalls), so a provider only
// says what happened: a retryable Status (kUnavailable, kDeadlineExceeded, kResourceExhausted)
// for a hiccup, another for a failure retrying cannot mend.
//
// create() is idempotent by construction: the same (cluster, pool, index) names the same
// instance whatever happened before (a crash between the request and the status write gives
// the same instance back, never a second one).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/resilience/deadline.h"
#include "core/status.h"

namespace gantry::cluster {

struct InstanceRequest {
  std::string cluster, pool, name, role, instance_type;
  int index = 0;
};

struct ProviderInstance {
  std::string id;
  std::string private_ip, public_ip;
};

// What a remote step runs: a shell script (sh) with its purpose, which names the step in logs,
// metrics and the simulator's latency table ("install", "configure", "uninstall", ...).
struct Script {
  std::string step;
  std::string text;
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view name() const = 0;
  // True for the simulator: everything it reports is made up, and outputs say so.
  virtual bool simulated() const { return false; }
  // The circuit breaker a call on this instance goes through (ssh: one per host, so one dead
  // host does not stop the others); create() uses name().
  virtual std::string breaker_for(const ProviderInstance&) const { return std::string(name()); }

  virtual core::Result<ProviderInstance> create(const InstanceRequest& r, const core::resilience::Deadline& d) = 0;
  // "Provisioning" checks: reachable, enough disk, a known architecture, root.
  virtual core::Status check(const ProviderInstance& i, const core::resilience::Deadline& d) = 0;
  // Runs a script as root on the instance; returns its standard output.
  virtual core::Result<std::string> run(const ProviderInstance& i, const Script& s, const core::resilience::Deadline& d) = 0;
  // Copies a local file to `remote_path` (mode 0755 when `executable`).
  virtual core::Status put(const ProviderInstance& i, const std::string& local_path, const std::string& remote_path,
                           bool executable, const core::resilience::Deadline& d) = 0;
  // Gives the machine back (ssh: nothing to give; the distribution's uninstall cleaned it).
  virtual core::Status destroy(const ProviderInstance& i, const core::resilience::Deadline& d) = 0;
};

}  // namespace gantry::cluster
