// SQLite for roles that keep state on one machine (the fleet controller's default store).
//
// A Db is one connection: WAL journal, synchronous=NORMAL (a commit survives a process crash;
// the last commits may be lost on power loss), foreign keys on, busy timeout 5 s. It is not
// thread-safe: one owner, or a mutex, per Db; SQLite allows one writer at a time anyway.
//
//   auto db = Db::open("./data/data.db");
//   GANTRY_RETURN_IF_ERROR((*db)->migrate(kMigrations));
//   auto st = (*db)->prepare("insert into agents(agent_id, status) values (?, ?)");
//   st->bind(1, id).bind(2, "online");
//   GANTRY_RETURN_IF_ERROR(st->run());
//
// Failures are Status values naming the SQL at fault: kAlreadyExists for a constraint
// violation, kUnavailable for a busy or locked database, kIoError for the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/migration.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gantry::store::sqlite {

using core::Result;
using core::Status;

// A statement; reusable after reset(). Bind indexes start at 1, column indexes at 0.
class Statement {
 public:
  ~Statement();
  Statement(Statement&& o) noexcept : db_(o.db_), st_(o.st_), sql_(std::move(o.sql_)) { o.st_ = nullptr; }
  Statement& operator=(Statement&&) = delete;

  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);  // copied by SQLite
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, std::nullopt_t);
  template <class T>
  Statement& bind(int i, const std::optional<T>& v) { return v ? bind(i, *v) : bind(i, std::nullopt); }

  // Advances to the next row: true when there is one, false at the end.
  Result<bool> step();
  // Steps to the end (for statements that return no rows), then resets for reuse.
  Status run();
  // Clears bindings and rewinds.
  void reset();

  int64_t int64(int col) const;
  double real(int col) const;
  std::string_view text(int col) const;  // valid until the next step()/reset()
  bool is_null(int col) const;
  // Rows changed by this statement's last completed run (insert/update/delete), whatever ran
  // on the connection since.
  int64_t changes() const;

 private:
  friend class Db;
  Statement(sqlite3* db, sqlite3_stmt* st, std::string sql) : db_(db), st_(st), sql_(std::move(sql)) {}
  sqlite3* db_;
  sqlite3_stmt* st_;
  std::string sql_;
  Status bind_error_;
  int64_t changes_ = 0;
};

using store::Migration;

struct Options {
  bool create_dirs = true;  // make the file's directory if missing
  int busy_timeout_ms = 5000;
  bool read_only = false;
};

class Db {
 public:
  static Result<std::unique_ptr<Db>> open(const std::string& path, Options o = {});
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements that return no rows.
  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);

  // Applies, in order and each in its own transaction, the migrations newer than the
  // database's version (table schema_migrations). Versions must increase; an applied
  // version whose description changed is reported, not silently re-run.
  Status migrate(std::span<const Migration> migrations);
  // The highest applied migration version (0 for a new database).
  Result<int> schema_version();

  // Runs fn inside BEGIN IMMEDIATE … COMMIT; rolls back when fn fails.
  template <class F>
  Status transaction(F&& fn) {
    if (Status s = exec("BEGIN IMMEDIATE"); !s.is_ok()) return s;
    Status s = fn();
    if (!s.is_ok()) {
      (void)exec("ROLLBACK");
      return s;
    }
    if (Status c = exec("COMMIT"); !c.is_ok()) {
      (void)exec("ROLLBACK");
      return c;
    }
    return {};
  }

  int64_t last_insert_rowid() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// Maps an SQLite result code to a Status (see the header comment).
Status status_from(int rc, sqlite3* db, std::string_view what);

}  // namespace gantry::store::sqlite
