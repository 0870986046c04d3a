#include "trades/tools/top.h"

#include <gtest/gtest.h>

namespace gantry::trades {
namespace {

const TopView kView{.stamp = "2026-12-05T10:00:00Z", .url = "http://t", .window = "1min", .limit = 10};

TEST(TopScreen, ATokensFiguresInItsWindowAndNothingThatActsOnATerminal) {
  std::string body =
      R"({"tokens":[{"token":"So1\u001b[2J\u007fx","aggregates":{"1min":{"total_volume":12.5,"total_trades":3,"close_price":0.25,"price_change":-1.5}}},)"
      R"({"token":"NoWindow","aggregates":{"5min":{"total_volume":1}}}]})";
  std::string s = top_screen(body, kView);
  EXPECT_NE(s.find("top 10 tokens by 1min volume (http://t)"), std::string::npos) << s;
  EXPECT_NE(s.find("1   So1?[2J?x"), std::string::npos) << s;
  EXPECT_NE(s.find("12.500"), std::string::npos) << s;
  EXPECT_NE(s.find("-1.50%"), std::string::npos) << s;
  EXPECT_EQ(s.find("NoWindow"), std::string::npos) << s;
  for (char c : s) EXPECT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20) << static_cast<int>(c);
}

TEST(TopScreen, ALongTokenIsCutToItsColumnAndItsLineKeepsTheFigures) {
  std::string body = R"({"tokens":[{"token":")" + std::string(300, 'A') +
                     R"(","aggregates":{"1min":{"total_volume":7,"total_trades":1,"close_price":1,"price_change":0}}}]})";
  std::string s = top_screen(body, kView);
  EXPECT_NE(s.find("1   " + std::string(45, 'A') + "…"), std::string::npos) << s;
  EXPECT_EQ(s.find(std::string(46, 'A')), std::string::npos) << s;
  EXPECT_NE(s.find("7.000"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '\n');
}

TEST(TopScreen, AnAnswerThatIsNotTheExpectedJsonIsSaidSo) {
  EXPECT_EQ(top_screen("<html>", kView), "2026-12-05T10:00:00Z  unreadable answer\n");
  EXPECT_NE(top_screen(R"({"tokens":[]})", kView).find("(no token has traded in the last 1min)"), std::string::npos);
}

}  // namespace
}  // namespace gantry::trades
