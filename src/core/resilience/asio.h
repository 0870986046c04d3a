// The resilience toolkit from Asio coroutines.
//
// co_retry is retry() for an operation that is itself a coroutine; its waits are timers on
// the coroutine's executor, so a backing-off operation holds no thread. The breaker, the rate
// limiter and an idempotency hit never block and are called from coroutines directly. What
// does block - ParallelManager::run, run_batches, an idempotency store run that may join a
// running key - goes through co_offload, which runs it on a helper thread and resumes the
// coroutine on its own executor with the result:
//
//   ParallelReport rep = co_await co_offload([&] { return manager.run(std::move(ops)); });
#pragma once

#include <future>
#include <memory>
#include <thread>
#include <type_traits>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
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

// Runs fn() on a new thread and completes with its result on the awaiting coroutine's
// executor; the executor's io_context keeps running meanwhile (a work guard keeps run() from
// returning early). The io_context must outlive the call.
template <class F>
auto co_offload(F fn) -> boost::asio::awaitable<std::invoke_result_t<F&>> {
  using T = std::invoke_result_t<F&>;
  auto ex = co_await boost::asio::this_coro::executor;
  co_return co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(T)>(
      [ex, fn = std::move(fn)](auto handler) mutable {
        // The completion joins the helper before resuming the coroutine, so the thread has
        // fully exited - its thread-local state (OpenSSL's, for one) freed - by then; a
        // detached helper could still be exiting when the process does, which LeakSanitizer
        // reports as a leak. `started` orders the join after the thread object is assigned.
        auto helper = std::shared_ptr<std::thread>(new std::thread(), [](std::thread* t) {
          // Dropped without the completion running (its io_context went away): never leave a
          // joinable std::thread to terminate the process.
          if (t->joinable()) {
            if (t->get_id() == std::this_thread::get_id()) {
              t->detach();
            } else {
              t->join();
            }
          }
          delete t;
        });
        auto started = std::make_shared<std::promise<void>>();
        std::shared_future<void> go = started->get_future().share();
        *helper = std::thread([ex, fn = std::move(fn), handler = std::move(handler), helper, go,
                               guard = boost::asio::make_work_guard(ex)]() mutable {
          go.wait();
          T result = fn();
          boost::asio::post(ex, [handler = std::move(handler), result = std::move(result), helper]() mutable {
            helper->join();
            std::move(handler)(std::move(result));
          });
        });
        started->set_value();
      },
      boost::asio::use_awaitable);
}

}  // namespace gantry::core::resilience
