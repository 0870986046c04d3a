// What the cluster commands and `gantry cluster serve` share: the settings (Common), and a
// Context that opens the state store and makes providers and the reconciler from them.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "cluster/distribution/distribution.h"
#include "cluster/provider/sim.h"
#include "cluster/provider/ssh.h"
#include "cluster/reconciler/reconciler.h"
#include "cluster/state/store.h"
#include "core/config.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/parallel.h"
#include "core/resilience/retry.h"

namespace gantry::cluster {

using std::chrono::milliseconds;

// Exit statuses of the commands.
constexpr int kFailed = 1, kBadInput = 2;  // 1: failed or a store error; 2: bad input, nothing changed
// Settings every verb shares.
struct Common {
  std::string name, state_dir = default_state_dir(), state_url;
  bool json = false;
  core::resilience::ParallelOptions parallel;
  core::resilience::RetryPolicy retry = core::resilience::RetryPolicy::cloud();
  core::resilience::BreakerOverrides breaker;
  DistributionOptions dist;
  std::string sim_latency;
  double sim_failure_rate = 0;
  int64_t sim_seed = 1;
  milliseconds lease_wait{30'000};
  std::string inventory, ssh_options;

  void bind(core::config::Schema& s, bool named);
};

void print_error(const std::string& verb, const core::Status& s);
// Ctrl-C or SIGTERM: prints `message` (unless empty) and exits with `code` at once.
void exit_on_signal(std::string message, int code);

class Context {
 public:
  explicit Context(Common& c) : c_(c) {}
  core::Status open();
  Store& store() { return *store_; }
  // The cluster's provider, made on first use (an ssh provider needs an inventory).
  core::Result<Provider*> provider(const Cluster& c);
  Reconciler& reconciler();
  // Passes until the cluster converges (Running, Stopped, deleted) or fails, showing progress.
  // Returns the exit status.
  int converge(const std::string& name);

 private:
  Common& c_;
  std::unique_ptr<Store> store_;
  std::mutex mu_;
  std::unique_ptr<SimProvider> sim_;
  std::unique_ptr<SshProvider> ssh_;
  std::unique_ptr<Reconciler> rec_;  // destroyed first: it uses the providers
};

}  // namespace gantry::cluster
