#include "trades/trade.h"

#include <gtest/gtest.h>

namespace gantry::trades {
namespace {

const char* kWire =
    R"({"Token":"So1aaa","Wallet":"W1","SellBuy":"sell","NativeAmount":"1.5","TokenAmount":"200",)"
    R"("PriceUsd":"0.000012","TransTime":"2026-12-02T10:00:00Z","TxHash":"tx1"})";

TEST(ParseTrades, TheOriginalsWireFormat) {
  std::vector<Trade> out;
  ASSERT_TRUE(parse_trades(kWire, 7, out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  const Trade& t = out[0];
  EXPECT_EQ(t.token(), "So1aaa");
  EXPECT_TRUE(t.sell);
  EXPECT_EQ(t.native_amount, 1.5);
  EXPECT_EQ(t.token_amount, 200);
  EXPECT_EQ(t.price_usd, 0.000012);
  EXPECT_EQ(t.t_ms, 1'796'205'600'000);
  EXPECT_EQ(t.seq, 7u);
  EXPECT_EQ(t.tx_fp, fingerprint("tx1"));
}

TEST(ParseTrades, SnakeCaseAnyCaseAndNumbers) {
  std::vector<Trade> out;
  auto s = parse_trades(R"([{"token":"A","wallet":"w","sell_buy":"BUY","native_amount":2,"token_amount":"3",)"
                        R"("price_usd":4.25,"trans_time":"2026-12-02T10:00:00.250+01:00","tx_hash":"h","extra":{"x":[1]}},)"
                        R"({"TOKEN":"B","WALLET":"w","SELLBUY":"sell","NATIVEAMOUNT":"0","TOKENAMOUNT":"1e3",)"
                        R"("PRICEUSD":"5","TRANSTIME":"2026-12-02T10:00:01Z","TXHASH":"h2"}])",
                        100, out);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[0].sell);
  EXPECT_EQ(out[0].native_amount, 2);
  EXPECT_EQ(out[0].price_usd, 4.25);
  EXPECT_EQ(out[0].t_ms, 1'796'205'600'000 - 3'600'000 + 250);
  EXPECT_EQ(out[0].seq, 100u);
  EXPECT_EQ(out[1].token(), "B");
  EXPECT_EQ(out[1].token_amount, 1000);
  EXPECT_EQ(out[1].seq, 101u);
}

TEST(ParseTrades, EachProblemNamesItsFieldAndNothingIsAppended) {
  auto with = [](std::string key, std::string value) {
    std::string body = kWire;
    size_t k = body.find("\"" + key + "\":");
    size_t v = body.find('"', k + key.size() + 3);
    size_t end = body.find('"', v + 1);
    return body.substr(0, k + key.size() + 3) + value + body.substr(end + 1);
  };
  struct Case {
    std::string body, needle;
  } cases[] = {
      {with("Token", "\"\""), "Token is empty"},
      {with("Wallet", "null"), "Wallet is empty"},
      {with("SellBuy", "\"hold\""), "SellBuy must be buy or sell, got \"hold\""},
      {with("NativeAmount", "\"-1\""), "NativeAmount must be a non-negative decimal"},
      {with("TokenAmount", "\"abc\""), "TokenAmount must be a non-negative decimal"},
      {with("PriceUsd", "\"nan\""), "PriceUsd must be a non-negative decimal"},
      {with("PriceUsd", "-2"), "PriceUsd must be a non-negative decimal"},
      {with("TransTime", "\"yesterday\""), "TransTime must be an RFC 3339 time"},
      {with("TxHash", "5"), "TxHash must be a string"},
      {R"({"Token":"A"})", "Wallet is missing"},
      {"[]", "no trades"},
      {"[1]", "trade 0: not a JSON object"},
      {"\"x\"", "a trade object or an array"},
      {"{", "invalid JSON"},
      {std::string(kWire) + "x", "invalid JSON"},
      {"[" + std::string(kWire) + "," + with("SellBuy", "\"\"") + "]", "trade 1: SellBuy is empty"},
      {with("Token", "\"" + std::string(200, 'a') + "\""), "Token is longer than 128"},
      {with("Token", "\"ab\\u001b[2Jc\""), "Token must not hold control characters, got \"ab\\u001b[2Jc\""},
      {with("Token", "\"ab\\u007f\""), "Token must not hold control characters"},
  };
  for (auto& c : cases) {
    std::vector<Trade> out;
    auto s = parse_trades(c.body, 0, out);
    ASSERT_FALSE(s.is_ok()) << c.body;
    EXPECT_EQ(s.code(), core::Code::kInvalidArgument);
    EXPECT_NE(s.message().find(c.needle), std::string::npos) << s.message() << " / wanted: " << c.needle;
    EXPECT_TRUE(out.empty()) << c.body;
  }
}

TEST(ParseTrades, CanonicalFormReadsBackTheSame) {
  std::vector<Trade> out;
  std::vector<std::string> wire;
  ASSERT_TRUE(parse_trades(R"({"token":"A","wallet":"w","sell_buy":"Sell","native_amount":2.5,"token_amount":"3",)"
                           R"("price_usd":"4","trans_time":"2026-12-02T10:00:00Z","tx_hash":"h"})",
                           0, out, &wire)
                  .is_ok());
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_EQ(wire[0],
            R"({"Token":"A","Wallet":"w","SellBuy":"sell","NativeAmount":"2.5","TokenAmount":"3","PriceUsd":"4",)"
            R"("TransTime":"2026-12-02T10:00:00Z","TxHash":"h"})");
  std::vector<Trade> again;
  ASSERT_TRUE(parse_trades(wire[0], 0, again).is_ok());
  EXPECT_EQ(again[0].tx_fp, out[0].tx_fp);
  EXPECT_EQ(again[0].native_amount, 2.5);
}

}  // namespace
}  // namespace gantry::trades
