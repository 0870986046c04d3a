#include "cluster/cli/context.h"

#include <signal.h>

#include <cstdio>
#include <thread>

#include "cluster/cli/progress.h"
#include "core/json.h"

namespace gantry::cluster {

using core::Result;
using core::Status;

void Common::bind(core::config::Schema& s, bool named) {
  if (named) s.add("name", &name, "the cluster (also the first argument)");
  s.add("state_dir", &state_dir, "where clusters are kept (without --state-url)").env("GANTRY_STATE_DIR");
  s.add("state_url", &state_url,
        "keep clusters in PostgreSQL instead (postgres://…), for reconcilers on several machines; leases in a table")
      .env("GANTRY_STATE_URL")
      .secret();
  s.add("json", &json, "machine-readable output: JSON (one object per line for progress)");
  core::resilience::bind(s, &parallel);
  core::resilience::bind(s, &retry, "retry");
  core::resilience::bind(s, &breaker);
  s.add("controller_url", &dist.controller_url, "gantry-node: the Fleet controller the nodes' agents register with")
      .env("CONTROLLER_URL");
  s.add("agent_user", &dist.agent_user, "gantry-node: the Basic auth user its agents register with").env("AGENT_USER");
  s.add("agent_password", &dist.agent_password, "its password").env("AGENT_PASSWORD").secret();
  s.add("admin_user", &dist.admin_user, "gantry-node: the controller's admin user, to delete a removed node's agents")
      .env("ADMIN_USER");
  s.add("admin_password", &dist.admin_password, "its password").env("ADMIN_PASSWORD").secret();
  s.add("gantry_binary", &dist.gantry_binary, "gantry-node: the binary installed on nodes (default: this one)");
  s.add("k3s_binary", &dist.k3s_binary, "k3s: a local k3s binary for an airgap install (nothing downloaded)")
      .env("K3S_BINARY");
  s.add("inventory", &inventory, "provider ssh: the hosts (inventory.yaml; scripts/hosts up N writes one)")
      .env("GANTRY_HOSTS_INVENTORY");
  s.add("ssh_options", &ssh_options,
        "provider ssh: OpenSSH options for every call, Key=Value comma-separated (e.g. KexAlgorithms=curve25519-sha256: "
        "connections set up ~8x cheaper than Debian's post-quantum default, see docs/cluster.md)")
      .env("GANTRY_SSH_OPTIONS");
  s.add("sim_latency", &sim_latency,
        "provider sim: latency per call type, TYPE=DUR or TYPE=LOW..HIGH, comma-separated (default: the guide's step "
        "times / 1000: create=96ms..144ms,install=240ms..360ms,configure=96ms..144ms)");
  s.add("sim_failure_rate", &sim_failure_rate, "provider sim: the share of calls that fail transiently").range(0, 1);
  s.add("sim_seed", &sim_seed, "provider sim: the seed of its random draws");
  s.add("lease_wait", &lease_wait, "how long to wait while another reconciler holds the cluster's lease").range(0, 3'600'000);
}

void print_error(const std::string& verb, const Status& s) {
  std::fprintf(stderr, "gantry cluster %s: %s\n", verb.c_str(), std::string(s.message()).c_str());
}

// Ctrl-C or SIGTERM while a command waits: every node step already done is in the status
// (written as each finished) and the lease goes with the process (a lock file's at once; a
// PostgreSQL lease row when a reconciler on this machine finds the pid gone, or at its TTL), so
// leaving at once is safe; the next reconcile resumes. `message` is printed, then exit `code`.
void exit_on_signal(std::string message, int code) {
  std::thread([message, code] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
      if (!message.empty()) std::fprintf(stderr, "\n%s\n", message.c_str());
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(code);
    }
  }).detach();
}

Status Context::open() {
  auto s = open_store(c_.state_url, c_.state_dir);
  if (!s.is_ok()) return s.status();
  store_ = std::move(s).value();
  return {};
}

Result<Provider*> Context::provider(const Cluster& c) {
  std::lock_guard lk(mu_);
  if (c.spec.provider == "sim") {
    if (!sim_) {
      SimOptions o;
      GANTRY_RETURN_IF_ERROR(parse_sim_latency(c_.sim_latency, &o));
      o.failure_rate = c_.sim_failure_rate;
      o.seed = static_cast<uint64_t>(c_.sim_seed);
      sim_ = std::make_unique<SimProvider>(o);
    }
    return sim_.get();
  }
  if (c.spec.provider == "ssh") {
    if (!ssh_) {
      // The inventory given now, else the one the cluster was created with.
      std::string path = c_.inventory;
      if (auto a = c.metadata.annotations.find(kInventoryAnnotation); path.empty() && a != c.metadata.annotations.end())
        path = a->second;
      if (path.empty())
        return core::invalid_argument("provider ssh needs an inventory: --inventory FILE or GANTRY_HOSTS_INVENTORY "
                                      "(scripts/hosts up N writes one)");
      GANTRY_ASSIGN(inv, load_inventory(path));
      GANTRY_ASSIGN(options, parse_ssh_options(c_.ssh_options));
      ssh_ = std::make_unique<SshProvider>(std::move(inv), c_.state_dir + "/.ssh", std::move(options));
    }
    return ssh_.get();
  }
  return core::invalid_argument("provider '" + c.spec.provider + "' of cluster '" + c.metadata.name +
                                "' is not built (available: ssh, sim)");
}

Reconciler& Context::reconciler() {
  if (!rec_) {
    ReconcilerOptions o;
    o.concurrency = c_.parallel.concurrency;
    o.node_timeout = c_.parallel.timeout;
    o.retry = c_.retry;
    o.breaker = c_.breaker;
    o.lease_wait = c_.lease_wait;
    rec_ = std::make_unique<Reconciler>(*store_, [this](const Cluster& c) { return provider(c); }, c_.dist, o);
  }
  return *rec_;
}

int Context::converge(const std::string& name) {
  exit_on_signal("interrupted: '" + name + "' resumes where it stopped at the next reconcile (gantry cluster reconcile " + name + ")",
                 130);
  ProgressDisplay display(output_mode(c_.json));
  reconciler().on_progress([&](const ProgressEvent& e) { display(e); });
  auto began = std::chrono::steady_clock::now();
  for (int pass = 0; pass < 100; ++pass) {
    PassResult r = reconciler().reconcile(name);
    if (r.phase == "Locked" || (!r.status.is_ok() && r.phase != "Failed")) {
      print_error("reconcile", r.status);
      return kFailed;
    }
    if (r.phase == "Failed") {
      std::fprintf(stderr, "gantry cluster: '%s' failed: %s\n  (fix the cause and run `gantry cluster reconcile %s`: it resumes "
                   "from the last good step)\n", name.c_str(), std::string(r.status.message()).c_str(), name.c_str());
      return kFailed;
    }
    if (r.deleted || r.steps_run == 0 || r.phase == "Running" || r.phase == "Stopped") {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      if (c_.json) {
        std::string b;
        core::json::Writer(b).object().field("cluster", name).field("phase", r.deleted ? "Deleted" : r.phase)
            .key("seconds").value_fixed(s, 3).field("retries", r.retries)
            .key("parallel_efficiency").value_fixed(r.efficiency, 3).end();
        std::printf("%s\n", b.c_str());
      } else {
        std::printf("%s: %s in %.1f s (%d node steps, %d retries, parallel efficiency %.2f)\n", name.c_str(),
                    r.deleted ? "deleted" : r.phase.c_str(), s, r.steps_run, r.retries, r.efficiency);
      }
      return 0;
    }
  }
  std::fprintf(stderr, "gantry cluster: '%s' did not converge in 100 passes\n", name.c_str());
  return kFailed;
}


}  // namespace gantry::cluster
