// The resilience toolkit from Asio coroutines.
//
// co_retry is retry() for an operation that is itself a coroutine; its waits are timers on
// the coroutine's executor, so a backing-off operation holds no thread. The breaker, the rate
// limiter and an idempotency hit never block and are called from coroutines directly; an
// idempotency *join* (a second caller of a running key) blocks its thread, so coroutines
// should run idempotent operations on a thread pool or key them so they do not overlap.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/resilience/retry.h"

namespace gantry::core::resilience {

// fn(const Attempt&) returns boost::asio::awaitable<Status> or awaitable<Result<T>>.
template <class F>
auto co_retry(const RetryPolicy& p, F fn, RetryOptions o = {})
    -> decltype(fn(std::declval<const Attempt&>())) {
  using R = typename decltype(fn(std::declval<const Attempt&>()))::value_type;
  Backoff b(p, *o.clock, *o.random, o.parent, o.retryable ? &o.retryable : nullptr);
  for (;;) {
    if (b.out_of_time()) co_return R(detail::out_of_time(b, p, o));
    R r = co_await fn(b.current());
    if (detail::ok_of(r)) co_return r;
    detail::Step step = detail::after_failure(b, p, o, detail::status_of(r));
    if (step.give_up) co_return step.return_failure ? r : R(std::move(step.status));
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                std::chrono::duration_cast<std::chrono::steady_clock::duration>(step.wait));
    co_await t.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace gantry::core::resilience
