#include <boost/json.hpp>

#include <cstdarg>
#include <cstdio>

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

// printf into `out`, however long the result (a figure of 1e300 printed %.3f is 300 digits).
[[gnu::format(printf, 2, 3)]] void appendf(std::string& out, const char* fmt, ...) {
  va_list a, b;
  va_start(a, fmt);
  va_copy(b, a);
  int n = std::vsnprintf(nullptr, 0, fmt, a);
  va_end(a);
  if (n > 0) {
    size_t at = out.size();
    out.resize(at + static_cast<size_t>(n) + 1);
    std::vsnprintf(out.data() + at, static_cast<size_t>(n) + 1, fmt, b);
    out.resize(at + static_cast<size_t>(n));
  }
  va_end(b);
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
  appendf(out, "%-3s %-46s %14s %8s %14s %9s\n", "#", "token", "volume (SOL)", "trades", "close (USD)", "change");
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
      appendf(out, "%-3d %-46s %14.3f %8.0f %14.8g %+8.2f%%\n", ++i, token.c_str(), num(*w, "total_volume"), num(*w, "total_trades"),
              num(*w, "close_price"), num(*w, "price_change"));
    }
  }
  if (i == 0) out += "    (no token has traded in the last " + core::printable(v.window) + ")\n";
  return out;
}

}  // namespace gantry::trades
