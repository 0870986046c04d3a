// One network-quality measurement as probes send it and the stream carries it (spec
// telemetry.md, "Event"). parse_event is ingest's validation: it either returns a complete,
// checked event or the first rule it broke, naming the field, and never a half-checked one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "core/status.h"
#include "core/uuid.h"

namespace gantry::telemetry {

struct Timings {
  std::optional<double> dns_ms, tcp_ms, tls_ms, http_ttfb_ms;  // nullopt = not measured
};

struct Event {
  std::string event_id;
  std::string client_id;
  int64_t ts_ms = 0;
  int64_t recv_ts_ms = 0;
  std::string schema_version;
  std::string target;
  std::string interface_type;
  std::optional<bool> vpn_enabled;
  std::optional<std::string> user_label;
  Timings timings;
  std::optional<double> throughput_kbps;
  std::optional<std::string> error_stage;
  std::optional<std::string> traceparent, tracestate;
};

inline constexpr int64_t kMaxClockSkewMs = 3'600'000;  // ts_ms may be up to 1 h ahead
inline constexpr size_t kMaxIdBytes = 255;
inline constexpr std::string_view kKnownSchema = "1.0";

// Decodes and validates one event. `now_ms` bounds ts_ms; recv_ts_ms is set to it whatever
// the client sent. kInvalidArgument's message names the field ("ts_ms must be …").
core::Result<Event> parse_event(std::string_view json, int64_t now_ms);

// A batch body into its events' texts: a JSON array (each element), or NDJSON (each non-blank
// line). kInvalidArgument when it is a broken array or holds no event. The events themselves
// are not validated here (parse_event, one by one).
core::Result<std::vector<std::string>> split_batch(std::string_view body);

// The event as the stream carries it: canonical field order, `timings` (never the synonym),
// unmeasured phases as null.
std::string to_json(const Event& e);

using core::is_uuid;

}  // namespace gantry::telemetry
