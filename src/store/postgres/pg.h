// PostgreSQL over libpq: one connection with parameterised queries, transactions, session
// advisory locks and the shared migrations (store/migration.h). Calls block their caller, so
// call from a thread of your own or a pool (never an io_context thread), and every call is
// bounded in time:
//   - the server ends a statement after statement_timeout (SQLSTATE 57014 ->
//     kDeadlineExceeded);
//   - the client gives up after call_timeout even when the server cannot answer at all (frozen,
//     partitioned): the session is then closed, as below, and the call fails kDeadlineExceeded;
//   - TCP keepalives and tcp_user_timeout notice a peer that vanished.
//
// Sessions: a lost session is never silently replaced. When a call finds the session gone (or
// ends it on a timeout), the session_lost handler runs with the reason and the advisory locks
// the session held, holds() turns false for them, and the call fails kUnavailable or
// kDeadlineExceeded. The next call opens a new session, whose generation() is one higher;
// session state (locks, LISTEN, SET) must be re-established by its owner.
//
// Not thread-safe: one owner per Connection. Failures are Status values carrying the SQLSTATE:
// unique violation -> kAlreadyExists; other integrity violations and bad input
// (22xxx, 23xxx) -> kInvalidArgument; serialization failure or deadlock -> kAborted (retry the
// transaction); connection loss or a server shutting down -> kUnavailable; the rest -> kIoError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
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

namespace gantry::core::config {
class Schema;
}

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

struct Options {
  std::chrono::milliseconds connect_timeout{5000};
  // Server side, per statement; 0 = none. Migrations run without it.
  std::chrono::milliseconds statement_timeout{15'000};
  // Client side, per call; 0 = statement_timeout + 2 s (or 60 s without a statement timeout).
  std::chrono::milliseconds call_timeout{0};
  // Keepalive probes after this idle time, then every keepalive_interval, keepalive_count of them.
  int keepalive_idle_s = 10;
  int keepalive_interval_s = 5;
  int keepalive_count = 3;
  // Unacknowledged data older than this ends the connection (Linux TCP_USER_TIMEOUT).
  std::chrono::milliseconds tcp_user_timeout{10'000};
  std::string application_name = "gantry";
};

class Connection {
 public:
  // url: postgres://user:password@host:port/db?sslmode=… (or a libpq key=value string).
  // Settings given in the URL win over those of Options.
  static Result<std::unique_ptr<Connection>> connect(std::string url, Options o);
  static Result<std::unique_ptr<Connection>> connect(std::string url,
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<Rows> query(std::string_view sql, std::initializer_list<Param> params = {});
  Result<Rows> query(std::string_view sql, std::span<const std::optional<std::string>> params);

  // Bulk writes. copy_in runs `COPY … FROM STDIN` and streams the rows (each a line of COPY
  // text format, tab-separated, ending in '\n'); returns the rows copied. A failure copies
  // nothing (COPY is one statement).
  Result<int64_t> copy_in(std::string_view copy_sql, std::span<const std::string> lines);
  // Pipeline mode: every statement is sent before any result is read, in one round trip. One
  // outcome per statement; after a failed one the rest are kAborted (not run). The statements
  // form one implicit transaction: a failure rolls back the ones before it too.
  struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
  };
  std::vector<Result<Rows>> pipeline(std::span<const Statement> statements);
  // Pipeline mode too, but each statement is a transaction of its own (a Sync after each): the
  // outcomes are those of running them one by one, in one round trip instead of one each.
  std::vector<Result<Rows>> batch(std::span<const Statement> statements);
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

  // Applies the migrations newer than `table` records (in the current search_path), holding an
  // advisory lock so concurrent migrators apply each version once. Systems that may share a
  // database keep their versions in tables of their own (versions are per system: two systems'
  // migration 1 are different migrations). `table` is a trusted identifier, never input.
  Status migrate(std::span<const Migration> migrations, std::string_view table = "schema_migrations");
  Result<int> schema_version(std::string_view table = "schema_migrations");

  // Session advisory locks: held until unlocked or until the session ends.
  Result<bool> try_lock(int64_t key);
  Status unlock(int64_t key);
  // Whether this session still holds `key`: checks, without a round trip, that the server has
  // not ended the session (a terminated backend's goodbye is read from the socket). Call it
  // before acting on the lock.
  bool holds(int64_t key);

  // Called (on the calling thread, before the failing call returns) once per lost session,
  // with the reason and the advisory locks it held.
  using SessionLost = std::function<void(const Status& why, const std::set<int64_t>& locks_lost)>;
  void on_session_lost(SessionLost fn) { on_lost_ = std::move(fn); }
  // 1 for the first session, one more for each new one.
  uint64_t generation() const { return generation_; }
  // Reads what the server sent without waiting; false (after reporting the loss) when the
  // session has ended.
  bool session_alive();

  bool healthy() const;
  // The libpq connection, for LISTEN/NOTIFY (see Listener); null between sessions.
  pg_conn* raw() { return c_; }
  const Options& options() const { return o_; }

 private:
  explicit Connection(std::string url, Options o) : url_(std::move(url)), o_(std::move(o)) {}
  Status ensure_connected();
  // Sends and waits for the result within the call timeout (or `limit`).
  Result<Rows> run(std::string_view sql, const std::vector<const char*>* values,
                   std::optional<std::chrono::milliseconds> limit = std::nullopt);
  std::vector<Result<Rows>> run_pipeline(std::span<const Statement> statements, bool sync_each);
  void lose(const Status& why);
  std::chrono::milliseconds call_timeout() const;

  std::string url_;
  Options o_;
  pg_conn* c_ = nullptr;
  uint64_t generation_ = 0;
  std::set<int64_t> locks_;
  SessionLost on_lost_;
  std::optional<std::chrono::milliseconds> limit_override_;  // while migrating
};

// What a system offers `gantry migrate <system>`: its database's location settings (the parts,
// under its own environment names; the CLI binds one db_url for every system), the connection
// string they make with a given URL ("" = none), and how to apply its schema.
struct MigrationTarget {
  std::function<void(core::config::Schema&)> bind;
  std::function<std::string(const std::string& url)> connection_string;
  std::function<Status(Connection&)> apply;
  std::function<Result<int>(Connection&)> version;  // after apply
};

}  // namespace gantry::store::postgres
