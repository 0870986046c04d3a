// Where clusters live between reconciler passes (spec cluster.md, State store): the declared
// cluster, its observed status, its join tokens, and the lease that lets one reconciler at a
// time act on it.
//
// DirStore (the default) keeps ~/.gantry/clusters/<name>/{cluster.yaml,status.yaml,tokens};
// every file is replaced atomically (written beside, fsync'd, renamed), so a crash leaves the
// old or the new file, never half of one. tokens is 0600 and never printed. Its lease is a
// flock(2) lock: one machine's reconcilers.
//
// PgStore (--state-url) keeps the same documents in PostgreSQL tables, for reconcilers on
// several machines; its lease is a row taken by a conditional insert/update when free or
// expired (the original's DynamoDB lock), renewed in the background while held.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/model.h"
#include "core/status.h"

namespace gantry::cluster {

struct Tokens {
  std::string server, agent;  // K3s's server and agent join tokens (also a gantry node's)
};

// Held while a reconciler acts on one cluster; released when destroyed (or by the process's
// death).
class Lease {
 public:
  virtual ~Lease() = default;
  // Extends the lease by its TTL; fails when it was lost (another holder took it after expiry).
  virtual core::Status renew() = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string describe() const = 0;

  virtual core::Result<std::vector<std::string>> list() = 0;
  // kNotFound when there is no such cluster.
  virtual core::Result<Cluster> get(const std::string& name) = 0;
  // Creates (kAlreadyExists when the name is taken) or, with `update`, replaces the declared
  // cluster; the generation goes up by one whenever the spec differs from the stored one.
  virtual core::Result<Cluster> put(Cluster c, bool update) = 0;
  // An empty status (phase Pending) when none was written yet.
  virtual core::Result<ClusterStatus> status(const std::string& name) = 0;
  virtual core::Status put_status(const std::string& name, const ClusterStatus& s) = 0;
  // Made on first use (random, 32 bytes each, hex), then always the same.
  virtual core::Result<Tokens> tokens(const std::string& name) = 0;
  // Forgets the cluster entirely (after its instances are gone).
  virtual core::Status remove(const std::string& name) = 0;

  // Waits up to `wait` for the cluster's lease; kDeadlineExceeded naming the holder if it
  // stays taken. `holder` names this reconciler in what others see.
  virtual core::Result<std::unique_ptr<Lease>> acquire(const std::string& name, const std::string& holder,
                                                       std::chrono::milliseconds ttl, std::chrono::milliseconds wait) = 0;
};

// Directory store rooted at `root` (made when missing, 0700).
core::Result<std::unique_ptr<Store>> open_dir_store(const std::string& root);
// PostgreSQL store (postgres://…): its tables are made or migrated on open.
core::Result<std::unique_ptr<Store>> open_pg_store(const std::string& url);
// The PostgreSQL store when `url` is set, else the directory store at `dir`.
core::Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& dir);

// What every store does on put: the stored cluster's id, creation time and generation kept,
// the generation one up when the spec changed; a new cluster gets generation 1 and an id.
Cluster next_version(Cluster c, const Cluster* old);
// Fresh join tokens (32 random bytes each, hex).
Tokens new_tokens();
// $GANTRY_STATE_DIR, else ~/.gantry/clusters.
std::string default_state_dir();

}  // namespace gantry::cluster
