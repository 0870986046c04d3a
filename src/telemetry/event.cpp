#include "telemetry/event.h"

#include "core/json.h"

#include <charconv>
#include <cmath>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "core/http/message.h"

namespace gantry::telemetry {

namespace json = boost::json;
using core::invalid_argument;

namespace {

constexpr std::string_view kStages[] = {"parse", "DNS", "TCP", "TLS", "HTTP", "throughput", "unknown"};

std::string field_error(std::string_view field, std::string_view rule) {
  return std::string(field) + " " + std::string(rule);
}

// A JSON number as a double, or nullopt for null; false when it is neither.
bool number_or_null(const json::value& v, std::optional<double>* out) {
  if (v.is_null()) {
    out->reset();
    return true;
  }
  if (v.is_double()) *out = v.get_double();
  else if (v.is_int64()) *out = static_cast<double>(v.get_int64());
  else if (v.is_uint64()) *out = static_cast<double>(v.get_uint64());
  else return false;
  return std::isfinite(**out);
}

}  // namespace

core::Result<Event> parse_event(std::string_view text, int64_t now_ms) {
  boost::system::error_code ec;
  // The DOM lives only for this call: a stack arena instead of an allocation per node (the
  // aggregator parses every event it consumes). Bigger events spill to the heap.
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value v = json::parse(text, ec, &mr);
  if (ec) return invalid_argument("invalid JSON: " + ec.message());
  if (!v.is_object()) return invalid_argument("event must be a JSON object");
  const json::object& o = v.get_object();
  Event e;
  bool have_timings = false;
  const json::value* timings = nullptr;
  for (const auto& [key, val] : o) {
    std::string_view k = key;
    auto str = [&](std::string* out) -> bool {
      if (!val.is_string()) return false;
      *out = std::string(val.get_string());
      return true;
    };
    auto opt_str = [&](std::optional<std::string>* out) -> bool {
      if (val.is_null()) return true;
      if (!val.is_string()) return false;
      *out = std::string(val.get_string());
      return true;
    };
    if (k == "event_id") {
      if (!str(&e.event_id) || !is_uuid(e.event_id)) return invalid_argument("event_id must be a UUID string");
    } else if (k == "client_id") {
      if (!str(&e.client_id)) return invalid_argument("client_id must be a string");
    } else if (k == "ts_ms") {
      if (!val.is_int64() && !val.is_uint64()) return invalid_argument("ts_ms must be an integer (Unix milliseconds)");
      e.ts_ms = val.is_int64() ? val.get_int64() : static_cast<int64_t>(std::min<uint64_t>(val.get_uint64(), INT64_MAX));
    } else if (k == "recv_ts_ms") {
      // set by ingest below, whatever the client sent
    } else if (k == "schema_version") {
      if (!str(&e.schema_version)) return invalid_argument("schema_version must be a string");
    } else if (k == "target") {
      if (!str(&e.target)) return invalid_argument("target must be a string");
    } else if (k == "network_context") {
      if (!val.is_object()) return invalid_argument("network_context must be an object");
      for (const auto& [nk, nv] : val.get_object()) {
        std::string_view n = nk;
        if (n == "interface_type") {
          if (!nv.is_string()) return invalid_argument("network_context.interface_type must be a string");
          e.interface_type = std::string(nv.get_string());
        } else if (n == "vpn_enabled") {
          if (!nv.is_bool() && !nv.is_null()) return invalid_argument("network_context.vpn_enabled must be a boolean");
          if (nv.is_bool()) e.vpn_enabled = nv.get_bool();
        } else if (n == "user_label") {
          if (!nv.is_string() && !nv.is_null()) return invalid_argument("network_context.user_label must be a string");
          if (nv.is_string()) e.user_label = std::string(nv.get_string());
        } else {
          return invalid_argument("unknown field: network_context." + std::string(n));
        }
      }
    } else if (k == "timings" || k == "timing_measurements") {
      if (have_timings) return invalid_argument("timings and timing_measurements are the same field; send one");
      have_timings = true;
      timings = &val;
    } else if (k == "throughput_kbps") {
      if (!number_or_null(val, &e.throughput_kbps)) return invalid_argument("throughput_kbps must be a number");
    } else if (k == "error_stage") {
      if (!opt_str(&e.error_stage)) return invalid_argument("error_stage must be a string");
    } else if (k == "traceparent") {
      if (!opt_str(&e.traceparent)) return invalid_argument("traceparent must be a string");
    } else if (k == "tracestate") {
      if (!opt_str(&e.tracestate)) return invalid_argument("tracestate must be a string");
    } else {
      return invalid_argument("unknown field: " + std::string(k));
    }
  }
  if (timings) {
    if (timings->is_object()) {
      for (const auto& [tk, tv] : timings->get_object()) {
        std::string_view t = tk;
        std::optional<double>* dst = t == "dns_ms"         ? &e.timings.dns_ms
                                     : t == "tcp_ms"       ? &e.timings.tcp_ms
                                     : t == "tls_ms"       ? &e.timings.tls_ms
                                     : t == "http_ttfb_ms" ? &e.timings.http_ttfb_ms
                                                           : nullptr;
        if (!dst) return invalid_argument("unknown field: timings." + std::string(t));
        if (!number_or_null(tv, dst)) return invalid_argument("timings." + std::string(t) + " must be a number of ms or null");
      }
    } else if (!timings->is_null()) {
      return invalid_argument("timings must be an object");
    }
  }

  if (e.event_id.empty()) return invalid_argument("event_id is required");
  if (e.client_id.empty()) return invalid_argument("client_id is required and must not be empty");
  if (e.client_id.size() > kMaxIdBytes) return invalid_argument("client_id must be at most 255 bytes");
  if (!o.contains("ts_ms")) return invalid_argument("ts_ms is required");
  if (e.ts_ms <= 0) return invalid_argument("ts_ms must be > 0");
  if (e.ts_ms > now_ms + kMaxClockSkewMs) return invalid_argument("ts_ms is more than 1 h in the future");
  if (!o.contains("schema_version") || e.schema_version.empty()) return invalid_argument("schema_version is required");
  if (e.target.empty()) return invalid_argument("target is required and must not be empty");
  if (e.target.size() > kMaxIdBytes) return invalid_argument("target must be at most 255 bytes");
  if (!boost::urls::parse_absolute_uri(e.target)) return invalid_argument("target must be an absolute URL");
  if (!o.contains("network_context")) return invalid_argument("network_context is required");
  if (e.interface_type.empty()) return invalid_argument("network_context.interface_type is required");
  if (e.error_stage) {
    bool known = false;
    for (auto s : kStages) known |= *e.error_stage == s;
    if (!known) return invalid_argument("error_stage must be one of parse, DNS, TCP, TLS, HTTP, throughput, unknown");
  } else {
    for (auto [name, t] : {std::pair{"timings.dns_ms", &e.timings.dns_ms}, std::pair{"timings.tcp_ms", &e.timings.tcp_ms},
                           std::pair{"timings.tls_ms", &e.timings.tls_ms},
                           std::pair{"timings.http_ttfb_ms", &e.timings.http_ttfb_ms}})
      if (*t && **t < 0) return invalid_argument(field_error(name, "must be >= 0"));
    if (e.throughput_kbps && *e.throughput_kbps < 0) return invalid_argument("throughput_kbps must be >= 0");
  }
  e.recv_ts_ms = now_ms;
  return e;
}

std::string to_json(const Event& e) {
  std::string out;
  out.reserve(384);
  core::json::Writer w(out);
  // Timings are written in their shortest exact form: they were parsed from the client's text.
  auto num = [&](std::string_view key, std::optional<double> v) {
    if (v) w.field(key, *v);
    else w.field_null(key);
  };
  auto opt = [&](std::string_view key, const std::optional<std::string>& v) {
    if (v) w.field(key, *v);
  };
  w.object()
      .field("event_id", e.event_id)
      .field("client_id", e.client_id)
      .field("ts_ms", e.ts_ms)
      .field("recv_ts_ms", e.recv_ts_ms)
      .field("schema_version", e.schema_version)
      .field("target", e.target)
      .key("network_context")
      .object()
      .field("interface_type", e.interface_type);
  if (e.vpn_enabled) w.field("vpn_enabled", *e.vpn_enabled);
  opt("user_label", e.user_label);
  w.end().key("timings").object();
  num("dns_ms", e.timings.dns_ms);
  num("tcp_ms", e.timings.tcp_ms);
  num("tls_ms", e.timings.tls_ms);
  num("http_ttfb_ms", e.timings.http_ttfb_ms);
  w.end();
  num("throughput_kbps", e.throughput_kbps);
  opt("error_stage", e.error_stage);
  opt("traceparent", e.traceparent);
  opt("tracestate", e.tracestate);
  w.end();
  return out;
}

core::Result<std::vector<std::string>> split_batch(std::string_view body) {
  std::vector<std::string> items;
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && body[first] == '[') {
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_array())
      return invalid_argument("batch is not a JSON array: " + (ec ? ec.message() : std::string("not an array")));
    for (const auto& item : v.get_array()) items.push_back(json::serialize(item));
  } else {
    size_t start = 0;
    while (start < body.size()) {
      size_t nl = body.find('\n', start);
      std::string_view line = body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) items.emplace_back(line);
      if (nl == std::string_view::npos) break;
      start = nl + 1;
    }
  }
  if (items.empty()) return invalid_argument("batch holds no events");
  return items;
}

}  // namespace gantry::telemetry
