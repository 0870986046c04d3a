// One measurement of a target: libcurl's phase timings on a fresh connection (one DNS lookup,
// one TCP connect, one TLS handshake), then a throughput download that reuses that connection
// when it is on the same host. Phases that did not happen (TLS on http://) are absent, never 0.
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
};

// throughput_url "" = no throughput step.
Measurement measure(const std::string& target, const std::string& throughput_url, std::chrono::milliseconds timeout);

}  // namespace gantry::telemetry::probe
