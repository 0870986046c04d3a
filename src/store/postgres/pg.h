// PostgreSQL over libpq: one blocking connection with parameterised queries, transactions,
// advisory locks and the shared migrations (store/migration.h).
//
// Not thread-safe: one owner per Connection. Failures are Status values carrying the SQLSTATE:
// unique violation -> kAlreadyExists; other integrity violations and bad input
// (22xxx, 23xxx) -> kInvalidArgument; serialization failure or deadlock -> kAborted (retry the
// transaction); connection loss or a server shutting down -> kUnavailable; the rest -> kIoError.
// A lost connection is re-established on the next call.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "store/migration.h"

struct pg_conn;
struct pg_result;

namespace gantry::store::postgres {

using core::Result;
using core::Status;

// A query parameter in text form; nullopt is SQL NULL.
using Param = std::optional<std::string_view>;

// A text array literal ({"a","b",NULL}) for passing many values as one parameter, e.g.
// `UPDATE … FROM unnest($1::text[], $2::float8[])`: one round trip for a whole batch.
std::string array_literal(std::span<const std::string_view> items);
std::string array_literal(std::span<const std::optional<std::string>> items);  // nullopt = NULL

class Rows {
 public:
  Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Rows& operator=(Rows&&) = delete;
  ~Rows();
  int size() const;
  int columns() const;
  std::string_view get(int row, int col) const;
  bool is_null(int row, int col) const;
  int64_t int64(int row, int col) const;
  // Rows changed by an INSERT/UPDATE/DELETE.
  int64_t affected() const;

 private:
  friend class Connection;
  explicit Rows(pg_result* r) : r_(r) {}
  pg_result* r_;
};

class Connection {
 public:
  // url: postgres://user:password@host:port/db?sslmode=… (or a libpq key=value string).
  static Result<std::unique_ptr<Connection>> connect(std::string url,
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<Rows> query(std::string_view sql, std::initializer_list<Param> params = {});
  // One or more statements without parameters or results.
  Status exec(std::string_view sql);

  template <class F>
  Status transaction(F&& fn) {
    GANTRY_RETURN_IF_ERROR(exec("BEGIN"));
    Status s = fn();
    if (!s.is_ok()) {
      (void)exec("ROLLBACK");
      return s;
    }
    return exec("COMMIT");
  }

  // Applies the migrations newer than schema_migrations (in the current search_path), holding
  // an advisory lock so concurrent migrators apply each version once.
  Status migrate(std::span<const Migration> migrations);
  Result<int> schema_version();

  // Session advisory locks: held until unlocked or until this connection ends.
  Result<bool> try_lock(int64_t key);
  Status unlock(int64_t key);

  bool healthy() const;

 private:
  explicit Connection(std::string url) : url_(std::move(url)) {}
  Status ensure_connected();
  std::string url_;
  std::chrono::milliseconds timeout_{5000};
  pg_conn* c_ = nullptr;
};

}  // namespace gantry::store::postgres
