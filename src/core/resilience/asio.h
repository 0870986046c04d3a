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
    if (b.out_of_time()) {
      Status s(Code::kDeadlineExceeded, "no time left for attempt " + std::to_string(b.attempts() + 1), o.operation);
      detail::note_give_up(p.name, o.operation, b.attempts(), s);
      co_return R(std::move(s));
    }
    R r = co_await fn(b.current());
    if (detail::ok_of(r)) co_return r;
    Status failure = detail::status_of(r);
    Result<Duration> wait = b.next(failure);
    if (!wait.is_ok()) {
      detail::note_give_up(p.name, o.operation, b.attempts(), wait.status());
      if (wait.status().code() == failure.code() && wait.status().message() == failure.message()) co_return r;
      co_return R(wait.status());
    }
    detail::note_retry(p.name, o.operation, b.attempts(), *wait, failure);
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                std::chrono::duration_cast<std::chrono::steady_clock::duration>(*wait));
    co_await t.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace gantry::core::resilience
