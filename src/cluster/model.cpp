#include "cluster/model.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "core/text.h"

namespace gantry::cluster {

namespace {

using core::Result;
using core::Status;

// yaml-cpp parses recursively: a file nesting thousands of levels would exhaust the stack.
// No cluster file nests deeper than a few levels, so deep nesting is refused before parsing.
constexpr size_t kMaxBytes = 1 << 20;
constexpr int kMaxFlowDepth = 32;
constexpr size_t kMaxBlockPrefix = 128;  // leading spaces, '-' and '?' of one line

Status check_shape(std::string_view text, std::string_view source) {
  if (text.size() > kMaxBytes) return core::invalid_argument(std::string(source) + ": larger than 1 MiB");
  int depth = 0, line = 1;
  size_t prefix = 0;
  bool at_start = true;
  char quote = 0;
  for (char ch : text) {
    if (ch == '\n') {
      ++line, prefix = 0, at_start = true;  // a quoted scalar may go on: `quote` stays
      continue;
    }
    if (at_start) {
      if (ch == ' ' || ch == '-' || ch == '?' || ch == '\t') {
        if (++prefix > kMaxBlockPrefix)
          return core::invalid_argument(std::string(source) + ":" + std::to_string(line) + ": nested too deeply");
        continue;
      }
      at_start = false;
    }
    if (quote) {
      if (ch == quote) quote = 0;
      continue;
    }
    if (ch == '"' || ch == '\'') quote = ch;
    else if (ch == '[' || ch == '{') {
      if (++depth > kMaxFlowDepth)
        return core::invalid_argument(std::string(source) + ":" + std::to_string(line) + ": nested too deeply");
    } else if ((ch == ']' || ch == '}') && depth > 0) --depth;
  }
  return {};
}

// Collects every problem of one file, each with where it is.
class Checker {
 public:
  explicit Checker(std::string_view source) : source_(source) {}

  void problem(const YAML::Node& at, const std::string& path, const std::string& what) {
    std::string where = std::string(source_);
    int line = 0, column = 0;
    if (at.IsDefined() && at.Mark().line >= 0) {
      line = at.Mark().line + 1, column = at.Mark().column + 1;
      where += ":" + std::to_string(line) + ":" + std::to_string(column);
    }
    problems_.push_back({line, column, where + ": " + path + ": " + what});
  }
  Status status() {
    if (problems_.empty()) return {};
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const Problem& a, const Problem& b) { return std::pair(a.line, a.column) < std::pair(b.line, b.column); });
    std::string m = std::to_string(problems_.size()) + (problems_.size() == 1 ? " problem" : " problems");
    for (auto& p : problems_) m += "\n  " + p.text;
    return core::invalid_argument(m);
  }

  // A scalar string; absent -> unchanged.
  void str(const YAML::Node& map, const char* key, const std::string& path, std::string* out) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsScalar()) return problem(n, path, "must be a string");
    if (!printable(n.Scalar())) return problem(n, path, "holds a control character");
    *out = n.Scalar();
  }
  // No field of a cluster file has a reason to hold control characters, and a value that
  // does would not read back as written.
  static bool printable(const std::string& s) {
    return std::none_of(s.begin(), s.end(), [](char c) { return c != '\t' && core::is_control(c); });
  }
  void boolean(const YAML::Node& map, const char* key, const std::string& path, bool* out) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return;
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    if (s == "true" || s == "True" || s == "TRUE" || s == "yes") *out = true;
    else if (s == "false" || s == "False" || s == "FALSE" || s == "no") *out = false;
    else problem(n, path, "must be true or false");
  }
  void integer(const YAML::Node& map, const char* key, const std::string& path, int* out) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return;
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return problem(n, path, "must be a whole number, not '" + s + "'");
    *out = v;
  }
  void string_map(const YAML::Node& map, const char* key, const std::string& path, std::map<std::string, std::string>* out) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsMap()) return problem(n, path, "must be a map of strings");
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) {
        problem(it->first, path, "must be a map of strings");
        continue;
      }
      if (!printable(it->first.Scalar()) || !printable(it->second.Scalar())) {
        problem(it->first, path, "holds a control character");
        continue;
      }
      (*out)[it->first.Scalar()] = it->second.Scalar();
    }
  }
  // Reports keys of `map` not in `known`.
  void only(const YAML::Node& map, const std::string& path, std::initializer_list<const char*> known) {
    if (!strict_ || !map.IsMap()) return;
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string k = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::none_of(known.begin(), known.end(), [&](const char* x) { return k == x; }))
        problem(it->first, path.empty() ? k : path + "." + k, "unknown field");
    }
  }
  bool strict_ = true;

 private:
  struct Problem {
    int line, column;
    std::string text;
  };
  std::string_view source_;
  std::vector<Problem> problems_;
};

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
}

bool valid_cidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return false;
  int prefix = 0;
  auto [p, ec] = std::from_chars(s.data() + slash + 1, s.data() + s.size(), prefix);
  if (ec != std::errc() || p != s.data() + s.size() || prefix < 0 || prefix > 32) return false;
  int parts = 0;
  size_t i = 0;
  while (i < slash) {
    int octet = -1;
    auto [q, ec2] = std::from_chars(s.data() + i, s.data() + slash, octet);
    if (ec2 != std::errc() || octet < 0 || octet > 255) return false;
    ++parts;
    i = static_cast<size_t>(q - s.data());
    if (i < slash) {
      if (s[i] != '.') return false;
      ++i;
    }
  }
  return parts == 4;
}

// The rules that do not depend on where a value was written; each problem goes to `report`
// with the YAML path of the field.
template <class Report>
void check_rules(const Cluster& c, Report&& report) {
  if (Status s = check_name(c.metadata.name); !s.is_ok()) report("metadata.name", std::string(s.message()));
  const ClusterSpec& sp = c.spec;
  if (!one_of(sp.mode, {"dev", "ha"})) report("spec.mode", "must be dev or ha, not '" + sp.mode + "'");
  if (!one_of(sp.provider, {"ssh", "sim"}))
    report("spec.provider", "unknown provider '" + sp.provider + "' (known: ssh, sim; aws is not built yet)");
  if (!one_of(sp.distribution, {"gantry-node", "k3s"}))
    report("spec.distribution", "unknown distribution '" + sp.distribution + "' (known: gantry-node, k3s)");
  if (!one_of(sp.desired_state, {"running", "stopped"}))
    report("spec.desiredState", "must be running or stopped, not '" + sp.desired_state + "'");
  if (!valid_cidr(sp.network_cidr)) report("spec.networkCIDR", "'" + sp.network_cidr + "' is not an IPv4 CIDR");
  if (!valid_cidr(sp.service_cidr)) report("spec.serviceCIDR", "'" + sp.service_cidr + "' is not an IPv4 CIDR");
  std::set<std::string> names;
  int server_pools = 0;
  for (size_t i = 0; i < sp.node_pools.size(); ++i) {
    const NodePool& p = sp.node_pools[i];
    std::string at = "spec.nodePools[" + std::to_string(i) + "]";
    if (Status s = check_name(p.name); !s.is_ok()) report(at + ".name", std::string(s.message()));
    else if (!names.insert(p.name).second) report(at + ".name", "pool '" + p.name + "' is declared twice");
    if (p.count < 0) report(at + ".count", "must be 0 or more, not " + std::to_string(p.count));
    if (p.count > 1000) report(at + ".count", "at most 1000 nodes per pool, not " + std::to_string(p.count));
    if (!one_of(p.role, {"agent", "server"})) report(at + ".role", "must be agent or server, not '" + p.role + "'");
    if (p.role == "server") {
      if (++server_pools > 1) report(at + ".role", "only one pool may hold the servers");
      else if (p.count != c.servers())
        report(at + ".count", "mode " + sp.mode + " has " + std::to_string(c.servers()) + " server" +
                                  (c.servers() == 1 ? "" : "s") + ", not " + std::to_string(p.count));
    }
    for (size_t t = 0; t < p.taints.size(); ++t) {
      const Taint& tn = p.taints[t];
      std::string tat = at + ".taints[" + std::to_string(t) + "]";
      if (tn.key.empty()) report(tat + ".key", "must not be empty");
      if (!one_of(tn.effect, {"NoSchedule", "PreferNoSchedule", "NoExecute"}))
        report(tat + ".effect", "must be NoSchedule, PreferNoSchedule or NoExecute, not '" + tn.effect + "'");
    }
  }
}

// Where a rule's path points in the file: the deepest node the path names.
YAML::Node node_at(const YAML::Node& root, const std::string& path) {
  YAML::Node n;
  n.reset(root);
  size_t i = 0;
  while (i < path.size()) {
    size_t end = path.find_first_of(".[", i);
    std::string key = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
    YAML::Node next;
    if (!key.empty()) {
      if (!n.IsMap()) return n;
      next = n[key];
    } else if (path[i] == '[') {
      size_t close = path.find(']', i);
      size_t idx = std::stoul(path.substr(i + 1, close - i - 1));
      if (!n.IsSequence() || idx >= n.size()) return n;
      next = n[idx];
      end = close + 1;
    }
    if (!next.IsDefined()) return n;
    n.reset(next);  // rebinds; `n = next` would overwrite the node n refers to
    if (end == std::string::npos) break;
    i = path[end] == '.' ? end + 1 : end;
  }
  return n;
}

}  // namespace

Status check_name(std::string_view name) {
  if (name.empty()) return core::invalid_argument("a name is required");
  if (name.size() > 40) return core::invalid_argument("'" + std::string(name) + "' is longer than 40 characters");
  bool ok = name[0] >= 'a' && name[0] <= 'z' && name.back() != '-';
  for (char ch : name) ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-');
  if (!ok)
    return core::invalid_argument("'" + std::string(name) +
                                  "' is not a valid name (lowercase letters, digits and '-', starting with a letter)");
  return {};
}

Instance* ClusterStatus::find(std::string_view name) {
  for (auto& i : instances)
    if (i.name == name) return &i;
  return nullptr;
}

std::vector<NodeSlot> desired_nodes(const Cluster& c) {
  std::vector<NodeSlot> out;
  const NodePool* servers = nullptr;
  for (auto& p : c.spec.node_pools)
    if (p.role == "server") servers = &p;
  std::string server_pool = servers ? servers->name : "server";
  std::string server_type = servers && !servers->instance_type.empty() ? servers->instance_type : c.spec.instance_type;
  for (int i = 0; i < c.servers(); ++i)
    out.push_back({c.metadata.name + "-" + server_pool + "-" + std::to_string(i), server_pool, "server", server_type, i});
  for (auto& p : c.spec.node_pools) {
    if (p.role == "server") continue;
    std::string type = p.instance_type.empty() ? c.spec.instance_type : p.instance_type;
    for (int i = 0; i < p.count; ++i)
      out.push_back({c.metadata.name + "-" + p.name + "-" + std::to_string(i), p.name, "agent", type, i});
  }
  return out;
}

Result<Cluster> parse_cluster(std::string_view yaml, std::string_view source) {
  GANTRY_RETURN_IF_ERROR(check_shape(yaml, source));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return core::invalid_argument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                                  std::to_string(e.mark.column + 1) + ": not YAML: " + e.msg);
  }
  Checker ck(source);
  Cluster c;
  try {
    if (!root.IsMap()) return core::invalid_argument(std::string(source) + ": expected a map with apiVersion, kind, metadata and spec");
    ck.str(root, "apiVersion", "apiVersion", &c.api_version);
    ck.str(root, "kind", "kind", &c.kind);
    bool goman = c.api_version == "goman.io/v1";
    if (goman) ck.strict_ = false;
    if (!((c.api_version == "gantry.io/v1" && c.kind == "Cluster") || (goman && c.kind == "K3sCluster"))) {
      if (!root["apiVersion"].IsDefined()) ck.problem(root, "apiVersion", "is required (gantry.io/v1)");
      else if (c.api_version != "gantry.io/v1" && !goman)
        ck.problem(root["apiVersion"], "apiVersion", "must be gantry.io/v1 (or the original's goman.io/v1), not '" + c.api_version + "'");
      else ck.problem(root["kind"].IsDefined() ? root["kind"] : root, "kind", goman ? "must be K3sCluster" : "must be Cluster");
    }
    ck.only(root, "", {"apiVersion", "kind", "metadata", "spec", "status"});

    YAML::Node md = root["metadata"];
    if (!md.IsDefined() || !md.IsMap()) ck.problem(md.IsDefined() ? md : root, "metadata", "is required (a map with at least name)");
    else {
      ck.only(md, "metadata", {"name", "id", "labels", "annotations", "createdAt", "updatedAt", "deletionTimestamp", "generation"});
      ck.str(md, "name", "metadata.name", &c.metadata.name);
      ck.str(md, "id", "metadata.id", &c.metadata.id);
      ck.string_map(md, "labels", "metadata.labels", &c.metadata.labels);
      ck.string_map(md, "annotations", "metadata.annotations", &c.metadata.annotations);
      ck.str(md, "createdAt", "metadata.createdAt", &c.metadata.created_at);
      ck.str(md, "updatedAt", "metadata.updatedAt", &c.metadata.updated_at);
      ck.str(md, "deletionTimestamp", "metadata.deletionTimestamp", &c.metadata.deletion_timestamp);
      int gen = 1;
      ck.integer(md, "generation", "metadata.generation", &gen);
      c.metadata.generation = gen;
    }

    YAML::Node sp = root["spec"];
    if (!sp.IsDefined() || !sp.IsMap()) ck.problem(sp.IsDefined() ? sp : root, "spec", "is required (a map)");
    else {
      ck.only(sp, "spec", {"description", "mode", "provider", "region", "instanceType", "distribution", "k3sVersion",
                           "networkCIDR", "serviceCIDR", "clusterDNS", "features", "tags", "desiredState", "nodePools"});
      ClusterSpec& s = c.spec;
      ck.str(sp, "description", "spec.description", &s.description);
      ck.str(sp, "mode", "spec.mode", &s.mode);
      ck.str(sp, "provider", "spec.provider", &s.provider);
      if (goman && !sp["provider"].IsDefined()) s.provider = "aws";  // the original's only provider
      ck.str(sp, "region", "spec.region", &s.region);
      ck.str(sp, "instanceType", "spec.instanceType", &s.instance_type);
      ck.str(sp, "distribution", "spec.distribution", &s.distribution);
      if (goman && !sp["distribution"].IsDefined()) s.distribution = "k3s";
      ck.str(sp, "k3sVersion", "spec.k3sVersion", &s.k3s_version);
      ck.str(sp, "networkCIDR", "spec.networkCIDR", &s.network_cidr);
      ck.str(sp, "serviceCIDR", "spec.serviceCIDR", &s.service_cidr);
      ck.str(sp, "clusterDNS", "spec.clusterDNS", &s.cluster_dns);
      ck.string_map(sp, "tags", "spec.tags", &s.tags);
      ck.str(sp, "desiredState", "spec.desiredState", &s.desired_state);
      if (YAML::Node f = sp["features"]; f.IsDefined() && !f.IsNull()) {
        if (!f.IsMap()) ck.problem(f, "spec.features", "must be a map");
        else {
          ck.only(f, "spec.features", {"traefik", "serviceLB", "localStorage", "metricsServer"});
          ck.boolean(f, "traefik", "spec.features.traefik", &s.features.traefik);
          ck.boolean(f, "serviceLB", "spec.features.serviceLB", &s.features.service_lb);
          ck.boolean(f, "localStorage", "spec.features.localStorage", &s.features.local_storage);
          ck.boolean(f, "metricsServer", "spec.features.metricsServer", &s.features.metrics_server);
        }
      }
      if (YAML::Node pools = sp["nodePools"]; pools.IsDefined() && !pools.IsNull()) {
        if (!pools.IsSequence()) ck.problem(pools, "spec.nodePools", "must be a list of pools");
        else
          for (size_t i = 0; i < pools.size(); ++i) {
            YAML::Node pn = pools[i];
            std::string at = "spec.nodePools[" + std::to_string(i) + "]";
            NodePool p;
            if (!pn.IsMap()) {
              ck.problem(pn, at, "must be a map with name and count");
              continue;
            }
            ck.only(pn, at, {"name", "count", "role", "instanceType", "labels", "taints"});
            ck.str(pn, "name", at + ".name", &p.name);
            if (!pn["count"].IsDefined()) ck.problem(pn, at + ".count", "is required");
            ck.integer(pn, "count", at + ".count", &p.count);
            ck.str(pn, "role", at + ".role", &p.role);
            ck.str(pn, "instanceType", at + ".instanceType", &p.instance_type);
            ck.string_map(pn, "labels", at + ".labels", &p.labels);
            if (YAML::Node ts = pn["taints"]; ts.IsDefined() && !ts.IsNull()) {
              if (!ts.IsSequence()) ck.problem(ts, at + ".taints", "must be a list");
              else
                for (size_t t = 0; t < ts.size(); ++t) {
                  YAML::Node tn = ts[t];
                  std::string tat = at + ".taints[" + std::to_string(t) + "]";
                  if (!tn.IsMap()) {
                    ck.problem(tn, tat, "must be a map with key, value and effect");
                    continue;
                  }
                  ck.only(tn, tat, {"key", "value", "effect"});
                  Taint taint;
                  ck.str(tn, "key", tat + ".key", &taint.key);
                  ck.str(tn, "value", tat + ".value", &taint.value);
                  ck.str(tn, "effect", tat + ".effect", &taint.effect);
                  p.taints.push_back(std::move(taint));
                }
            }
            s.node_pools.push_back(std::move(p));
          }
      }
    }
    if (c.kind == "K3sCluster" && c.spec.provider == "aws") {
      // The original's files name AWS; gantry has no AWS provider yet. Said plainly, with the way out.
      ck.problem(sp["provider"].IsDefined() ? sp["provider"] : sp, "spec.provider",
                 "the original's AWS provider is not built; set provider: ssh (an inventory) or sim");
    } else {
      check_rules(c, [&](const std::string& path, const std::string& what) { ck.problem(node_at(root, path), path, what); });
    }
  } catch (const YAML::Exception& e) {
    return core::invalid_argument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  GANTRY_RETURN_IF_ERROR(ck.status());
  return c;
}

Status validate(const Cluster& c) {
  std::vector<std::string> problems;
  check_rules(c, [&](const std::string& path, const std::string& what) { problems.push_back(path + ": " + what); });
  if (problems.empty()) return {};
  std::string m = std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems");
  for (auto& p : problems) m += "\n  " + p;
  return core::invalid_argument(m);
}

namespace {

void emit_map(YAML::Emitter& e, const char* key, const std::map<std::string, std::string>& m) {
  if (m.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::BeginMap;
  for (auto& [k, v] : m) e << YAML::Key << k << YAML::Value << v;
  e << YAML::EndMap;
}
void emit_str(YAML::Emitter& e, const char* key, const std::string& v) {
  if (!v.empty()) e << YAML::Key << key << YAML::Value << v;
}

}  // namespace

std::string to_yaml(const Cluster& c) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "apiVersion" << YAML::Value << "gantry.io/v1";
  e << YAML::Key << "kind" << YAML::Value << "Cluster";
  e << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << c.metadata.name;
  emit_str(e, "id", c.metadata.id);
  emit_map(e, "labels", c.metadata.labels);
  emit_map(e, "annotations", c.metadata.annotations);
  emit_str(e, "createdAt", c.metadata.created_at);
  emit_str(e, "updatedAt", c.metadata.updated_at);
  emit_str(e, "deletionTimestamp", c.metadata.deletion_timestamp);
  e << YAML::Key << "generation" << YAML::Value << c.metadata.generation;
  e << YAML::EndMap;
  const ClusterSpec& s = c.spec;
  e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
  emit_str(e, "description", s.description);
  e << YAML::Key << "mode" << YAML::Value << s.mode;
  e << YAML::Key << "provider" << YAML::Value << s.provider;
  emit_str(e, "region", s.region);
  emit_str(e, "instanceType", s.instance_type);
  e << YAML::Key << "distribution" << YAML::Value << s.distribution;
  emit_str(e, "k3sVersion", s.k3s_version);
  e << YAML::Key << "networkCIDR" << YAML::Value << s.network_cidr;
  e << YAML::Key << "serviceCIDR" << YAML::Value << s.service_cidr;
  e << YAML::Key << "clusterDNS" << YAML::Value << s.cluster_dns;
  e << YAML::Key << "features" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "traefik" << YAML::Value << s.features.traefik;
  e << YAML::Key << "serviceLB" << YAML::Value << s.features.service_lb;
  e << YAML::Key << "localStorage" << YAML::Value << s.features.local_storage;
  e << YAML::Key << "metricsServer" << YAML::Value << s.features.metrics_server;
  e << YAML::EndMap;
  emit_map(e, "tags", s.tags);
  e << YAML::Key << "desiredState" << YAML::Value << s.desired_state;
  e << YAML::Key << "nodePools" << YAML::Value << YAML::BeginSeq;
  for (auto& p : s.node_pools) {
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << p.name;
    e << YAML::Key << "count" << YAML::Value << p.count;
    e << YAML::Key << "role" << YAML::Value << p.role;
    emit_str(e, "instanceType", p.instance_type);
    emit_map(e, "labels", p.labels);
    if (!p.taints.empty()) {
      e << YAML::Key << "taints" << YAML::Value << YAML::BeginSeq;
      for (auto& t : p.taints)
        e << YAML::BeginMap << YAML::Key << "key" << YAML::Value << t.key << YAML::Key << "value" << YAML::Value << t.value
          << YAML::Key << "effect" << YAML::Value << t.effect << YAML::EndMap;
      e << YAML::EndSeq;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::string to_yaml(const ClusterStatus& s) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "phase" << YAML::Value << s.phase;
  e << YAML::Key << "message" << YAML::Value << s.message;
  e << YAML::Key << "observedGeneration" << YAML::Value << s.observed_generation;
  e << YAML::Key << "lastReconcileTime" << YAML::Value << s.last_reconcile_time;
  e << YAML::Key << "progress" << YAML::Value << YAML::BeginMap;
  for (auto [name, p] : {std::pair{"provisioning", s.provisioning}, {"installing", s.installing}, {"configuring", s.configuring}})
    e << YAML::Key << name << YAML::Value << (std::to_string(p.done) + "/" + std::to_string(p.total));
  e << YAML::EndMap;
  e << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
  for (auto& i : s.instances) {
    e << YAML::BeginMap;
    e << YAML::Key << "id" << YAML::Value << i.id << YAML::Key << "name" << YAML::Value << i.name;
    e << YAML::Key << "role" << YAML::Value << i.role << YAML::Key << "pool" << YAML::Value << i.pool;
    e << YAML::Key << "index" << YAML::Value << i.index << YAML::Key << "state" << YAML::Value << i.state;
    e << YAML::Key << "privateIp" << YAML::Value << i.private_ip << YAML::Key << "publicIp" << YAML::Value << i.public_ip;
    e << YAML::Key << "provisioned" << YAML::Value << i.provisioned << YAML::Key << "installed" << YAML::Value << i.installed;
    e << YAML::Key << "joined" << YAML::Value << i.joined << YAML::Key << "error" << YAML::Value << i.error;
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::Key << "conditions" << YAML::Value << YAML::BeginSeq;
  for (auto& c : s.conditions)
    e << YAML::BeginMap << YAML::Key << "type" << YAML::Value << c.type << YAML::Key << "status" << YAML::Value << c.status
      << YAML::Key << "reason" << YAML::Value << c.reason << YAML::Key << "message" << YAML::Value << c.message
      << YAML::Key << "lastTransitionTime" << YAML::Value << c.last_transition_time << YAML::EndMap;
  e << YAML::EndSeq;
  const Operations& o = s.operations;
  e << YAML::Key << "operations" << YAML::Value << YAML::BeginMap;
  for (auto [k, v] : {std::pair{"passes", o.passes}, {"steps", o.steps}, {"stepsFailed", o.steps_failed},
                      {"stepsSkipped", o.steps_skipped}, {"retries", o.retries}, {"passMs", o.pass_ms},
                      {"lastPassMs", o.last_pass_ms}, {"lastBusyMs", o.last_busy_ms}, {"lastSlotMs", o.last_slot_ms},
                      {"lastCriticalPathMs", o.last_critical_path_ms}})
    e << YAML::Key << k << YAML::Value << v;
  e << YAML::Key << "phaseMs" << YAML::Value << YAML::BeginMap;
  for (auto& [k, v] : o.phase_ms) e << YAML::Key << k << YAML::Value << v;
  e << YAML::EndMap;
  e << YAML::Key << "breakers" << YAML::Value << YAML::BeginMap;
  for (auto& [k, v] : o.breakers) e << YAML::Key << k << YAML::Value << v;
  e << YAML::EndMap;
  e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Result<ClusterStatus> parse_status(std::string_view yaml) {
  GANTRY_RETURN_IF_ERROR(check_shape(yaml, "status.yaml"));
  ClusterStatus s;
  try {
    YAML::Node r = YAML::Load(std::string(yaml));
    if (!r.IsMap()) return core::invalid_argument("status.yaml: not a map");
    // A missing key of a const node is an invalid node, whose type yaml-cpp throws for.
    auto str = [](const YAML::Node& n, const char* k) {
      YAML::Node v = n[k];
      return v.IsDefined() && v.IsScalar() ? v.Scalar() : std::string();
    };
    auto flag = [&](const YAML::Node& n, const char* k) { return str(n, k) == "true"; };
    s.phase = str(r, "phase");
    s.message = str(r, "message");
    s.observed_generation = r["observedGeneration"].IsScalar() ? r["observedGeneration"].as<int64_t>() : 0;
    s.last_reconcile_time = str(r, "lastReconcileTime");
    if (YAML::Node p = r["progress"]; p.IsMap())
      for (auto [name, out] : {std::pair{"provisioning", &s.provisioning}, {"installing", &s.installing}, {"configuring", &s.configuring}}) {
        std::string v = str(p, name);
        auto slash = v.find('/');
        if (slash == std::string::npos) continue;
        std::from_chars(v.data(), v.data() + slash, out->done);
        std::from_chars(v.data() + slash + 1, v.data() + v.size(), out->total);
      }
    if (YAML::Node is = r["instances"]; is.IsSequence())
      for (auto n : is) {
        if (!n.IsMap()) continue;
        Instance i;
        i.id = str(n, "id"), i.name = str(n, "name"), i.role = str(n, "role"), i.pool = str(n, "pool");
        i.index = n["index"].IsScalar() ? n["index"].as<int>() : 0;
        i.state = str(n, "state"), i.private_ip = str(n, "privateIp"), i.public_ip = str(n, "publicIp");
        i.provisioned = flag(n, "provisioned"), i.installed = flag(n, "installed"), i.joined = flag(n, "joined");
        i.error = str(n, "error");
        s.instances.push_back(std::move(i));
      }
    if (YAML::Node cs = r["conditions"]; cs.IsSequence())
      for (auto n : cs)
        if (n.IsMap())
          s.conditions.push_back({str(n, "type"), str(n, "status"), str(n, "reason"), str(n, "message"), str(n, "lastTransitionTime")});
    if (YAML::Node o = r["operations"]; o.IsMap()) {
      Operations& op = s.operations;
      auto num = [&](const char* k) { return o[k].IsScalar() ? o[k].as<int64_t>() : 0; };
      op.passes = num("passes"), op.steps = num("steps"), op.steps_failed = num("stepsFailed");
      op.steps_skipped = num("stepsSkipped"), op.retries = num("retries"), op.pass_ms = num("passMs");
      op.last_pass_ms = num("lastPassMs"), op.last_busy_ms = num("lastBusyMs"), op.last_slot_ms = num("lastSlotMs");
      op.last_critical_path_ms = num("lastCriticalPathMs");
      if (YAML::Node m = o["phaseMs"]; m.IsMap())
        for (auto kv : m)
          if (kv.second.IsScalar()) op.phase_ms[kv.first.as<std::string>()] = kv.second.as<int64_t>();
      if (YAML::Node m = o["breakers"]; m.IsMap())
        for (auto kv : m)
          if (kv.second.IsScalar()) op.breakers[kv.first.as<std::string>()] = kv.second.Scalar();
    }
  } catch (const YAML::Exception& e) {
    return core::invalid_argument("status.yaml:" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return s;
}

}  // namespace gantry::cluster
