// Awaiting the Pool from an Asio coroutine: the coroutine's thread is never blocked; the work
// runs on a pool thread and the coroutine resumes on its own executor with the result.
//
// A single statement: co_query, batched with the statements other coroutines have queued
// (Pool::submit_query), so many coroutines cost few round trips:
//
//   Result<Rows> r = co_await co_query(pool, "SELECT name FROM t WHERE id = $1", {id});
//
// Anything else (a transaction, COPY, several dependent statements): co_run with a function of
// the connection:
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
#include <optional>
#include <string>
#include <vector>

#include "core/resilience/asio.h"
#include "store/postgres/pool.h"

namespace gantry::store::postgres {

template <class F>
auto co_run(Pool& pool, F fn) {
  using R = decltype(fn(std::declval<Connection&>()));
  auto f = std::make_shared<F>(std::move(fn));
  return core::resilience::co_handoff<R>(
      [pp = &pool, f](auto complete) {
        return pp->submit([f, complete](Connection* c, const Status& why) mutable {
          R r = [&]() -> R {
            if (!c) return R(why);
            try {
              return (*f)(*c);
            } catch (const std::exception& e) {
              return R(Status(core::Code::kInternal, std::string("job threw: ") + e.what(), "pg.pool"));
            }
          }();
          complete(std::move(r));
        });
      },
      R(Status(core::Code::kResourceExhausted, "postgres pool queue full", "pg.pool")));
}

inline boost::asio::awaitable<Result<Rows>> co_query(Pool& pool, std::string sql,
                                                     std::vector<std::optional<std::string>> params = {}) {
  Connection::Statement st{std::move(sql), std::move(params)};
  auto submit = [pp = &pool, st = std::move(st)](auto complete) mutable {
    return pp->submit_query(std::move(st), std::move(complete));
  };
  return core::resilience::co_handoff<Result<Rows>>(
      std::move(submit), Result<Rows>(Status(core::Code::kResourceExhausted, "postgres pool queue full", "pg.pool")));
}

}  // namespace gantry::store::postgres
