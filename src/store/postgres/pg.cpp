#include "store/postgres/pg.h"

#include <libpq-fe.h>

#include <charconv>

namespace gantry::store::postgres {

using core::Code;

namespace {

// Migrations of every schema in this database take turns on this lock.
constexpr int64_t kMigrationLock = 0x67616e7472790001;  // "gantry" + 1

Code code_for_sqlstate(std::string_view st) {
  if (st == "23505") return Code::kAlreadyExists;
  if (st.substr(0, 2) == "23" || st.substr(0, 2) == "22") return Code::kInvalidArgument;
  if (st == "40001" || st == "40P01") return Code::kAborted;
  if (st.substr(0, 2) == "08" || st == "57P01" || st == "57P02" || st == "57P03") return Code::kUnavailable;
  if (st == "57014") return Code::kDeadlineExceeded;  // statement timeout / cancelled
  return Code::kIoError;
}

std::string brief(std::string_view sql) {
  std::string s(sql.substr(0, 80));
  for (auto& ch : s)
    if (ch == '\n') ch = ' ';
  return sql.size() > 80 ? s + "…" : s;
}

}  // namespace

Rows::~Rows() {
  if (r_) PQclear(r_);
}
int Rows::size() const { return PQntuples(r_); }
int Rows::columns() const { return PQnfields(r_); }
std::string_view Rows::get(int row, int col) const {
  return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
}
bool Rows::is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
int64_t Rows::int64(int row, int col) const {
  auto v = get(row, col);
  int64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}
int64_t Rows::affected() const {
  const char* n = PQcmdTuples(r_);
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

Result<std::unique_ptr<Connection>> Connection::connect(std::string url, std::chrono::milliseconds timeout) {
  std::unique_ptr<Connection> c(new Connection(std::move(url)));
  c->timeout_ = timeout;
  GANTRY_RETURN_IF_ERROR(c->ensure_connected());
  return c;
}

Connection::~Connection() {
  if (c_) PQfinish(c_);
}

bool Connection::healthy() const { return c_ && PQstatus(c_) == CONNECTION_OK; }

Status Connection::ensure_connected() {
  if (healthy()) return {};
  if (c_) {
    PQfinish(c_);
    c_ = nullptr;
  }
  std::string timeout = std::to_string(std::max<int64_t>(1, timeout_.count() / 1000));
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* vals[] = {url_.c_str(), timeout.c_str(), "gantry", nullptr};
  c_ = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    PQfinish(c_);
    c_ = nullptr;
    // The URL may hold a password: name only where the failure happened, not the URL.
    return Status(Code::kUnavailable, msg, "postgres.connect");
  }
  return {};
}

Result<Rows> Connection::query(std::string_view sql, std::initializer_list<Param> params) {
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  std::string text(sql);
  std::vector<std::string> owned;
  owned.reserve(params.size());
  std::vector<const char*> values;
  for (const Param& p : params) {
    if (p) {
      owned.emplace_back(*p);  // libpq wants NUL-terminated text
      values.push_back(owned.back().c_str());
    } else {
      values.push_back(nullptr);
    }
  }
  pg_result* r = PQexecParams(c_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                              nullptr, 0);
  Rows rows(r);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return rows;
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c_);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  Code code = state ? code_for_sqlstate(state) : (PQstatus(c_) != CONNECTION_OK ? Code::kUnavailable : Code::kIoError);
  return Status(code, msg + (state ? " (SQLSTATE " + std::string(state) + ")" : ""), "postgres [" + brief(sql) + "]");
}

Status Connection::exec(std::string_view sql) {
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  std::string text(sql);
  Rows r(PQexec(c_, text.c_str()));
  ExecStatusType st = r.r_ ? PQresultStatus(r.r_) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return {};
  const char* state = r.r_ ? PQresultErrorField(r.r_, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r.r_ ? PQresultErrorMessage(r.r_) : PQerrorMessage(c_);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  Code code = state ? code_for_sqlstate(state) : Code::kUnavailable;
  return Status(code, msg + (state ? " (SQLSTATE " + std::string(state) + ")" : ""), "postgres [" + brief(sql) + "]");
}

Result<bool> Connection::try_lock(int64_t key) {
  auto r = query("SELECT pg_try_advisory_lock($1::bigint)", {std::to_string(key)});
  if (!r.is_ok()) return r.status();
  return r->get(0, 0) == "t";
}

Status Connection::unlock(int64_t key) {
  auto r = query("SELECT pg_advisory_unlock($1::bigint)", {std::to_string(key)});
  return r.is_ok() ? Status() : r.status();
}

Result<int> Connection::schema_version() {
  GANTRY_RETURN_IF_ERROR(exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, description text NOT NULL, "
      "applied_at timestamptz NOT NULL DEFAULT now())"));
  auto r = query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!r.is_ok()) return r.status();
  return static_cast<int>(r->int64(0, 0));
}

Status Connection::migrate(std::span<const Migration> migrations) {
  auto locked = query("SELECT pg_advisory_lock($1::bigint)", {std::to_string(kMigrationLock)});
  if (!locked.is_ok()) return locked.status();
  Status s;
  auto current = schema_version();
  if (!current.is_ok()) {
    s = current.status();
  } else {
    s = apply_migrations(
        migrations, *current,
        [this](int version) -> Result<std::optional<std::string>> {
          auto r = query("SELECT description FROM schema_migrations WHERE version = $1", {std::to_string(version)});
          if (!r.is_ok()) return r.status();
          if (r->size() == 0) return std::optional<std::string>();
          return std::optional<std::string>(std::string(r->get(0, 0)));
        },
        [this](const Migration& m) {
          return transaction([&]() -> Status {
            GANTRY_RETURN_IF_ERROR(exec(m.sql));
            auto ins = query("INSERT INTO schema_migrations(version, description) VALUES ($1, $2)",
                             {std::to_string(m.version), m.description});
            return ins.is_ok() ? Status() : ins.status();
          });
        },
        "postgres.migrate");
  }
  (void)unlock(kMigrationLock);
  return s;
}

namespace {
void append_element(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace

std::string array_literal(std::span<const std::string_view> items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    append_element(out, items[i]);
  }
  return out + "}";
}

std::string array_literal(std::span<const std::optional<std::string>> items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    if (items[i]) {
      append_element(out, *items[i]);
    } else {
      out += "NULL";
    }
  }
  return out + "}";
}

}  // namespace gantry::store::postgres
