#include "cluster/provider/inventory.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace gantry::cluster {

namespace fs = std::filesystem;
using core::Result;

Result<Inventory> parse_inventory(std::string_view yaml, std::string_view source) {
  if (yaml.size() > (1 << 20)) return core::invalid_argument(std::string(source) + ": larger than 1 MiB");
  Inventory inv;
  std::vector<std::string> problems;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    auto where = [&](const YAML::Node& n) {
      return std::string(source) + (n.Mark().line >= 0 ? ":" + std::to_string(n.Mark().line + 1) : std::string());
    };
    if (!root.IsMap() || !root["hosts"].IsSequence())
      return core::invalid_argument(std::string(source) + ": expected `hosts:` with a list of {name, address, port, user, ssh_key}");
    if (YAML::Node k = root["known_hosts"]; k.IsDefined() && k.IsScalar()) inv.known_hosts = k.Scalar();
    std::map<std::string, int> seen;
    for (const auto& n : root["hosts"]) {
      if (!n.IsMap()) {
        problems.push_back(where(n) + ": a host must be a map");
        continue;
      }
      SshHost h;
      // A missing key reads as an invalid node, whose type yaml-cpp throws for: ask IsDefined first.
      auto str = [&](const char* k, std::string* out) {
        if (YAML::Node v = n[k]; v.IsDefined() && v.IsScalar()) *out = v.Scalar();
      };
      str("name", &h.name);
      str("address", &h.address);
      str("user", &h.user);
      str("ssh_key", &h.ssh_key);
      if (YAML::Node port = n["port"]; port.IsDefined() && port.IsScalar()) {
        try {
          h.port = port.as<int>();
        } catch (const YAML::Exception&) {
          h.port = -1;
        }
      }
      if (h.address.empty()) problems.push_back(where(n) + ": address is required");
      if (h.name.empty()) h.name = h.address;
      if (h.port < 1 || h.port > 65535) problems.push_back(where(n) + ": port must be 1..65535");
      if (h.name.find_first_of(" \t\n/") != std::string::npos) problems.push_back(where(n) + ": name '" + h.name + "' has a space or '/'");
      if (!h.name.empty() && seen[h.name]++) problems.push_back(where(n) + ": host '" + h.name + "' is listed twice");
      inv.hosts.push_back(std::move(h));
    }
  } catch (const YAML::Exception& e) {
    return core::invalid_argument(std::string(source) + (e.mark.line >= 0 ? ":" + std::to_string(e.mark.line + 1) : "") +
                                  ": not YAML: " + e.msg);
  }
  if (!problems.empty()) {
    std::string m = std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems");
    for (auto& p : problems) m += "\n  " + p;
    return core::invalid_argument(m);
  }
  if (inv.hosts.empty()) return core::invalid_argument(std::string(source) + ": no hosts");
  return inv;
}

Result<Inventory> load_inventory(const std::string& path) {
  std::ifstream in(path);
  if (!in) return core::not_found("inventory " + path + " cannot be read (scripts/hosts up N writes one)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto inv = parse_inventory(ss.str(), path);
  if (inv.is_ok()) inv->path = fs::absolute(path).string();
  return inv;
}

Result<std::vector<std::string>> parse_ssh_options(std::string_view list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= list.size() && !list.empty()) {
    size_t comma = list.find(',', at);
    std::string o(list.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
    size_t eq = o.find('=');
    bool word = !o.empty() && std::all_of(o.begin(), o.end(), [](unsigned char c) { return c > ' ' && c < 127; });
    if (!word || eq == 0 || eq == std::string::npos || eq + 1 == o.size())
      return core::invalid_argument("ssh option '" + o + "': expected Key=Value (an OpenSSH -o option, e.g. KexAlgorithms=curve25519-sha256)");
    out.push_back(std::move(o));
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return out;
}

}  // namespace gantry::cluster
