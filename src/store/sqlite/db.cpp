#include "store/sqlite/db.h"

#include <sqlite3.h>

#include <filesystem>

namespace gantry::store::sqlite {

using core::Code;

Status status_from(int rc, sqlite3* db, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  int primary = rc & 0xff;
  Code code = Code::kIoError;
  if (primary == SQLITE_CONSTRAINT) {
    // Only a duplicate key is "already exists" (409); a missing or invalid value is the
    // caller's bad input, a dangling reference a precondition.
    switch (rc) {
      case SQLITE_CONSTRAINT_UNIQUE:
      case SQLITE_CONSTRAINT_PRIMARYKEY:
      case SQLITE_CONSTRAINT_ROWID: code = Code::kAlreadyExists; break;
      case SQLITE_CONSTRAINT_FOREIGNKEY: code = Code::kFailedPrecondition; break;
      default: code = Code::kInvalidArgument;  // NOT NULL, CHECK, DATATYPE, TRIGGER
    }
  } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = Code::kUnavailable;
  else if (primary == SQLITE_MISUSE || primary == SQLITE_RANGE) code = Code::kInternal;
  else if (primary == SQLITE_READONLY || primary == SQLITE_PERM || primary == SQLITE_CANTOPEN) code = Code::kFailedPrecondition;
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string where = "sqlite";
  if (!what.empty()) {
    std::string w(what.substr(0, 80));
    where += " [" + w + (what.size() > 80 ? "…" : "") + "]";
  }
  return Status(code, msg, where);
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path, Options o) {
  if (o.create_dirs && path != ":memory:") {
    std::error_code ec;
    auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) return Status(Code::kFailedPrecondition, "cannot create directory " + dir.string() + ": " + ec.message(), "sqlite");
  }
  sqlite3* db = nullptr;
  int flags = (o.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = status_from(rc, db, "open " + path);
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Db> d(new Db(db, path));
  sqlite3_busy_timeout(db, o.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  if (!o.read_only) {
    Status s = d->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    if (!s.is_ok()) return s;
  }
  return d;
}

Db::~Db() { sqlite3_close_v2(db_); }

Status Db::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  return status_from(rc, db_, sql);
}

Result<Statement> Db::prepare(std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &st, nullptr);
  if (rc != SQLITE_OK) return status_from(rc, db_, sql);
  return Statement(db_, st, std::string(sql));
}

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Result<int> Db::schema_version() {
  GANTRY_RETURN_IF_ERROR(exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
      "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"));
  auto st = prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!st.is_ok()) return st.status();
  auto row = st->step();
  if (!row.is_ok()) return row.status();
  return static_cast<int>(st->int64(0));
}

Status Db::migrate(std::span<const Migration> migrations) {
  auto current = schema_version();
  if (!current.is_ok()) return current.status();
  return apply_migrations(
      migrations, *current,
      [this](int version) -> Result<std::optional<std::string>> {
        auto st = prepare("SELECT description FROM schema_migrations WHERE version = ?");
        if (!st.is_ok()) return st.status();
        st->bind(1, version);
        auto row = st->step();
        if (!row.is_ok()) return row.status();
        if (!*row) return std::optional<std::string>();
        return std::optional<std::string>(std::string(st->text(0)));
      },
      [this](const Migration& m) {
        return transaction([&]() -> Status {
          GANTRY_RETURN_IF_ERROR(exec(m.sql));
          auto ins = prepare("INSERT INTO schema_migrations(version, description) VALUES (?, ?)");
          if (!ins.is_ok()) return ins.status();
          ins->bind(1, m.version).bind(2, m.description);
          return ins->run();
        });
      },
      "sqlite.migrate");
}

Statement::~Statement() {
  if (st_) sqlite3_finalize(st_);
}

Statement& Statement::bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(st_, i, v);
  if (rc != SQLITE_OK && bind_error_.is_ok()) bind_error_ = status_from(rc, db_, sql_);
  return *this;
}
Statement& Statement::bind(int i, double v) {
  int rc = sqlite3_bind_double(st_, i, v);
  if (rc != SQLITE_OK && bind_error_.is_ok()) bind_error_ = status_from(rc, db_, sql_);
  return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
  int rc = sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_.is_ok()) bind_error_ = status_from(rc, db_, sql_);
  return *this;
}
Statement& Statement::bind(int i, std::nullopt_t) {
  int rc = sqlite3_bind_null(st_, i);
  if (rc != SQLITE_OK && bind_error_.is_ok()) bind_error_ = status_from(rc, db_, sql_);
  return *this;
}

Result<bool> Statement::step() {
  if (!bind_error_.is_ok()) return bind_error_;
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) {
    // sqlite3_changes64 is the connection's latest statement's count: read it now, while that
    // is this statement, so a later statement on the connection cannot change our answer.
    changes_ = sqlite3_stmt_readonly(st_) ? 0 : sqlite3_changes64(db_);
    return false;
  }
  Status s = status_from(rc, db_, sql_);
  sqlite3_reset(st_);
  return s;
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r.is_ok()) {
      reset();
      return r.status();
    }
    if (!*r) break;
  }
  sqlite3_reset(st_);  // keep bindings? no: a run is complete; clear for the next use
  sqlite3_clear_bindings(st_);
  return {};
}

void Statement::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
  bind_error_ = Status();
}

int64_t Statement::int64(int col) const { return sqlite3_column_int64(st_, col); }
double Statement::real(int col) const { return sqlite3_column_double(st_, col); }
std::string_view Statement::text(int col) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
  return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string_view();
}
bool Statement::is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
int64_t Statement::changes() const { return changes_; }

}  // namespace gantry::store::sqlite
