// The JetStream streams Telemetry's roles share: ingest appends to the events stream, the
// aggregator consumes it and moves poison messages to the DLQ.
#pragma once

#include <chrono>
#include <string_view>

#include "bus/nats/jetstream.h"

namespace gantry::telemetry {

inline constexpr std::string_view kEventsStream = "telemetry-events";
inline constexpr std::string_view kEventsSubject = "telemetry.events";
inline constexpr std::string_view kDlqStream = "telemetry-events-dlq";
inline constexpr std::string_view kDlqSubject = "telemetry.dlq";

// File storage, WorkQueue retention, 7 days; the duplicate window drops resent event ids.
inline bus::nats::StreamSpec events_stream() {
  bus::nats::StreamSpec s;
  s.name = std::string(kEventsStream);
  s.subjects = {std::string(kEventsSubject)};
  s.work_queue = true;
  s.max_age = std::chrono::hours(24 * 7);
  return s;
}

// Limits retention, 30 days.
inline bus::nats::StreamSpec dlq_stream() {
  bus::nats::StreamSpec s;
  s.name = std::string(kDlqStream);
  s.subjects = {std::string(kDlqSubject)};
  s.max_age = std::chrono::hours(24 * 30);
  return s;
}

}  // namespace gantry::telemetry
