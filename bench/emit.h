// One JSON line per figure, as every benchmark prints them (docs/ARCHITECTURE.md, Benchmarks):
// {"bench":…,"metric":…,"value":…[,"unit":…]}. A figure with a unit is a count or rate, printed
// whole; a ratio (no unit) with three decimals.
#pragma once

#include <cstdio>

namespace gantry::bench {

inline void emit(const char* bench, const char* metric, double v, const char* unit = nullptr) {
  if (unit)
    std::printf("{\"bench\":\"%s\",\"metric\":\"%s\",\"value\":%.0f,\"unit\":\"%s\"}\n", bench, metric, v, unit);
  else
    std::printf("{\"bench\":\"%s\",\"metric\":\"%s\",\"value\":%.3f}\n", bench, metric, v);
  std::fflush(stdout);
}

}  // namespace gantry::bench
