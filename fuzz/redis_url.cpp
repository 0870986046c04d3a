// Redis URLs from settings and flags.
#include <cstdint>
#include <string_view>

#include "bus/redis/redis.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto e = gantry::bus::redis::Endpoint::parse_url(std::string_view(reinterpret_cast<const char*>(data), size));
  if (e.is_ok()) (void)e->describe();
  return 0;
}
