// Awaiting a Pool job from an Asio coroutine: the coroutine's thread is never blocked; the
// job runs on a pool thread and the coroutine resumes on its own executor with the result.
//
//   Result<Rows> r = co_await co_run(pool, [](Connection& c) { return c.query("SELECT 1"); });
//
// fn(Connection&) returns Status or Result<T>. A full queue completes with kResourceExhausted,
// a connection that cannot be had with its failure, an exception from fn with kInternal.
#pragma once

#include <exception>
#include <memory>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/postgres/pool.h"

namespace gantry::store::postgres {

template <class F>
auto co_run(Pool& pool, F fn) -> boost::asio::awaitable<decltype(fn(std::declval<Connection&>()))> {
  using R = decltype(fn(std::declval<Connection&>()));
  auto ex = co_await boost::asio::this_coro::executor;
  co_return co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(R)>(
      [&pool, ex, fn = std::move(fn)](auto handler) mutable {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto complete = [ex, h, guard = boost::asio::make_work_guard(ex)](R r) mutable {
          boost::asio::post(ex, [h, r = std::move(r)]() mutable { std::move(*h)(std::move(r)); });
          guard.reset();
        };
        bool queued = pool.submit([fn = std::move(fn), complete](Connection* c, const Status& why) mutable {
          R r = [&]() -> R {
            if (!c) return R(why);
            try {
              return fn(*c);
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
