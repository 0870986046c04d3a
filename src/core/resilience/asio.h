// The resilience toolkit from Asio coroutines.
//
// co_retry is retry() for an operation that is itself a coroutine; its waits are timers on
// the coroutine's executor, so a backing-off operation holds no thread. The breaker, the rate
// limiter and an idempotency hit never block and are called from coroutines directly. What
// does block - ParallelManager::run, run_batches, an idempotency store run that may join a
// running key, a blocking C client - goes through co_offload, which runs it on a bounded
// thread pool and resumes the coroutine on its own executor with the result:
//
//   Result<ParallelReport> rep = co_await co_offload([&] { return manager.run(std::move(ops)); });
#pragma once

#include <exception>
#include <memory>
#include <utility>
#include <type_traits>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/resilience/retry.h"
#include "core/thread_pool.h"

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
    if (step.give_up) {
      if (step.return_failure) co_return r;
      co_return R(std::move(step.status));
    }
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                std::chrono::duration_cast<std::chrono::steady_clock::duration>(step.wait));
    co_await t.async_wait(boost::asio::use_awaitable);
  }
}

namespace detail {
// What co_offload completes with: fn's own Status or Result<T>, or Result<T> around any other T,
// so a refusal or an exception can be reported as a value.
template <class T>
struct Offloaded {
  using type = Result<T>;
};
template <>
struct Offloaded<Status> {
  using type = Status;
};
template <class X>
struct Offloaded<Result<X>> {
  using type = Result<X>;
};
}  // namespace detail

// Completes with the R a job produces on another thread: the one way a coroutine hands blocking
// work to threads of its own (co_offload here, store/postgres's co_run). submit(complete) hands
// the copyable `complete` to such a thread, which calls it once with the result, and returns
// true; or it returns false and the coroutine completes with `refused`. The coroutine resumes on
// its own executor, whose io_context keeps running meanwhile (a work guard keeps run() from
// returning early) and must outlive the call.
//
// submit lives on the heap and the initiation Asio passes through a coroutine of its own carries
// only a pointer. With GCC 12, give co_offload/co_run a named lambda, not a temporary with
// captures inside the co_await expression: that compiler destroys such a temporary twice.
template <class R, class Submit>
auto co_handoff(Submit submit, R refused) {
  auto* owned = new std::pair<Submit, R>(std::move(submit), std::move(refused));
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(R)>(
      [owned](auto handler) {
        std::unique_ptr<std::pair<Submit, R>> s(owned);
        auto ex = boost::asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto complete = [ex, h, guard = boost::asio::make_work_guard(ex)](R r) mutable {
          // Moved into the completion, so the handler's last reference is dropped on the
          // coroutine's own thread: destroying it on a pool thread corrupts Asio's per-thread
          // recycling.
          boost::asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(*h)(std::move(r)); });
          guard.reset();
        };
        if (!s->first(complete)) complete(std::move(s->second));
      },
      boost::asio::use_awaitable);
}

// Runs fn() on `pool` and completes with its result (co_handoff). Failures are values: a pool
// that is full or stopping completes with kUnavailable without running fn; an exception from fn
// completes with kInternal. fn returning Status or Result<T> completes with that type, any other
// T with Result<T>.
template <class F>
auto co_offload(ThreadPool& pool, F fn) {
  using R = typename detail::Offloaded<std::invoke_result_t<F&>>::type;
  auto f = std::make_shared<F>(std::move(fn));
  return co_handoff<R>(
      [pp = &pool, f](auto complete) {
        return pp->post([f, complete]() mutable {
          R r = [&]() -> R {
            try {
              return R((*f)());
            } catch (const std::exception& e) {
              return R(Status(Code::kInternal, std::string("offloaded work threw: ") + e.what(), "co_offload"));
            } catch (...) {
              return R(Status(Code::kInternal, "offloaded work threw", "co_offload"));
            }
          }();
          complete(std::move(r));
        });
      },
      R(Status(Code::kUnavailable, "blocking pool full or stopping", "co_offload")));
}

// co_offload on blocking_pool().
template <class F>
auto co_offload(F fn) {
  return co_offload(core::blocking_pool(), std::move(fn));
}

}  // namespace gantry::core::resilience
