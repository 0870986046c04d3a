// One measurement of a target: libcurl's phase timings on a fresh connection (one DNS lookup,
// one TCP connect, one TLS handshake), then a throughput download that reuses that connection
// when it is on the same host. Phases that did not happen (TLS on http://) are absent, never 0.
// Timings are whole microseconds (libcurl's resolution) in milliseconds, computed in integers,
// so an event carries 0.1, never 0.09999999999999998; throughput is rounded to 0.1 kbit/s.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "telemetry/event.h"

namespace gantry::telemetry::probe {

struct Measurement {
  Timings timings;
  std::optional<double> throughput_kbps;
  std::optional<std::string> error_stage;  // parse, DNS, TCP, TLS, HTTP, throughput, unknown
  std::string error;                       // libcurl's words, for logs
  // The throughput figure is the target's own page, because the default download was not there.
  bool throughput_from_page = false;
};

struct ThroughputStep {
  std::string url;  // "" = no throughput step
  // The URL is the default (target + /fixed/1mb.bin), not one the user gave: when the target
  // does not serve it (an HTTP error answer), throughput is measured from the target's own
  // page instead of failing the event. A URL the user gave that fails is a "throughput" error.
  bool defaulted = false;
};

Measurement measure(const std::string& target, const ThroughputStep& throughput, std::chrono::milliseconds timeout);

}  // namespace gantry::telemetry::probe
