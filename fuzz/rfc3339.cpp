// RFC 3339 times (the Fleet agents' start_time, the diagnoser's --from/--to). Invariant: a
// time that parses formats to text that parses to the same instant.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/clock.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = gantry::core::parse_rfc3339(text);
  if (!t) return 0;
  auto back = gantry::core::parse_rfc3339(gantry::core::rfc3339(*t));
  if (!back) std::abort();
  return 0;
}
