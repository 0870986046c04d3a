#include "trades/trade.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <optional>

#include "core/clock.h"
#include "core/json.h"
#include "core/text.h"

namespace gantry::trades {

namespace sj = simdjson::dom;
using core::Status;

uint64_t fingerprint(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, then splitmix64's finaliser to spread it
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

namespace {

enum Field { kToken, kWallet, kSellBuy, kNative, kTokenAmount, kPrice, kTime, kTxHash, kFields };
constexpr std::string_view kNames[kFields] = {"Token",       "Wallet",   "SellBuy",   "NativeAmount",
                                              "TokenAmount", "PriceUsd", "TransTime", "TxHash"};
constexpr std::string_view kFolded[kFields] = {"token",       "wallet",   "sellbuy",   "nativeamount",
                                               "tokenamount", "priceusd", "transtime", "txhash"};

// Key names compare case-insensitively with underscores ignored: "SellBuy", "sell_buy" and
// "SELLBUY" are one key.
int field_of(std::string_view key) {
  char folded[16];
  size_t n = 0;
  for (char c : key) {
    if (c == '_') continue;
    if (n == sizeof folded) return -1;
    folded[n++] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  std::string_view f(folded, n);
  for (int i = 0; i < kFields; ++i)
    if (kFolded[i] == f) return i;
  return -1;
}

std::string quoted(std::string_view v) {
  std::string out;
  core::json::append_string(v.substr(0, 64), out);
  if (v.size() > 64) out.insert(out.size() - 1, "…");
  return out;
}

// A non-negative decimal: digits with an optional fraction and exponent, no sign, finite.
std::optional<double> decimal(std::string_view v) {
  if (v.empty() || !((v[0] >= '0' && v[0] <= '9') || v[0] == '.')) return std::nullopt;
  double d = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d, std::chars_format::general);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

}  // namespace

// simdjson's DOM API, not On-Demand: the DOM parser picks the CPU's kernel at run time
// (AVX2, AVX-512), while On-Demand is compiled for the build's baseline (the portable kernel on
// a generic x86-64 build), which measured 40% slower on these small documents.
struct Parser::Impl {
  sj::parser parser;
  std::string buf;  // the body copied with simdjson's padding after it

  // One trade object. `where` prefixes errors ("trade 3: ").
  Status object(sj::object obj, uint64_t seq, const std::string& where, Trade& t, std::string* canonical) {
    std::string_view v[kFields];
    bool seen[kFields] = {};
    char numbuf[3][32];  // the text of amounts given as JSON numbers
    for (auto [key, val] : obj) {
      int f = field_of(key);
      if (f < 0) continue;  // unknown keys are skipped
      switch (val.type()) {
        case sj::element_type::STRING:
          v[f] = val.get_string().value_unsafe();
          break;
        case sj::element_type::INT64:
        case sj::element_type::UINT64:
        case sj::element_type::DOUBLE: {
          if (f != kNative && f != kTokenAmount && f != kPrice) return bad(where + std::string(kNames[f]) + " must be a string");
          double d = val.get_double().value_unsafe();
          char* b = numbuf[f - kNative];
          auto [end, ec] = std::to_chars(b, b + sizeof numbuf[0], d);
          v[f] = std::string_view(b, static_cast<size_t>(end - b));
          break;
        }
        case sj::element_type::NULL_VALUE:
          v[f] = {};
          break;
        default:
          return bad(where + std::string(kNames[f]) + " must be a string");
      }
      seen[f] = true;
    }
    for (int f = 0; f < kFields; ++f) {
      if (!seen[f]) return bad(where + std::string(kNames[f]) + " is missing");
      if (v[f].empty()) return bad(where + std::string(kNames[f]) + " is empty");
    }
    if (v[kToken].size() > kMaxTokenLength)
      return bad(where + "Token is longer than " + std::to_string(kMaxTokenLength) + " characters");
    // A token becomes a Redis key, a NATS subject and a line on an operator's terminal (trades
    // top), where an escape sequence would act, not show.
    if (core::has_control(v[kToken]))
      return bad(where + "Token must not hold control characters, got " + quoted(v[kToken]));
    std::string_view sb = v[kSellBuy];
    auto is = [&](std::string_view w) {
      if (sb.size() != w.size()) return false;
      for (size_t i = 0; i < w.size(); ++i)
        if ((sb[i] | 0x20) != w[i]) return false;
      return true;
    };
    if (is("buy")) t.sell = false;
    else if (is("sell")) t.sell = true;
    else return bad(where + "SellBuy must be buy or sell, got " + quoted(sb));
    double* nums[3] = {&t.native_amount, &t.token_amount, &t.price_usd};
    for (int i = 0; i < 3; ++i) {
      auto d = decimal(v[kNative + i]);
      if (!d) return bad(where + std::string(kNames[kNative + i]) + " must be a non-negative decimal, got " + quoted(v[kNative + i]));
      *nums[i] = *d;
    }
    auto when = core::parse_rfc3339(v[kTime]);
    if (!when) return bad(where + "TransTime must be an RFC 3339 time, got " + quoted(v[kTime]));
    t.t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(when->time_since_epoch()).count();
    t.set_token(v[kToken]);
    t.tx_fp = fingerprint(v[kTxHash]);
    t.seq = seq;
    if (canonical) {
      canonical->clear();
      core::json::Writer w(*canonical);
      w.object();
      for (int f = 0; f < kFields; ++f) w.field(kNames[f], f == kSellBuy ? std::string_view(t.sell ? "sell" : "buy") : v[f]);
      w.end();
    }
    return {};
  }

  static Status bad(std::string m) { return core::invalid_argument(std::move(m)); }

  Status parse(std::string_view body, uint64_t seq, std::vector<Trade>& out, std::vector<std::string>* canonical) {
    buf.assign(body);
    buf.resize(body.size() + simdjson::SIMDJSON_PADDING, '\0');
    sj::element root;
    // The whole document is validated here, trailing content included.
    if (parser.parse(buf.data(), body.size(), false).get(root)) return bad("invalid JSON");
    size_t first = out.size(), first_canonical = canonical ? canonical->size() : 0;
    auto undo = [&](Status s) {
      out.resize(first);
      if (canonical) canonical->resize(first_canonical);
      return s;
    };
    std::string c;
    sj::object obj;
    sj::array arr;
    if (!root.get_object().get(obj)) {
      out.emplace_back();
      Status s = object(obj, seq, "", out.back(), canonical ? &c : nullptr);
      if (!s.is_ok()) return undo(std::move(s));
      if (canonical) canonical->push_back(std::move(c));
    } else if (!root.get_array().get(arr)) {
      size_t i = 0;
      for (sj::element elem : arr) {
        std::string where = "trade " + std::to_string(i) + ": ";
        if (elem.get_object().get(obj)) return undo(bad(where + "not a JSON object"));
        out.emplace_back();
        Status s = object(obj, seq + i, where, out.back(), canonical ? &c : nullptr);
        if (!s.is_ok()) return undo(std::move(s));
        if (canonical) canonical->push_back(std::move(c));
        ++i;
      }
      if (i == 0) return bad("no trades: the array is empty");
    } else {
      return bad("a trade object or an array of them is expected");
    }
    return {};
  }
};

Parser::Parser() : impl_(new Impl) {}
Parser::~Parser() { delete impl_; }

Status Parser::parse(std::string_view body, uint64_t seq, std::vector<Trade>& out, std::vector<std::string>* canonical) {
  return impl_->parse(body, seq, out, canonical);
}

Status parse_trades(std::string_view body, uint64_t seq, std::vector<Trade>& out, std::vector<std::string>* canonical) {
  thread_local Parser p;
  return p.parse(body, seq, out, canonical);
}

}  // namespace gantry::trades
