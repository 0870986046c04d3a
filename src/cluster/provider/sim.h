// The simulated provider: no machine exists. Every call sleeps for a latency drawn from its
// call type's distribution and fails transiently (kUnavailable) at the configured rate; a call
// type can be put in a hard outage (every call fails) and taken out again. Instances are named
// from (cluster, pool, index), so creating one twice gives the same one. Distributions' scripts
// are not run: each is a call of its step's type ("install", "configure", ...).
//
// It says it is a simulator: simulated() is true, and the CLI and logs print "simulated".
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "cluster/provider/provider.h"
#include "core/clock.h"
#include "core/resilience/deadline.h"

namespace gantry::cluster {

struct SimLatency {
  std::chrono::microseconds low{0}, high{0};  // uniform in [low, high]
};

struct SimOptions {
  // Per call type: create, check, install, configure, uninstall, destroy, and any other step.
  // The defaults are the guide's per-node step times (provision 2 min, install 5 min,
  // configure 2 min) scaled down 1000x, ±20 %.
  std::map<std::string, SimLatency> latency = {
      {"create", {std::chrono::microseconds(96'000), std::chrono::microseconds(144'000)}},
      {"check", {std::chrono::microseconds(1'000), std::chrono::microseconds(3'000)}},
      {"install", {std::chrono::microseconds(240'000), std::chrono::microseconds(360'000)}},
      {"configure", {std::chrono::microseconds(96'000), std::chrono::microseconds(144'000)}},
  };
  SimLatency other{std::chrono::microseconds(1'000), std::chrono::microseconds(3'000)};
  double failure_rate = 0;  // transient failures, each call independently
  uint64_t seed = 1;
  core::resilience::Sleeper* sleeper = &core::resilience::Sleeper::real();
};

// "create=100ms..140ms,install=300ms" -> the latency table (unnamed types keep their default).
core::Status parse_sim_latency(std::string_view text, SimOptions* o);

class SimProvider final : public Provider {
 public:
  explicit SimProvider(SimOptions o = {});

  std::string_view name() const override { return "sim"; }
  bool simulated() const override { return true; }

  core::Result<ProviderInstance> create(const InstanceRequest& r, const core::resilience::Deadline& d) override;
  core::Status check(const ProviderInstance& i, const core::resilience::Deadline& d) override;
  core::Result<std::string> run(const ProviderInstance& i, const Script& s, const core::resilience::Deadline& d) override;
  core::Status put(const ProviderInstance& i, const std::string& local_path, const std::string& remote_path, bool executable,
                   const core::resilience::Deadline& d) override;
  core::Status destroy(const ProviderInstance& i, const core::resilience::Deadline& d) override;

  // Every call of `type` fails (kUnavailable) until cleared; "*" for every type.
  void set_outage(const std::string& type, bool on);

  struct Stats {
    std::map<std::string, int> calls, failures;  // by call type
    int instances_created = 0;                   // distinct instances ever created
  };
  Stats stats() const;

 private:
  core::Status call(const std::string& type);

  SimOptions o_;
  core::SeededRandom random_;
  mutable std::mutex mu_;
  std::set<std::string> outages_;
  std::set<std::string> created_;
  Stats stats_;
};

}  // namespace gantry::cluster
