// What is installed on a node (spec cluster.md, Distributions): each distribution renders the
// shell scripts of its steps and names the files to copy first; the reconciler runs them
// through the provider (over ssh, or simulated). Every script is idempotent: run again after a
// crash it finds what is done and does only the rest, so a resumed install never starts a
// second copy of anything.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/model.h"
#include "cluster/provider/provider.h"
#include "cluster/state/store.h"

namespace gantry::cluster {

struct DistributionOptions {
  std::string controller_url = "http://10.213.0.1:8080";  // gantry-node: the Fleet controller
  std::string gantry_binary;  // gantry-node: the binary copied to each node (default: this one)
  std::string k3s_binary;     // k3s: airgap binary; empty -> the script downloads k3s
  std::string agent_user = "agent", agent_password = "agentpass";  // gantry-node: registration (Fleet's defaults)
  // gantry-node: the controller's admin login, to remove a removed node's agents from its list.
  std::string admin_user = "admin", admin_password = "password";
};

struct NodeContext {
  const Cluster& cluster;
  const Instance& node;
  // A copy, not a pointer into the status: other nodes' steps update the status meanwhile.
  std::optional<Instance> first_server;  // index 0 of the servers (k3s joins it)
  const Tokens& tokens;
};

struct FileCopy {
  std::string local, remote;
  bool executable = false;
  std::string sha256;  // of the local file, verified on the node by the install script
};

class Distribution {
 public:
  virtual ~Distribution() = default;
  virtual std::string_view name() const = 0;
  // Whether the first server must be installed before any other node (K3s: the others join it).
  virtual bool first_server_alone() const { return false; }
  virtual std::vector<FileCopy> files(const NodeContext& n) const = 0;
  virtual Script install(const NodeContext& n) const = 0;    // step "install"
  virtual Script configure(const NodeContext& n) const = 0;  // step "configure": join, wait healthy
  virtual Script stop(const NodeContext& n) const = 0;       // step "stop"
  virtual Script start(const NodeContext& n) const = 0;      // step "start"
  virtual Script uninstall(const NodeContext& n) const = 0;  // step "uninstall": nothing left
  // After a successful uninstall: removes what the node left registered elsewhere (gantry-node:
  // its agents in the Fleet controller's list). An error names what is left and how to remove
  // it; the node itself is gone either way.
  virtual core::Status forget(const NodeContext&, const core::resilience::Deadline&) const { return {}; }
};

// "gantry-node" or "k3s"; kInvalidArgument for another name, kNotFound for a binary that is
// not there. Files are checksummed once here.
core::Result<std::unique_ptr<Distribution>> make_distribution(const std::string& name, const DistributionOptions& o);

// SHA-256 of a file, hex.
core::Result<std::string> sha256_file(const std::string& path);
// A single-quoted shell word.
std::string shell_quote(std::string_view s);
// A shell function `alive PID`: the process runs. One that has exited but is not reaped yet is
// not alive: on hosts whose init reaps late, kill -0 would see it for seconds.
extern const char* const kShellAlive;

}  // namespace gantry::cluster
