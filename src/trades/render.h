// The JSON shapes the outside reads (spec trades.md, "Output"): the Redis value of
// token:{addr}:aggregates (window -> aggregate, the original's keys kept beside the spec's),
// the NATS TokenAggregateData publication, and the query API's token entry. Figures are written
// to 12 significant digits, so sums kept incrementally read as what was traded
// (12.3, not 12.300000000000001).
#pragma once

#include <string>
#include <vector>

#include "trades/engine.h"

namespace gantry::trades {

// {"1min":{"sell_count":…,"buy_count":…,"total_trades":…,"sell_volume":…,"buy_volume":…,
//  "total_volume":…,"volume_usd":…,"price_change":…,"start_price":…,"end_price":…,
//  "open_price":…,"close_price":…,"high":…,"low":…,"vwap":…,"last_update":"…"},…}
void render_aggregates(std::string& out, const std::vector<WindowSpec>& windows, const TokenUpdate& u,
                       std::string_view last_update);

// {"token":…,"symbol":"","name":"","aggregate_data":[{"time_window":"1min",…,"timestamp":…}],
//  "generated_at":…,"version":"1.0"}
void render_publication(std::string& out, const std::vector<WindowSpec>& windows, const TokenUpdate& u,
                        std::string_view generated_at);

// A figure to 12 significant digits (shortest form that reads back as that).
void append_figure(std::string& out, double v);

}  // namespace gantry::trades
