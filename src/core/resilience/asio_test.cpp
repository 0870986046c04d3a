#include "core/resilience/asio.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/resilience/circuit_breaker.h"

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

}  // namespace
}  // namespace gantry::core::resilience
