#include "trades/render.h"

#include <charconv>
#include <cmath>

#include "core/json.h"

namespace gantry::trades {

// 12 significant digits without printf's cost (these are most of a flush's work): the value
// scaled to a 12-digit integer, printed, and the decimal point put back; magnitudes outside
// 1e-6 .. 1e15 take the slower general path.
void append_figure(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  if (v == 0) {  // -0 and the residue of a window that emptied read as 0
    out += '0';
    return;
  }
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  double a = std::fabs(v);
  char buf[48];
  if (a < 1e-6 || a >= 1e16) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 12);
    out.append(buf, end);
    return;
  }
  // The decimal exponent by table (log10 cost as much as the rest together).
  int e = 15;
  if (a < 1) {
    e = -1;
    while (a * kPow10[-e] < 1) --e;
  } else {
    while (a < kPow10[e]) --e;
  }
  int shift = 11 - e;  // m = a x 10^shift has 12 digits
  double scaled = shift >= 0 ? a * kPow10[shift] : a / kPow10[-shift];
  long long m = std::llround(scaled);
  if (m >= 1'000'000'000'000LL) {  // rounded up to the next power of ten
    m = (m + 5) / 10;
    --shift;
  } else if (m < 100'000'000'000LL) {  // log10 landed a digit low
    m = std::llround(scaled * 10);
    ++shift;
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, m);
  std::string_view digits(buf, static_cast<size_t>(end - buf));  // 12 digits
  if (v < 0) out += '-';
  if (shift <= 0) {
    out += digits;
    out.append(static_cast<size_t>(-shift), '0');
    return;
  }
  size_t int_len = shift >= 12 ? 0 : 12 - static_cast<size_t>(shift);
  std::string_view frac = digits.substr(int_len);
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (int_len == 0) {
    out += "0.";
    out.append(static_cast<size_t>(shift - 12), '0');
  } else {
    out += digits.substr(0, int_len);
    if (!frac.empty()) out += '.';
  }
  out += frac;
  if (int_len == 0 && frac.empty()) out += '0';  // unreachable for m >= 10^11, kept for safety
}

namespace {

// Writer::raw for a figure.
void figure(core::json::Writer& w, std::string_view key, double v) {
  std::string s;
  append_figure(s, v);
  w.key(key).raw(s);
}

// The fields both shapes share, in the original's order.
void counts_and_volumes(core::json::Writer& w, const Aggregate& a) {
  w.field("sell_count", static_cast<long long>(a.sell_count));
  w.field("buy_count", static_cast<long long>(a.buy_count));
  w.field("total_trades", static_cast<long long>(a.total_trades));
  figure(w, "sell_volume", a.sell_volume);
  figure(w, "buy_volume", a.buy_volume);
  figure(w, "total_volume", a.total_volume);
  figure(w, "volume_usd", a.volume_usd);
  figure(w, "price_change", a.price_change);
}

}  // namespace

void render_aggregates(std::string& out, const std::vector<WindowSpec>& windows, const TokenUpdate& u,
                       std::string_view last_update) {
  core::json::Writer w(out);
  w.object();
  for (size_t i = 0; i < windows.size() && i < u.windows.size(); ++i) {
    const Aggregate& a = u.windows[i];
    w.key(windows[i].name).object();
    counts_and_volumes(w, a);
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
    counts_and_volumes(w, a);
    figure(w, "open_price", a.open_price);
    figure(w, "close_price", a.close_price);
    w.field("timestamp", generated_at);
    w.end();
  }
  w.end().field("generated_at", generated_at).field("version", "1.0").end();
}

}  // namespace gantry::trades
