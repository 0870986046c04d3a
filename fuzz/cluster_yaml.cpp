// Cluster files (gantry cluster create -f) and the status files the store reads back.
#include <cstdint>
#include <string_view>

#include "cluster/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = gantry::cluster::parse_cluster(text, "fuzz.yaml");
  if (c.is_ok()) {
    // What the store writes must read back as the same cluster.
    auto again = gantry::cluster::parse_cluster(gantry::cluster::to_yaml(*c), "again.yaml");
    if (!again.is_ok() || gantry::cluster::to_yaml(*again) != gantry::cluster::to_yaml(*c)) __builtin_trap();
    (void)gantry::cluster::desired_nodes(*c);
  }
  auto s = gantry::cluster::parse_status(text);
  if (s.is_ok()) (void)gantry::cluster::to_yaml(*s);
  return 0;
}
