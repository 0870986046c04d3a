// What the Orchestrator reads from outside: domain API bodies (create and update rules),
// trigger notification payloads, and the routing keys a scan bridge turns into HTTP requests.
// The first byte picks the parser; an accepted routing key must never yield a path that could
// leave the scanner's base URL.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "orchestrator/bridge/route.h"
#include "orchestrator/domain.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace gantry::orchestrator;
  switch (data[0] % 4) {
    case 0:
    case 1: {
      auto r = parse_domain_body(in, data[0] % 4 == 0 ? BodyRule::kCreate : BodyRule::kUpdate);
      if (r.is_ok() && r->name && (r->name->empty() || r->name->size() > 800)) std::abort();
      break;
    }
    case 2:
      (void)parse_notice(in);
      break;
    case 3: {
      auto r = parse_routing_key(in, "asmm8");
      if (r.is_ok()) {
        const std::string& p = r->path;
        if (p.empty() || p.front() == '/' || p.back() == '/' || p.find("//") != std::string::npos ||
            p.find("..") != std::string::npos || p.find_first_of("?#%\\ ") != std::string::npos)
          std::abort();
      }
      break;
    }
  }
  return 0;
}
