// The ssh provider's inventory file (--inventory) and its extra OpenSSH options (--ssh-options).
#include <cstdint>
#include <string_view>

#include "cluster/provider/inventory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto inv = gantry::cluster::parse_inventory(text, "fuzz.yaml");
  if (inv.is_ok()) {
    // What reaches ssh's command line: a host always has an address and a port in range.
    for (auto& h : inv->hosts)
      if (h.address.empty() || h.port < 1 || h.port > 65535) __builtin_trap();
  }
  auto o = gantry::cluster::parse_ssh_options(text);
  if (o.is_ok())
    for (auto& s : *o)
      if (s.find('=') == std::string::npos || s.find_first_of(" \t\n,") != std::string::npos) __builtin_trap();
  return 0;
}
