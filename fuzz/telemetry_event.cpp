// The telemetry event as ingest takes it: one event (parse_event), or a batch (split_batch:
// a JSON array or NDJSON, then each event). Invariant: an event that parses writes back
// (to_json) to text that parses to the same event; numbers within 1e-12 relative, because
// Boost.JSON 1.81 reads some doubles one unit in the last place off (found by this target:
// 5.000000000000002e+65 reads back as 5.000000000000003e+65; precise parsing came in 1.83).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "telemetry/event.h"

namespace t = gantry::telemetry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1'800'000'000'000;
  auto near = [](std::optional<double> a, std::optional<double> b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || *a == *b || std::fabs(*a - *b) <= 1e-12 * std::max(std::fabs(*a), std::fabs(*b));
  };
  auto check = [&](std::string_view one) {
    auto e = t::parse_event(one, kNow);
    if (!e.is_ok()) return;
    auto back = t::parse_event(t::to_json(*e), kNow);
    if (!back.is_ok()) std::abort();  // what we write, we read
    const t::Event &a = *e, &b = *back;
    if (a.event_id != b.event_id || a.client_id != b.client_id || a.ts_ms != b.ts_ms || a.target != b.target ||
        a.schema_version != b.schema_version || a.interface_type != b.interface_type || a.vpn_enabled != b.vpn_enabled ||
        a.user_label != b.user_label || a.error_stage != b.error_stage || a.traceparent != b.traceparent ||
        !near(a.timings.dns_ms, b.timings.dns_ms) || !near(a.timings.tcp_ms, b.timings.tcp_ms) ||
        !near(a.timings.tls_ms, b.timings.tls_ms) || !near(a.timings.http_ttfb_ms, b.timings.http_ttfb_ms) ||
        !near(a.throughput_kbps, b.throughput_kbps))
      std::abort();
  };
  check(text);
  if (auto items = t::split_batch(text); items.is_ok())
    for (const auto& item : *items) check(item);
  return 0;
}
