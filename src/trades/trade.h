// A trade as it arrives on the wire, and its parser (outside input: fuzzed by
// fuzz/trades_input.cpp).
//
// Wire format (the original's): {"Token","Wallet","SellBuy","NativeAmount","TokenAmount",
// "PriceUsd","TransTime","TxHash"}, every value a string, key names case-insensitive; the
// snake_case spelling (sell_buy, native_amount, …) is the same key (underscores are ignored
// when keys are compared), and numbers may be JSON numbers. Rules (spec trades.md): no field
// empty or missing, SellBuy is buy or sell (any case), amounts and price are non-negative
// decimals, TransTime is RFC 3339. Unknown keys are ignored, as the original's decoder did.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gantry::trades {

// Token addresses are held inline (no allocation per trade); Solana's are 32–44 characters,
// EVM's 42.
inline constexpr size_t kMaxTokenLength = 128;

struct Trade {
  int64_t t_ms = 0;          // TransTime, ms since the epoch
  uint64_t seq = 0;          // order among trades of the same second: the stream sequence
  uint64_t tx_fp = 0;        // fingerprint of TxHash (64-bit; duplicates are found by it)
  double native_amount = 0;  // the SOL side: volumes
  double token_amount = 0;
  double price_usd = 0;
  bool sell = false;
  uint8_t token_len = 0;
  char token_buf[kMaxTokenLength];

  std::string_view token() const { return {token_buf, token_len}; }
  void set_token(std::string_view t) {
    token_len = static_cast<uint8_t>(t.size());
    std::memcpy(token_buf, t.data(), t.size());
  }
};

// The fingerprint JetStream redeliveries and resent trades are recognised by: a 64-bit hash of
// the TxHash (two different hashes collide with probability ~2^-64 per pair held).
uint64_t fingerprint(std::string_view tx_hash);

// Parses a body holding one trade object or an array of them, appending to `out`. Nothing is
// appended unless every trade is valid; the error (kInvalidArgument) names the field, and for
// an array the trade's index: "trade 3: SellBuy must be buy or sell, got \"hold\"".
// `seq` numbers the trades in order (seq, seq+1, …).
// With `canonical`, each trade's canonical wire form is appended to it as well: string values
// under the original's key names, TransTime in UTC (what POST /trades puts on the stream).
core::Status parse_trades(std::string_view body, uint64_t seq, std::vector<Trade>& out,
                          std::vector<std::string>* canonical = nullptr);

// Reusable parser state (simdjson's buffers): one per thread on hot paths.
class Parser {
 public:
  Parser();
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  core::Status parse(std::string_view body, uint64_t seq, std::vector<Trade>& out,
                     std::vector<std::string>* canonical = nullptr);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace gantry::trades
