#include "core/resilience/asio.h"

#include <future>
#include <stdexcept>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/resilience/circuit_breaker.h"
#include "core/resilience/idempotency.h"
#include "core/resilience/parallel.h"

namespace gantry::core::resilience {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

RetryPolicy fast() {
  RetryPolicy p = RetryPolicy::standard();
  p.base_delay = std::chrono::milliseconds(1);
  p.jitter = 0;
  return p;
}

TEST(CoRetry, RetriesACoroutineUntilItSucceeds) {
  asio::io_context ioc;
  int calls = 0;
  std::optional<Result<int>> out;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        out = co_await co_retry(fast(), [&](const Attempt& a) -> asio::awaitable<Result<int>> {
          ++calls;
          EXPECT_EQ(a.number, calls);
          if (calls < 3) co_return Status(Code::kUnavailable, "refused");
          co_return 99;
        });
      },
      asio::detached);
  ioc.run();
  ASSERT_TRUE(out && out->is_ok());
  EXPECT_EQ(**out, 99);
  EXPECT_EQ(calls, 3);
}

TEST(CoRetry, GivesUpOnNonRetryableAndThroughABreaker) {
  asio::io_context ioc;
  ManualClock clock;
  CircuitBreaker breaker("co", {2, 10s, 1, 0}, clock);
  int calls = 0;
  std::optional<Status> first, second;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto op = [&](const Attempt&) -> asio::awaitable<Status> {
          // The breaker's admission never blocks, so it sits inside a coroutine as is.
          co_return breaker.call([&] { ++calls; return unavailable("down"); });
        };
        first = co_await co_retry(fast(), op);  // 2 failures open the breaker; then kCircuitOpen stops retrying
        second = co_await co_retry(fast(), [&](const Attempt&) -> asio::awaitable<Status> {
          co_return invalid_argument("bad");
        });
      },
      asio::detached);
  ioc.run();
  EXPECT_EQ(calls, 2);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->code(), Code::kCircuitOpen);
  EXPECT_EQ(second->code(), Code::kInvalidArgument);
}

TEST(CoOffload, BlockingManagersRunWithoutBlockingTheIoContext) {
  asio::io_context ioc;  // one thread: if the parallel run blocked it, no tick could happen
  std::atomic<int> ticks{0};
  std::atomic<bool> done{false};
  ThreadPool pool(2, "co");
  std::optional<Result<ParallelReport>> rep;
  std::optional<Result<int>> joined;
  IdempotencyStore<int> store({"co-offload"});
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        while (!done) {
          asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
          co_await t.async_wait(asio::use_awaitable);
          ++ticks;
        }
      },
      asio::detached);
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        ParallelManager pm({"co", 2, 10min});
        std::vector<Operation> ops;
        for (int i = 0; i < 6; ++i)
          ops.push_back({"op", [](const OpContext&) {
                           std::this_thread::sleep_for(20ms);
                           return Status();
                         }});
        int before = ticks.load();
        // A pool of the test's own, joined before the test ends (the SHA-256 of the idempotency
        // key leaves OpenSSL state on the thread that computed it).
        rep = co_await co_offload(pool, [&] { return pm.run(std::move(ops)); });
        EXPECT_GT(ticks.load() - before, 5);  // the io_context kept serving while it ran
        joined = co_await co_offload(pool, [&] { return store.run(idempotency_key("op", "1"), []() -> Result<int> { return 7; }); });
        done = true;
      },
      asio::detached);
  ioc.run();
  ASSERT_TRUE(rep && rep->is_ok());
  EXPECT_EQ((*rep)->succeeded, 6);
  ASSERT_TRUE(joined && joined->is_ok());
  EXPECT_EQ(**joined, 7);
}

// A throwing function used to end the process (the helper thread's exception escaped); a
// thread per call made the number of threads unbounded.
TEST(CoOffload, ThrowsAndRefusalsAreValues) {
  asio::io_context ioc;
  ThreadPool pool(1, "co", 1);
  std::optional<Status> threw, refused;
  std::optional<Result<int>> ran;
  std::promise<void> release;
  std::shared_future<void> go = release.get_future().share();
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        threw = co_await co_offload(pool, []() -> Status { throw std::runtime_error("disk on fire"); });
        // Hold the pool's only thread, fill its one-job queue, then ask for a third.
        EXPECT_TRUE(pool.post([go] { go.wait(); }));
        while (pool.queued() != 0) std::this_thread::sleep_for(1ms);
        EXPECT_TRUE(pool.post([] {}));
        refused = co_await co_offload(pool, [] { return Status(); });
        release.set_value();
        while (pool.queued() != 0) std::this_thread::sleep_for(1ms);
        ran = co_await co_offload(pool, [] { return 5; });
      },
      asio::detached);
  ioc.run();
  ASSERT_TRUE(threw && refused && ran);
  EXPECT_EQ(threw->code(), Code::kInternal);
  EXPECT_NE(threw->to_string().find("disk on fire"), std::string::npos) << threw->to_string();
  EXPECT_EQ(refused->code(), Code::kUnavailable);
  ASSERT_TRUE(ran->is_ok());
  EXPECT_EQ(**ran, 5);
}

}  // namespace
}  // namespace gantry::core::resilience
