// Awaiting a Pool job from an Asio coroutine: the coroutine's thread is never blocked; the
// job runs on a pool thread and the coroutine resumes on its own executor with the result.
//
//   Result<Rows> r = co_await co_run(pool, [](Connection& c) { return c.query("SELECT 1"); });
//
// fn(Connection&) returns Status or Result<T>. A full queue completes with kResourceExhausted,
// a connection that cannot be had with its failure, an exception from fn with kInternal.
//
// With GCC 12, name the job before the co_await: a lambda temporary with captures written
// inside the co_await expression was seen destroyed twice (a std::string capture freed from
// the coroutine's frame), in core's co_offload too:
//
//   auto job = [id](Connection& c) { return c.query("SELECT … WHERE id = $1", {id}); };
//   auto r = co_await co_run(pool, std::move(job));
#pragma once

#include <exception>
#include <memory>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/postgres/pool.h"

namespace gantry::store::postgres {

// fn is moved to the heap at once and the initiation (which Asio passes by value through a
// coroutine of its own) carries only pointers.
template <class F>
auto co_run(Pool& pool, F fn) {
  using R = decltype(fn(std::declval<Connection&>()));
  F* owned = new F(std::move(fn));
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(R)>(
      [pp = &pool, owned](auto handler) {
        Pool& pool = *pp;
        std::shared_ptr<F> fn(owned);
        auto ex = boost::asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto complete = [ex, h, guard = boost::asio::make_work_guard(ex)](R r) mutable {
          // The handler is moved into the completion, so its last reference is dropped on the
          // coroutine's own thread.
          boost::asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(*h)(std::move(r)); });
          guard.reset();
        };
        bool queued = pool.submit([fn, complete](Connection* c, const Status& why) mutable {
          R r = [&]() -> R {
            if (!c) return R(why);
            try {
              return (*fn)(*c);
            } catch (const std::exception& e) {
              return R(Status(core::Code::kInternal, std::string("job threw: ") + e.what(), "pg.pool"));
            }
          }();
          complete(std::move(r));
        });
        if (!queued) complete(R(Status(core::Code::kResourceExhausted, "postgres pool queue full", "pg.pool")));
      },
      boost::asio::use_awaitable);
}

}  // namespace gantry::store::postgres
