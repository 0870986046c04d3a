// TokenWindows against a brute force that keeps every trade and recomputes each window from
// scratch, over random trade sequences and clock advances (time is injected: `now` is passed).
#include "trades/windows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace gantry::trades {
namespace {

struct Kept {
  Trade t;
  int64_t bucket;
};

int64_t floor_to(int64_t t, int64_t res) { return (t >= 0 ? t / res : (t - res + 1) / res) * res; }

// Every statistic of one window from the trades themselves.
Aggregate brute(const std::vector<Kept>& kept, int64_t now, int64_t w) {
  std::vector<const Kept*> in;
  for (auto& k : kept)
    if (k.bucket >= now - w) in.push_back(&k);
  Aggregate a;
  if (in.empty()) return a;
  std::sort(in.begin(), in.end(), [](auto* x, auto* y) {
    return x->bucket != y->bucket ? x->bucket < y->bucket : x->t.seq < y->t.seq;
  });
  double tok = 0;
  a.high = in[0]->t.price_usd;
  a.low = in[0]->t.price_usd;
  for (auto* k : in) {
    const Trade& t = k->t;
    (t.sell ? a.sell_count : a.buy_count)++;
    (t.sell ? a.sell_volume : a.buy_volume) += t.native_amount;
    a.volume_usd += t.token_amount * t.price_usd;
    tok += t.token_amount;
    a.high = std::max(a.high, t.price_usd);
    a.low = std::min(a.low, t.price_usd);
  }
  a.total_trades = a.sell_count + a.buy_count;
  a.total_volume = a.sell_volume + a.buy_volume;
  a.open_price = in.front()->t.price_usd;
  a.close_price = in.back()->t.price_usd;
  a.vwap = tok > 0 ? a.volume_usd / tok : 0;
  a.price_change = a.open_price > 0 ? (a.close_price - a.open_price) / a.open_price * 100 : 0;
  return a;
}

void near(double got, double want, const char* what, const std::string& ctx) {
  double tol = 1e-9 * std::max(1.0, std::abs(want));
  EXPECT_NEAR(got, want, tol) << what << " " << ctx;
}

void expect_equal(const Aggregate& got, const Aggregate& want, const std::string& ctx) {
  EXPECT_EQ(got.sell_count, want.sell_count) << ctx;
  EXPECT_EQ(got.buy_count, want.buy_count) << ctx;
  EXPECT_EQ(got.total_trades, want.total_trades) << ctx;
  near(got.sell_volume, want.sell_volume, "sell_volume", ctx);
  near(got.buy_volume, want.buy_volume, "buy_volume", ctx);
  near(got.total_volume, want.total_volume, "total_volume", ctx);
  near(got.volume_usd, want.volume_usd, "volume_usd", ctx);
  EXPECT_EQ(got.open_price, want.open_price) << "open " << ctx;
  EXPECT_EQ(got.close_price, want.close_price) << "close " << ctx;
  EXPECT_EQ(got.high, want.high) << "high " << ctx;
  EXPECT_EQ(got.low, want.low) << "low " << ctx;
  near(got.vwap, want.vwap, "vwap", ctx);
  near(got.price_change, want.price_change, "price_change", ctx);
}

Trade make(int64_t t_ms, uint64_t seq, double price, bool sell, double native = 1, double tokens = 10,
           uint64_t fp = 0) {
  Trade t;
  t.t_ms = t_ms;
  t.seq = seq;
  t.tx_fp = fp ? fp : seq * 7919 + 1;
  t.price_usd = price;
  t.sell = sell;
  t.native_amount = native;
  t.token_amount = tokens;
  t.set_token("So11111111111111111111111111111111111111112");
  return t;
}

class Random : public ::testing::TestWithParam<int> {};

TEST_P(Random, EveryWindowEqualsTheBruteForce) {
  std::mt19937_64 rng(static_cast<uint64_t>(GetParam()));
  auto windows = *parse_windows(GetParam() % 2 ? "10s,1min,5min" : default_windows());
  const int64_t res = GetParam() % 3 == 0 ? 1 : 1000;  // ms buckets, or whole seconds
  TokenWindows tw({.windows = &windows, .resolution_ms = res, .dedup = true});
  std::vector<Kept> kept;
  int64_t now = 1'700'000'000'000;
  double price = 1.0;
  uint64_t seq = 0;
  std::uniform_real_distribution<double> u(0, 1);
  int applied = 0, dups = 0, old = 0;
  for (int step = 0; step < 4000; ++step) {
    double r = u(rng);
    if (r < 0.15) {
      // The clock moves: mostly a little, sometimes past whole windows.
      now += u(rng) < 0.9 ? static_cast<int64_t>(u(rng) * 3000) : static_cast<int64_t>(u(rng) * 400'000);
      tw.advance(now);
    } else if (r < 0.2 && !kept.empty()) {
      // A duplicate: the same TxHash again (a redelivery).
      const Kept& k = kept[static_cast<size_t>(u(rng) * static_cast<double>(kept.size()))];
      Trade t = k.t;
      t.seq = ++seq;
      auto got = tw.add(t, now);
      if (got == TokenWindows::Added::kDuplicate) ++dups;
      EXPECT_NE(got, TokenWindows::Added::kApplied) << "a duplicate was applied at step " << step;
    } else {
      price = std::max(1e-9, price * (1 + (u(rng) - 0.5) * 0.1));
      int64_t t_ms = now;
      double late = u(rng);
      if (late < 0.1) t_ms -= static_cast<int64_t>(u(rng) * 120'000);         // out of order
      else if (late < 0.12) t_ms -= static_cast<int64_t>(u(rng) * 7'200'000);  // maybe too old
      if (res == 1000 && u(rng) < 0.7) t_ms = floor_to(t_ms, 1000);             // whole seconds, like the wire
      // Round prices to a few digits so equal highs happen too.
      double p = std::round(price * 1000) / 1000 + 0.001;
      Trade t = make(t_ms, ++seq, p, u(rng) < 0.5, std::round(u(rng) * 1e6) / 1e3, std::round(u(rng) * 1e4) / 10);
      auto got = tw.add(t, now);
      int64_t bucket = floor_to(t_ms, res);
      if (bucket < now - windows.back().ms) {
        EXPECT_EQ(got, TokenWindows::Added::kTooOld);
        ++old;
      } else {
        EXPECT_EQ(got, TokenWindows::Added::kApplied);
        kept.push_back({t, bucket});
        ++applied;
      }
    }
    if (step % 7 == 0 || step > 3900) {
      for (size_t w = 0; w < windows.size(); ++w)
        expect_equal(tw.aggregate(w), brute(kept, now, windows[w].ms),
                     "step " + std::to_string(step) + " window " + windows[w].name);
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(applied, 1000);
  EXPECT_GT(dups, 10);
  EXPECT_GT(old, 5);
}

INSTANTIATE_TEST_SUITE_P(Seeds, Random, ::testing::Range(1, 7));

TEST(TokenWindows, OpenMovesToTheNextOldestWhenTheOldestExpires) {
  auto windows = *parse_windows("1min");
  TokenWindows tw({.windows = &windows});
  int64_t t0 = 1'700'000'000'000;
  ASSERT_EQ(tw.add(make(t0, 1, 10.0, false), t0), TokenWindows::Added::kApplied);
  ASSERT_EQ(tw.add(make(t0 + 30'000, 2, 12.0, true), t0 + 30'000), TokenWindows::Added::kApplied);
  ASSERT_EQ(tw.add(make(t0 + 40'000, 3, 11.0, false), t0 + 40'000), TokenWindows::Added::kApplied);
  EXPECT_EQ(tw.aggregate(0).open_price, 10.0);
  EXPECT_EQ(tw.aggregate(0).high, 12.0);
  EXPECT_EQ(tw.aggregate(0).low, 10.0);
  // Exactly on the boundary the first trade is still inside (the original's IsWithinWindow) …
  tw.advance(t0 + 60'000);
  EXPECT_EQ(tw.aggregate(0).total_trades, 3);
  // … one millisecond later it has left: open moves to the next oldest, low with it.
  EXPECT_TRUE(tw.advance(t0 + 60'001));
  Aggregate a = tw.aggregate(0);
  EXPECT_EQ(a.total_trades, 2);
  EXPECT_EQ(a.open_price, 12.0);
  EXPECT_EQ(a.low, 11.0);
  EXPECT_DOUBLE_EQ(a.price_change, (11.0 - 12.0) / 12.0 * 100);
  // The high leaves with its trade.
  tw.advance(t0 + 90'001);
  a = tw.aggregate(0);
  EXPECT_EQ(a.total_trades, 1);
  EXPECT_EQ(a.high, 11.0);
  // Empty: every statistic zero, and the token's memory handed back.
  EXPECT_TRUE(tw.advance(t0 + 100'001));
  a = tw.aggregate(0);
  EXPECT_EQ(a.total_trades, 0);
  EXPECT_EQ(a.sell_volume, 0.0);
  EXPECT_EQ(a.open_price, 0.0);
  EXPECT_EQ(a.high, 0.0);
  EXPECT_TRUE(tw.empty());
}

TEST(TokenWindows, DuplicateTxHashIgnoredWithinTheLongestWindowOnly) {
  auto windows = *parse_windows("1min,5min");
  TokenWindows tw({.windows = &windows});
  int64_t t0 = 1'700'000'000'000;
  EXPECT_EQ(tw.add(make(t0, 1, 1.0, false, 1, 1, 42), t0), TokenWindows::Added::kApplied);
  EXPECT_EQ(tw.add(make(t0, 2, 1.0, false, 1, 1, 42), t0 + 1000), TokenWindows::Added::kDuplicate);
  EXPECT_EQ(tw.aggregate(1).total_trades, 1);
  // Once it left the longest window the same TxHash is a new trade (with a new time).
  EXPECT_EQ(tw.add(make(t0 + 301'000, 3, 1.0, false, 1, 1, 42), t0 + 301'000), TokenWindows::Added::kApplied);
}

TEST(TokenWindows, TooOldIsRefusedAndFutureIsHeldUpToMaxFuture) {
  auto windows = *parse_windows("1min");
  TokenWindows tw({.windows = &windows});
  int64_t now = 1'700'000'000'000;
  EXPECT_EQ(tw.add(make(now - 60'001, 1, 1.0, false), now), TokenWindows::Added::kTooOld);
  EXPECT_EQ(tw.add(make(now + 5'000, 2, 1.0, false), now), TokenWindows::Added::kApplied);
  EXPECT_EQ(tw.add(make(now + 60'000, 3, 2.0, false), now), TokenWindows::Added::kApplied);  // the default 60 s
  // Beyond it (a wrong year, say) it would be every window's close until the clock got there.
  EXPECT_EQ(tw.add(make(now + 60'001, 4, 9.0, false), now), TokenWindows::Added::kTooNew);
  EXPECT_EQ(tw.aggregate(0).total_trades, 2);
  EXPECT_EQ(tw.aggregate(0).close_price, 2.0);

  TokenWindows strict({.windows = &windows, .max_future_ms = 0});
  EXPECT_EQ(strict.add(make(now, 1, 1.0, false), now), TokenWindows::Added::kApplied);
  EXPECT_EQ(strict.add(make(now + 1, 2, 1.0, false), now), TokenWindows::Added::kTooNew);
}

TEST(TokenWindows, MemoryStaysBoundedByTheLongestWindow) {
  auto windows = *parse_windows("1min");
  TokenWindows tw({.windows = &windows});
  int64_t now = 1'700'000'000'000;
  for (int i = 0; i < 100'000; ++i) {
    now += 10;  // 100 trades/s
    tw.add(make(now, static_cast<uint64_t>(i + 1), 1.0 + (i % 7), i % 2 == 0), now);
  }
  // 1 s buckets: 60 (+1) held, whatever the trade count; the seen set holds one minute's.
  EXPECT_LE(tw.buckets(), 61u);
  EXPECT_LT(tw.memory_bytes(), 61 * 200 + 6001 * 40 + 4096);
}

TEST(ParseWindows, NamesAndDurations) {
  auto w = parse_windows("1hour, 1min,5min,90s");
  ASSERT_TRUE(w.is_ok());
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0].name, "1min");
  EXPECT_EQ((*w)[1].ms, 90'000);
  EXPECT_EQ((*w)[3].ms, 3'600'000);
  EXPECT_EQ(parse_windows(default_windows())->size(), 5u);
  // Each message follows the value in a configuration error, naming the entry at fault.
  std::pair<const char*, const char*> bad[] = {{"", "has an empty entry"},
                                               {"1min,", "has an empty entry"},
                                               {"5 parsecs", "has \"5 parsecs\", not a window (1min, 5min"},
                                               {"0s", "has \"0s\", not a window"},
                                               {"25h", "has \"25h\", longer than 24 h"},
                                               {"1min,60s", "has \"60s\", the same as 1min"},
                                               {"-5m", "has \"-5m\", not a window"}};
  for (auto [text, message] : bad) {
    auto r = parse_windows(text);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_EQ(r.status().message().rfind(message, 0), 0u) << text << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace gantry::trades
