// What the Trades system reads from outside: trade bodies (the stream's messages and POST
// /trades), TIME_WINDOWS, and the query API's answer that `trades top` shows on a terminal.
// Accepted trades are also applied to a token's windows, whose statistics must stay sane
// whatever the trades were.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/text.h"
#include "trades/tools/top.h"
#include "trades/trade.h"
#include "trades/windows.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace gantry::trades;
  if (data[0] % 8 == 7) {
    // Whatever the answer, the screen is lines of text with nothing a terminal would act on.
    std::string screen = top_screen(in, {.stamp = "2026-12-05T00:00:00Z", .url = "http://x", .window = "1min", .limit = 10});
    if (screen.empty() || screen.back() != '\n') std::abort();
    for (char c : screen)
      if (c != '\n' && gantry::core::is_control(c)) std::abort();
    return 0;
  }
  if (data[0] % 4 == 3) {
    auto w = parse_windows(in);
    if (w.is_ok()) {
      if (w->empty()) std::abort();
      for (size_t i = 0; i < w->size(); ++i)
        if ((*w)[i].ms <= 0 || (*w)[i].ms > 86'400'000 || (i && (*w)[i - 1].ms >= (*w)[i].ms)) std::abort();
    }
    return 0;
  }
  std::vector<Trade> trades;
  std::vector<std::string> wire;
  auto s = parse_trades(in, 1, trades, &wire);
  if (!s.is_ok()) {
    if (!trades.empty() || !wire.empty() || s.message().empty()) std::abort();  // all or nothing, and said why
    return 0;
  }
  if (trades.empty() || trades.size() != wire.size()) std::abort();
  static const std::vector<WindowSpec> windows = *parse_windows("1s,1min");
  TokenWindows tw({.windows = &windows, .resolution_ms = 1000, .dedup = true});
  for (size_t i = 0; i < trades.size(); ++i) {
    const Trade& t = trades[i];
    if (t.token().empty() || t.token().size() > kMaxTokenLength || gantry::core::has_control(t.token())) std::abort();
    for (double v : {t.native_amount, t.token_amount, t.price_usd})
      if (!(v >= 0) || !std::isfinite(v)) std::abort();
    // The canonical form (what POST /trades stores) reads back as the same trade.
    std::vector<Trade> again;
    if (!parse_trades(wire[i], 1, again).is_ok() || again.size() != 1 || again[0].tx_fp != t.tx_fp ||
        again[0].t_ms != t.t_ms || again[0].price_usd != t.price_usd || again[0].token() != t.token())
      std::abort();
    tw.add(t, t.t_ms);
  }
  for (size_t w = 0; w < windows.size(); ++w) {
    Aggregate a = tw.aggregate(w);
    if (a.sell_count < 0 || a.buy_count < 0 || a.total_trades != a.sell_count + a.buy_count) std::abort();
    if (a.total_trades > 0 && a.high < a.low) std::abort();
  }
  return 0;
}
