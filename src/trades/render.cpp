#include "trades/render.h"

#include <charconv>
#include <cmath>

#include "core/json.h"

namespace gantry::trades {

void append_figure(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  if (v == 0) {  // -0 and the residue of a window that emptied read as 0
    out += '0';
    return;
  }
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 12);
  // %g style keeps trailing zeros out but may write "1e+06": JSON reads both.
  out.append(buf, end);
}

namespace {

// Writer::raw for a figure.
void figure(core::json::Writer& w, std::string_view key, double v) {
  std::string s;
  append_figure(s, v);
  w.key(key).raw(s);
}

}  // namespace

void render_aggregates(std::string& out, const std::vector<WindowSpec>& windows, const TokenUpdate& u,
                       std::string_view last_update) {
  core::json::Writer w(out);
  w.object();
  for (size_t i = 0; i < windows.size() && i < u.windows.size(); ++i) {
    const Aggregate& a = u.windows[i];
    w.key(windows[i].name).object();
    w.field("sell_count", static_cast<long long>(a.sell_count));
    w.field("buy_count", static_cast<long long>(a.buy_count));
    w.field("total_trades", static_cast<long long>(a.total_trades));
    figure(w, "sell_volume", a.sell_volume);
    figure(w, "buy_volume", a.buy_volume);
    figure(w, "total_volume", a.total_volume);
    figure(w, "volume_usd", a.volume_usd);
    figure(w, "price_change", a.price_change);
    figure(w, "start_price", a.open_price);  // the original's names for open and close
    figure(w, "end_price", a.close_price);
    figure(w, "open_price", a.open_price);
    figure(w, "close_price", a.close_price);
    figure(w, "high", a.high);
    figure(w, "low", a.low);
    figure(w, "vwap", a.vwap);
    w.field("last_update", last_update);
    w.end();
  }
  w.end();
}

void render_publication(std::string& out, const std::vector<WindowSpec>& windows, const TokenUpdate& u,
                        std::string_view generated_at) {
  core::json::Writer w(out);
  w.object().field("token", u.token).field("symbol", "").field("name", "").key("aggregate_data").array();
  for (size_t i = 0; i < windows.size() && i < u.windows.size(); ++i) {
    const Aggregate& a = u.windows[i];
    w.object().field("time_window", windows[i].name);
    w.field("sell_count", static_cast<long long>(a.sell_count));
    w.field("buy_count", static_cast<long long>(a.buy_count));
    w.field("total_trades", static_cast<long long>(a.total_trades));
    figure(w, "sell_volume", a.sell_volume);
    figure(w, "buy_volume", a.buy_volume);
    figure(w, "total_volume", a.total_volume);
    figure(w, "volume_usd", a.volume_usd);
    figure(w, "price_change", a.price_change);
    figure(w, "open_price", a.open_price);
    figure(w, "close_price", a.close_price);
    w.field("timestamp", generated_at);
    w.end();
  }
  w.end().field("generated_at", generated_at).field("version", "1.0").end();
}

}  // namespace gantry::trades
