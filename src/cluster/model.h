// The cluster model (spec cluster.md): what an operator declares (Cluster: metadata and spec,
// from YAML) and what gantry observed (ClusterStatus), and the node list a spec stands for.
//
// parse_cluster() reads `apiVersion: gantry.io/v1, kind: Cluster` and the original's
// `goman.io/v1, kind: K3sCluster`, and validates everything at once: the error lists every
// problem found, each with its line and column (`cluster.yaml:12:7: spec.mode: ...`).
// Unknown fields are problems in gantry.io/v1 files (a misspelt field would otherwise be
// silently ignored) and are ignored in goman.io/v1 files, as the original's decoder did.
//
// Servers: `mode: dev` has 1, `mode: ha` 3. A pool may say `role: server` to name the servers
// and their instance type; its count must then be the mode's (ha with 2 servers is refused).
// Without one, the servers form an implicit pool named "server". Every other pool is agents.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gantry::cluster {

struct Taint {
  std::string key, value, effect;  // effect: NoSchedule | PreferNoSchedule | NoExecute
};

struct NodePool {
  std::string name;
  int count = 0;
  std::string role = "agent";  // agent | server
  std::string instance_type;   // empty: the cluster's
  std::map<std::string, std::string> labels;
  std::vector<Taint> taints;
};

struct Features {
  bool traefik = true, service_lb = true, local_storage = true, metrics_server = true;
};

struct ClusterSpec {
  std::string description;
  std::string mode = "dev";  // dev | ha
  std::string provider = "ssh";
  std::string region, instance_type;
  std::string distribution = "gantry-node";  // gantry-node | k3s
  std::string k3s_version;
  std::string network_cidr = "10.42.0.0/16", service_cidr = "10.43.0.0/16", cluster_dns = "10.43.0.10";
  Features features;
  std::map<std::string, std::string> tags;
  std::string desired_state = "running";  // running | stopped
  std::vector<NodePool> node_pools;
};

struct Metadata {
  std::string name, id;
  std::map<std::string, std::string> labels, annotations;
  std::string created_at, updated_at, deletion_timestamp;  // RFC 3339, empty when unset
  int64_t generation = 1;  // bumped by the store whenever the spec changes
};

struct Cluster {
  std::string api_version = "gantry.io/v1", kind = "Cluster";
  Metadata metadata;
  ClusterSpec spec;

  int servers() const { return spec.mode == "ha" ? 3 : 1; }
};

// One node as the spec wants it: servers first (index 0 is the first server), then each
// agent pool in the order written.
struct NodeSlot {
  std::string name;  // <cluster>-<pool>-<index>
  std::string pool, role, instance_type;
  int index = 0;
};
std::vector<NodeSlot> desired_nodes(const Cluster& c);

struct Instance {
  std::string id, name, role, pool;
  int index = 0;
  std::string state = "pending";  // pending | running | stopped | terminated
  std::string private_ip, public_ip;
  bool provisioned = false, installed = false, joined = false;
  std::string error;
};

struct Progress {
  int done = 0, total = 0;
};

struct Condition {
  std::string type, status, reason, message, last_transition_time;
};

// What the reconciler's passes over a cluster did, kept with its status so that
// `gantry cluster metrics` can report it after the reconciling process is gone. Times in ms.
struct Operations {
  int64_t passes = 0, steps = 0, steps_failed = 0, steps_skipped = 0, retries = 0, pass_ms = 0;
  // The last pass that ran node steps.
  int64_t last_pass_ms = 0, last_busy_ms = 0, last_slot_ms = 0, last_critical_path_ms = 0;
  std::map<std::string, int64_t> phase_ms;        // the last run of each phase (Provisioning, ...)
  std::map<std::string, std::string> breakers;    // the provider's breakers after the last pass
};

// Annotations gantry sets on a cluster so that later commands and the service need not be told
// again: the ssh inventory it was created with, and the controller a gantry-node cluster's
// agents register with.
inline constexpr const char* kInventoryAnnotation = "gantry.io/inventory";
inline constexpr const char* kControllerAnnotation = "gantry.io/controller-url";

struct ClusterStatus {
  std::string phase = "Pending";  // Pending Provisioning Installing Configuring Running Updating
                                  // Stopping Stopped Starting Deleting Failed
  std::string message;
  int64_t observed_generation = 0;
  std::string last_reconcile_time;
  std::vector<Instance> instances;
  Progress provisioning, installing, configuring;
  std::vector<Condition> conditions;
  Operations operations;

  Instance* find(std::string_view name);
};

// `source` names the input in error messages (a file name).
core::Result<Cluster> parse_cluster(std::string_view yaml, std::string_view source = "cluster.yaml");
// Checks a Cluster built in code (flags) with the same rules; problems have no line.
core::Status validate(const Cluster& c);
std::string to_yaml(const Cluster& c);

core::Result<ClusterStatus> parse_status(std::string_view yaml);
std::string to_yaml(const ClusterStatus& s);

// A cluster name: a DNS label (lowercase letters, digits, '-', 1..40 characters, starting with
// a letter); it names directories, instances and hosts.
core::Status check_name(std::string_view name);

}  // namespace gantry::cluster
