// One event as a row of events_seen in COPY text format, in kCopyEvents' column order.
#pragma once

#include <cstdint>
#include <string>

#include "telemetry/event.h"

namespace gantry::telemetry::aggregator {

// Appends the row, ending in '\n', to `out`. `window` is the start of the event's window. Text
// fields are escaped as COPY requires; numbers are the shortest text that reads back as the
// same double; an unmeasured one is \N.
void append_copy_line(std::string& out, const Event& e, int64_t window);

}  // namespace gantry::telemetry::aggregator
