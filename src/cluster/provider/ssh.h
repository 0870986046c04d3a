// The ssh provider: machines that already exist, listed in an inventory (scripts/hosts writes
// one for its namespace hosts):
//
//   known_hosts: /path/known_hosts     # optional; else the user's, checked strictly
//   hosts:
//     - {name: h1, address: 10.213.0.11, port: 22, user: root, ssh_key: /path/id_ed25519}
//
// "Creating" an instance claims a free host for (cluster, pool, index) in a claims file beside
// the inventory (under a lock, written atomically): the same triple always gets the same host,
// also after a crash between the claim and the status write, and a host serves one node at a
// time. Destroying releases the claim. check() verifies the prerequisites over ssh: root, a
// known architecture, >= 1 GB free under /opt and /var/lib, sh, sha256sum, curl and flock.
//
// Commands run through OpenSSH with connection multiplexing (one master connection per host,
// kept 60 s), scripts on standard input (never on a command line), files streamed through
// `cat`. An exit status of 255 (ssh could not connect) is kUnavailable, retried; a script that
// fails is kFailedPrecondition with the end of its stderr, not retried.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "cluster/provider/inventory.h"
#include "cluster/provider/provider.h"

namespace gantry::cluster {

class SshProvider final : public Provider {
 public:
  // control_dir: where the multiplexed connections' sockets live; options: extra -o options.
  SshProvider(Inventory inv, std::string control_dir, std::vector<std::string> options = {});
  ~SshProvider() override;

  std::string_view name() const override { return "ssh"; }
  std::string breaker_for(const ProviderInstance& i) const override { return "ssh:" + i.id; }

  core::Result<ProviderInstance> create(const InstanceRequest& r, const core::resilience::Deadline& d) override;
  core::Status check(const ProviderInstance& i, const core::resilience::Deadline& d) override;
  core::Result<std::string> run(const ProviderInstance& i, const Script& s, const core::resilience::Deadline& d) override;
  core::Status put(const ProviderInstance& i, const std::string& local_path, const std::string& remote_path, bool executable,
                   const core::resilience::Deadline& d) override;
  core::Status destroy(const ProviderInstance& i, const core::resilience::Deadline& d) override;

 private:
  const SshHost* host(const std::string& name) const;
  std::vector<std::string> ssh_argv(const SshHost& h) const;
  core::Result<std::string> exec(const SshHost& h, const std::string& remote_cmd, const std::string& stdin_text,
                                 const std::string& stdin_file, const std::string& step, const core::resilience::Deadline& d);

  std::vector<std::string> options_;
  Inventory inv_;
  std::string control_dir_;
  std::mutex claims_mu_;  // the claims file, within this process (a file lock across processes)
};

}  // namespace gantry::cluster
