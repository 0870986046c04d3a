// The sharded engine against one TokenWindows per token fed in stream order: whichever shard
// parses a message, every token ends with the same statistics.
#include "trades/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/json.h"

namespace gantry::trades {
namespace {

std::string wire(const std::string& token, uint64_t i, double price, bool sell, int64_t t_s) {
  std::string b;
  core::json::Writer(b).object().field("Token", token).field("Wallet", "w").field("SellBuy", sell ? "sell" : "buy")
      .field("NativeAmount", std::to_string(i % 17) + ".5").field("TokenAmount", "10").field("PriceUsd", std::to_string(price))
      .field("TransTime", core::rfc3339_nano(core::WallTime(std::chrono::seconds(t_s)))).field("TxHash", "tx" + std::to_string(i))
      .end();
  return b;
}

TEST(Engine, ShardedEqualsSequentialPerToken) {
  core::ManualClock clock(core::WallTime(std::chrono::seconds(1'700'000'000)));
  std::mutex mu;
  std::map<std::string, TokenUpdate> last;
  EngineOptions o;
  o.shards = 3;
  o.clock = &clock;
  o.flush_interval = std::chrono::milliseconds(5);
  Engine e(o, [&](std::vector<TokenUpdate>&& us) {
    std::lock_guard lk(mu);
    for (auto& u : us) last[u.token] = u;
  });
  e.start();

  std::map<std::string, std::unique_ptr<TokenWindows>> seq_state;
  std::mt19937_64 rng(3);
  uint64_t i = 0;
  std::vector<std::string> bodies;
  for (int second = 0; second < 30; ++second) {
    int64_t t_s = 1'700'000'000 + second;
    RawBatch b;
    std::vector<std::string> held;
    for (int k = 0; k < 200; ++k, ++i) {
      std::string token = "T" + std::to_string(rng() % 7);
      double price = 1 + static_cast<double>(rng() % 100) / 10;
      bool sell = rng() & 1;
      uint64_t n = (rng() % 10 == 0 && i > 0) ? i - 1 : i;  // some resent TxHashes
      held.push_back(wire(token, n, price, sell, t_s - static_cast<int64_t>(rng() % 3)));
      auto& tw = seq_state[token];
      if (!tw) tw = std::make_unique<TokenWindows>(TokenWindows::Options{.windows = &e.windows()});
      std::vector<Trade> one;
      ASSERT_TRUE(parse_trades(held.back(), i + 1, one).is_ok());
      tw->add(one[0], std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall_now().time_since_epoch()).count());
    }
    auto owner = std::make_shared<std::vector<std::string>>(std::move(held));
    for (size_t k = 0; k < owner->size(); ++k) {
      b.data.push_back((*owner)[k]);
      b.seq.push_back(i - owner->size() + k + 1);
    }
    b.owner = owner;
    ASSERT_TRUE(e.submit_raw(std::move(b)));
    e.wait_idle();
    clock.advance(std::chrono::seconds(1));
  }
  e.stop();  // the last reports
  EngineStats st = e.stats();
  EXPECT_GT(st.duplicates, 0u);
  EXPECT_EQ(st.invalid, 0u);
  ASSERT_EQ(last.size(), seq_state.size());
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall_now().time_since_epoch()).count();
  for (auto& [token, tw] : seq_state) {
    tw->advance(now);  // where the engine's final flush (in stop) read the clock
    const TokenUpdate& u = last.at(token);
    for (size_t w = 0; w < e.windows().size(); ++w) {
      Aggregate want = tw->aggregate(w), got = u.windows[w];
      EXPECT_EQ(got.total_trades, want.total_trades) << token << " " << w;
      EXPECT_EQ(got.open_price, want.open_price) << token << " " << w;
      EXPECT_EQ(got.close_price, want.close_price) << token << " " << w;
      EXPECT_EQ(got.high, want.high) << token << " " << w;
      EXPECT_EQ(got.low, want.low) << token << " " << w;
      EXPECT_NEAR(got.total_volume, want.total_volume, 1e-9 * std::max(1.0, want.total_volume)) << token << " " << w;
    }
  }
}

// MAX_TOKEN_PROCESSORS with shards flushing at once: every token over the limit is evicted
// exactly once (two shards must not both take the same excess and leave fewer than the limit).
TEST(Engine, TokensOverTheLimitAreEvictedExactlyOnceWhateverTheShards) {
  for (int round = 0; round < 20; ++round) {
    core::ManualClock clock(core::WallTime(std::chrono::seconds(1'700'000'000)));
    EngineOptions o;
    o.shards = 4;
    o.max_tokens = 5;
    o.clock = &clock;
    o.flush_interval = std::chrono::milliseconds(1);
    Engine e(o, nullptr);
    e.start();
    auto owner = std::make_shared<std::vector<std::string>>();
    for (int i = 0; i < 200; ++i) owner->push_back(wire("T" + std::to_string(round) + "-" + std::to_string(i), i, 1, false, 1'700'000'000));
    RawBatch b;
    for (size_t k = 0; k < owner->size(); ++k) {
      b.data.push_back((*owner)[k]);
      b.seq.push_back(k + 1);
    }
    b.owner = owner;
    ASSERT_TRUE(e.submit_raw(std::move(b)));
    e.wait_idle();
    EngineStats st;
    for (int i = 0; i < 500; ++i) {  // the shards' flushes settle any excess within a few ms
      st = e.stats();
      if (st.evicted_limit >= 195) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a few more flushes: nothing more goes
    st = e.stats();
    e.stop();
    ASSERT_EQ(st.applied, 200u) << round;
    ASSERT_EQ(st.evicted_limit, 195u) << round;
    ASSERT_EQ(st.tokens, 5u) << round;
  }
}

TEST(Engine, InvalidMessagesAreCountedAndReported) {
  std::vector<std::string> why;
  std::mutex mu;
  Engine e({}, nullptr, [&](std::string_view, const core::Status& s) {
    std::lock_guard lk(mu);
    why.emplace_back(s.message());
  });
  e.start();
  auto owner = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"{", wire("A", 1, 1, true, 1'700'000'000)});
  RawBatch b;
  for (auto& s : *owner) b.data.push_back(s);
  b.owner = owner;
  e.submit_raw(std::move(b));
  e.wait_idle();
  e.stop();
  EXPECT_EQ(e.stats().invalid, 1u);
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "invalid JSON");
}

}  // namespace
}  // namespace gantry::trades
