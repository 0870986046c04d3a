#include <fmt/format.h>

#include <boost/json.hpp>

#include <iterator>

#include "core/text.h"
#include "trades/tools/top.h"

namespace gantry::trades {

namespace {
double num(const boost::json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return 0;
}

// The token column is 46 wide (a Solana address is 43-44): a longer token is cut there, at a
// character boundary, and ends in "…", so its line keeps the table's columns.
constexpr size_t kTokenColumn = 46;
std::string column(std::string_view token) {
  std::string t = core::printable(token);
  if (t.size() <= kTokenColumn) return t;
  size_t cut = kTokenColumn - 1;
  while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
  return t.substr(0, cut) + "…";
}
}  // namespace

std::string top_screen(std::string_view body, const TopView& v) {
  boost::system::error_code ec;
  auto doc = boost::json::parse(body, ec);
  if (ec || !doc.is_object()) return v.stamp + "  unreadable answer\n";
  auto* tokens = doc.as_object().if_contains("tokens");
  std::string out;
  out += v.stamp + "  top " + std::to_string(v.limit) + " tokens by " + core::printable(v.window) + " volume (" +
         core::printable(v.url) + ")\n";
  // fmt, not printf: a figure of any size fits (1e300 at .3f is 300 digits), and widths count
  // characters, so a token cut with "…" keeps the columns.
  auto line = std::back_inserter(out);
  fmt::format_to(line, "{:<3} {:<46} {:>14} {:>8} {:>14} {:>9}\n", "#", "token", "volume (SOL)", "trades", "close (USD)", "change");
  int i = 0;
  if (tokens && tokens->is_array()) {
    for (auto& t : tokens->as_array()) {
      if (!t.is_object()) continue;
      auto& o = t.as_object();
      std::string token = o.contains("token") && o.at("token").is_string() ? column(o.at("token").as_string()) : "?";
      const boost::json::object* w = nullptr;
      if (auto* a = o.if_contains("aggregates"); a && a->is_object())
        if (auto* x = a->as_object().if_contains(v.window); x && x->is_object()) w = &x->as_object();
      if (!w) continue;
      fmt::format_to(line, "{:<3} {:<46} {:>14.3f} {:>8.0f} {:>14.8g} {:>+8.2f}%\n", ++i, token, num(*w, "total_volume"),
                     num(*w, "total_trades"), num(*w, "close_price"), num(*w, "price_change"));
    }
  }
  if (i == 0) out += "    (no token has traded in the last " + core::printable(v.window) + ")\n";
  return out;
}

}  // namespace gantry::trades
