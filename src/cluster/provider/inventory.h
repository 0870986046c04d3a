// The ssh provider's inputs, parsed without touching a host: the inventory file (which hosts,
// how to reach them) and extra OpenSSH options.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gantry::cluster {

struct SshHost {
  std::string name, address, user = "root", ssh_key;
  int port = 22;
};

struct Inventory {
  std::string path, known_hosts;
  std::vector<SshHost> hosts;
};

core::Result<Inventory> parse_inventory(std::string_view yaml, std::string_view source);
// `Key=Value` OpenSSH options, comma-separated (e.g. KexAlgorithms=curve25519-sha256), each
// passed as -o to every ssh call; a clear error for anything else.
core::Result<std::vector<std::string>> parse_ssh_options(std::string_view list);
core::Result<Inventory> load_inventory(const std::string& path);

}  // namespace gantry::cluster
