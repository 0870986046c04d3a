#include "store/postgres/pg.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <charconv>

#include "core/log.h"

namespace gantry::store::postgres {

using core::Code;

namespace {

const core::log::Logger pg_log("postgres");

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

Result<std::unique_ptr<Connection>> Connection::connect(std::string url, Options o) {
  std::unique_ptr<Connection> c(new Connection(std::move(url), std::move(o)));
  GANTRY_RETURN_IF_ERROR(c->ensure_connected());
  return c;
}

Result<std::unique_ptr<Connection>> Connection::connect(std::string url, std::chrono::milliseconds timeout) {
  Options o;
  o.connect_timeout = timeout;
  return connect(std::move(url), std::move(o));
}

Connection::~Connection() {
  if (c_) PQfinish(c_);
}

bool Connection::healthy() const { return c_ && PQstatus(c_) == CONNECTION_OK; }

std::chrono::milliseconds Connection::call_timeout() const {
  if (limit_override_) return *limit_override_;
  if (o_.call_timeout.count() > 0) return o_.call_timeout;
  if (o_.statement_timeout.count() > 0) return o_.statement_timeout + std::chrono::seconds(2);
  return std::chrono::seconds(60);
}

void Connection::lose(const Status& why) {
  if (!c_) return;
  PQfinish(c_);
  c_ = nullptr;
  std::set<int64_t> locks;
  locks.swap(locks_);
  pg_log.warn("session lost", {{"generation", static_cast<long long>(generation_)},
                           {"locks_lost", static_cast<long long>(locks.size())},
                           {"error", why.to_string()}});
  if (on_lost_) on_lost_(why, locks);
}

namespace {
// The server's notices (a migration's "does not exist, skipping", say) go to the log, not
// straight to stderr as libpq's default receiver would print them, between structured lines.
void log_notice(void*, const PGresult* r) {
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* message = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  std::string_view sev = severity ? severity : "NOTICE";
  core::log::Fields f{{"severity", std::string(sev)}, {"message", message ? message : ""}};
  if (sev == "WARNING") pg_log.warn("server notice", f);
  else pg_log.debug("server notice", f);
}
}  // namespace

Status Connection::ensure_connected() {
  if (c_ && PQstatus(c_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    lose(Status(Code::kUnavailable, msg.empty() ? "connection lost" : msg, "postgres"));
  }
  if (c_) return {};
  std::string timeout = std::to_string(std::max<int64_t>(1, (o_.connect_timeout.count() + 999) / 1000));
  std::string idle = std::to_string(o_.keepalive_idle_s), interval = std::to_string(o_.keepalive_interval_s),
              count = std::to_string(o_.keepalive_count), user_timeout = std::to_string(o_.tcp_user_timeout.count());
  std::string options = "-c statement_timeout=" + std::to_string(o_.statement_timeout.count());
  // Ours first: entries before the expanded URL are overridden by what the URL sets.
  const char* keys[] = {"connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "options", "dbname", nullptr};
  const char* vals[] = {timeout.c_str(), o_.application_name.c_str(), "1", idle.c_str(), interval.c_str(),
                        count.c_str(), user_timeout.c_str(), options.c_str(), url_.c_str(), nullptr};
  c_ = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    PQfinish(c_);
    c_ = nullptr;
    // The URL may hold a password: name only where the failure happened, not the URL.
    return Status(Code::kUnavailable, msg, "postgres.connect");
  }
  PQsetNoticeReceiver(c_, &log_notice, nullptr);
  PQsetnonblocking(c_, 1);
  ++generation_;
  return {};
}

namespace {
// Waits for `events` on fd until the deadline; false when it passed first.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let libpq report the socket's error
  }
}
}  // namespace

bool Connection::session_alive() {
  if (!c_) return false;
  if (PQstatus(c_) == CONNECTION_OK) {
    pollfd p{PQsocket(c_), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) {
      // A terminated backend says goodbye (FATAL 57P01) and closes: reading finds either.
      if (PQconsumeInput(c_)) (void)PQisBusy(c_);
    }
    if (PQstatus(c_) == CONNECTION_OK) return true;
  }
  std::string msg = PQerrorMessage(c_);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  lose(Status(Code::kUnavailable, msg.empty() ? "the server ended the session" : msg, "postgres"));
  return false;
}

Result<Rows> Connection::run(std::string_view sql, const std::vector<const char*>* values,
                             std::optional<std::chrono::milliseconds> limit) {
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  // Built only on failure: a successful call allocates nothing for it.
  auto where = [&] { return "postgres [" + brief(sql) + "]"; };
  auto fail = [&](Code code, std::string msg) -> Status {
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    Status st(code, msg, where());
    lose(st);
    return st;
  };
  std::string text(sql);
  int sent = values ? PQsendQueryParams(c_, text.c_str(), static_cast<int>(values->size()), nullptr, values->data(),
                                        nullptr, nullptr, 0)
                    : PQsendQuery(c_, text.c_str());
  if (!sent) return fail(Code::kUnavailable, PQerrorMessage(c_));
  auto budget = limit ? *limit : call_timeout();
  auto deadline = std::chrono::steady_clock::now() + budget;
  auto timed_out = [&] {
    return fail(Code::kDeadlineExceeded, "no answer within " + std::to_string(budget.count()) +
                                             " ms; the session was closed (server frozen or unreachable?)");
  };
  int fd = PQsocket(c_);
  for (;;) {
    int f = PQflush(c_);
    if (f == 0) break;
    if (f < 0) return fail(Code::kUnavailable, PQerrorMessage(c_));
    if (!wait_fd(fd, POLLIN | POLLOUT, deadline)) return timed_out();
    if (!PQconsumeInput(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
  }
  pg_result* error = nullptr;  // the first failed statement's result
  pg_result* last = nullptr;   // the last successful one's
  for (;;) {
    while (!PQisBusy(c_)) {
      pg_result* r = PQgetResult(c_);
      if (!r) goto done;
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (last) PQclear(last);
        last = r;
      } else if (!error) {
        error = r;
      } else {
        PQclear(r);
      }
    }
    if (!wait_fd(fd, POLLIN, deadline)) {
      if (error) PQclear(error);
      if (last) PQclear(last);
      return timed_out();
    }
    if (!PQconsumeInput(c_)) {
      if (error) PQclear(error);
      if (last) PQclear(last);
      return fail(Code::kUnavailable, PQerrorMessage(c_));
    }
  }
done:
  if (!error) {
    if (last) return Rows(last);
    return fail(Code::kUnavailable, PQerrorMessage(c_));
  }
  if (last) PQclear(last);
  Rows err(error);
  const char* state = PQresultErrorField(error, PG_DIAG_SQLSTATE);
  std::string msg = PQresultErrorMessage(error);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  Code code = state ? code_for_sqlstate(state) : Code::kUnavailable;
  Status st(code, msg + (state ? " (SQLSTATE " + std::string(state) + ")" : ""), where());
  if (PQstatus(c_) != CONNECTION_OK || (state && std::string_view(state).substr(0, 2) == "57" &&
                                        std::string_view(state) != "57014"))
    lose(st);  // the server ended the session (admin shutdown, terminated backend)
  return st;
}

Result<Rows> Connection::query(std::string_view sql, std::initializer_list<Param> params) {
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
  return run(sql, &values);
}

Result<Rows> Connection::query(std::string_view sql, std::span<const std::optional<std::string>> params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return run(sql, &values);
}

namespace {
// The Status of a failed result (SQLSTATE mapped as for queries).
Status result_status(pg_result* r, pg_conn* c, const std::string& where) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  Code code = state ? code_for_sqlstate(state) : Code::kUnavailable;
  return Status(code, msg + (state ? " (SQLSTATE " + std::string(state) + ")" : ""), where);
}
}  // namespace

Result<int64_t> Connection::copy_in(std::string_view copy_sql, std::span<const std::string> lines) {
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  std::string where = "postgres [" + brief(copy_sql) + "]";
  auto deadline = std::chrono::steady_clock::now() + call_timeout();
  auto fail = [&](Code code, std::string msg) -> Status {
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    Status st(code, msg, where);
    lose(st);
    return st;
  };
  std::string text(copy_sql);
  if (!PQsendQuery(c_, text.c_str())) return fail(Code::kUnavailable, PQerrorMessage(c_));
  int fd = PQsocket(c_);
  // Flushes libpq's output buffer within the deadline.
  auto flush = [&]() -> Status {
    for (;;) {
      int f = PQflush(c_);
      if (f == 0) return {};
      if (f < 0) return fail(Code::kUnavailable, PQerrorMessage(c_));
      if (!wait_fd(fd, POLLIN | POLLOUT, deadline)) return fail(Code::kDeadlineExceeded, "COPY not taken within the call timeout");
      if (!PQconsumeInput(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
    }
  };
  // The next result within the deadline (null: none left).
  auto next_result = [&](pg_result** out) -> Status {
    while (PQisBusy(c_)) {
      if (!wait_fd(fd, POLLIN, deadline)) return fail(Code::kDeadlineExceeded, "no answer within the call timeout");
      if (!PQconsumeInput(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
    }
    *out = PQgetResult(c_);
    return {};
  };
  GANTRY_RETURN_IF_ERROR(flush());
  pg_result* r = nullptr;
  GANTRY_RETURN_IF_ERROR(next_result(&r));
  if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
    Status st = result_status(r, c_, where);
    if (r) PQclear(r);
    while (PQgetResult(c_)) {
    }
    if (st.is_ok() || st.code() == Code::kUnavailable) st = Status(Code::kInvalidArgument, "not a COPY … FROM STDIN statement", where);
    return st;
  }
  PQclear(r);
  std::string chunk;
  chunk.reserve(1 << 16);
  auto put = [&](std::string_view data) -> Status {
    for (;;) {
      int p = PQputCopyData(c_, data.data(), static_cast<int>(data.size()));
      if (p == 1) return {};
      if (p < 0) return fail(Code::kUnavailable, PQerrorMessage(c_));
      GANTRY_RETURN_IF_ERROR(flush());  // 0: the buffer is full, send some first
    }
  };
  for (const std::string& line : lines) {
    chunk += line;
    if (chunk.size() >= (1 << 16)) {
      GANTRY_RETURN_IF_ERROR(put(chunk));
      chunk.clear();
    }
  }
  if (!chunk.empty()) GANTRY_RETURN_IF_ERROR(put(chunk));
  for (;;) {
    int e = PQputCopyEnd(c_, nullptr);
    if (e == 1) break;
    if (e < 0) return fail(Code::kUnavailable, PQerrorMessage(c_));
    GANTRY_RETURN_IF_ERROR(flush());
  }
  GANTRY_RETURN_IF_ERROR(flush());
  Status outcome;
  int64_t copied = 0;
  for (;;) {
    pg_result* res = nullptr;
    GANTRY_RETURN_IF_ERROR(next_result(&res));
    if (!res) break;
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      const char* n = PQcmdTuples(res);
      copied = n && *n ? std::strtoll(n, nullptr, 10) : 0;
    } else if (outcome.is_ok()) {
      outcome = result_status(res, c_, where);
    }
    PQclear(res);
  }
  if (!outcome.is_ok()) return outcome;
  return copied;
}

std::vector<Result<Rows>> Connection::pipeline(std::span<const Statement> statements) {
  return run_pipeline(statements, /*sync_each=*/false);
}

std::vector<Result<Rows>> Connection::batch(std::span<const Statement> statements) {
  return run_pipeline(statements, /*sync_each=*/true);
}

std::vector<Result<Rows>> Connection::run_pipeline(std::span<const Statement> statements, bool sync_each) {
  std::vector<Result<Rows>> out;
  out.reserve(statements.size());
  auto all_fail = [&](const Status& s) {
    out.clear();
    for (size_t i = 0; i < statements.size(); ++i) out.emplace_back(s);
    return std::move(out);
  };
  if (statements.empty()) return out;
  if (Status s = ensure_connected(); !s.is_ok()) return all_fail(s);
  std::string where = "postgres pipeline [" + brief(statements.front().sql) + "]";
  auto deadline = std::chrono::steady_clock::now() + call_timeout();
  auto fail = [&](Code code, std::string msg) {
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    Status st(code, msg, where);
    lose(st);
    return all_fail(st);
  };
  if (!PQenterPipelineMode(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
  for (const Statement& st : statements) {
    std::vector<const char*> values;
    for (auto& p : st.params) values.push_back(p ? p->c_str() : nullptr);
    if (!PQsendQueryParams(c_, st.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                           nullptr, 0))
      return fail(Code::kUnavailable, PQerrorMessage(c_));
    // A Sync ends an implicit transaction: after each statement, each commits (or fails) alone.
    if (sync_each && !PQpipelineSync(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
  }
  if (!sync_each && !PQpipelineSync(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
  int fd = PQsocket(c_);
  for (;;) {
    int f = PQflush(c_);
    if (f == 0) break;
    if (f < 0) return fail(Code::kUnavailable, PQerrorMessage(c_));
    if (!wait_fd(fd, POLLIN | POLLOUT, deadline)) return fail(Code::kDeadlineExceeded, "pipeline not sent within the call timeout");
    if (!PQconsumeInput(c_)) return fail(Code::kUnavailable, PQerrorMessage(c_));
  }
  auto next_result = [&](pg_result** r) -> bool {
    while (PQisBusy(c_)) {
      if (!wait_fd(fd, POLLIN, deadline)) return false;
      if (!PQconsumeInput(c_)) return false;
    }
    *r = PQgetResult(c_);
    return true;
  };
  // Per statement: its result, then a null that ends it; then the sync's result.
  for (size_t i = 0; i < statements.size(); ++i) {
    pg_result* r = nullptr;
    if (!next_result(&r)) return fail(Code::kDeadlineExceeded, "no answer within the call timeout");
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      out.emplace_back(Rows(r));
    } else if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(r);
      out.emplace_back(Status(Code::kAborted, "not run: an earlier statement of the pipeline failed", where));
    } else {
      out.emplace_back(result_status(r, c_, where));
      if (r) PQclear(r);
    }
    pg_result* end = nullptr;
    if (!next_result(&end)) return fail(Code::kDeadlineExceeded, "no answer within the call timeout");
    if (end) PQclear(end);  // not expected: one result per statement
    if (sync_each || i + 1 == statements.size()) {
      pg_result* sync = nullptr;
      if (!next_result(&sync)) return fail(Code::kDeadlineExceeded, "no answer within the call timeout");
      if (sync) PQclear(sync);
    }
  }
  PQexitPipelineMode(c_);
  return out;
}

Status Connection::exec(std::string_view sql) {
  auto r = run(sql, nullptr);
  return r.is_ok() ? Status() : r.status();
}

Result<bool> Connection::try_lock(int64_t key) {
  auto r = query("SELECT pg_try_advisory_lock($1::bigint)", {std::to_string(key)});
  if (!r.is_ok()) return r.status();
  bool got = r->get(0, 0) == "t";
  if (got) locks_.insert(key);
  return got;
}

Status Connection::unlock(int64_t key) {
  locks_.erase(key);
  auto r = query("SELECT pg_advisory_unlock($1::bigint)", {std::to_string(key)});
  return r.is_ok() ? Status() : r.status();
}

bool Connection::holds(int64_t key) { return locks_.count(key) > 0 && session_alive(); }

Result<int> Connection::schema_version(std::string_view table) {
  std::string t(table);
  GANTRY_RETURN_IF_ERROR(exec("CREATE TABLE IF NOT EXISTS " + t +
                              " (version integer PRIMARY KEY, description text NOT NULL, "
                              "applied_at timestamptz NOT NULL DEFAULT now())"));
  auto r = query("SELECT COALESCE(MAX(version), 0) FROM " + t);
  if (!r.is_ok()) return r.status();
  return static_cast<int>(r->int64(0, 0));
}

Status Connection::migrate(std::span<const Migration> migrations, std::string_view table) {
  std::string t(table);
  // A migration may rewrite a big table: no statement timeout, and an hour's client budget.
  struct Unbounded {
    Connection& c;
    explicit Unbounded(Connection& cc) : c(cc) { c.limit_override_ = std::chrono::hours(1); }
    ~Unbounded() { c.limit_override_.reset(); }
  } unbounded(*this);
  GANTRY_RETURN_IF_ERROR(exec("SET statement_timeout = 0"));
  auto locked = query("SELECT pg_advisory_lock($1::bigint)", {std::to_string(kMigrationLock)});
  if (!locked.is_ok()) return locked.status();
  Status s;
  auto current = schema_version(table);
  if (!current.is_ok()) {
    s = current.status();
  } else {
    s = apply_migrations(
        migrations, *current,
        [this, &t](int version) -> Result<std::optional<std::string>> {
          auto r = query("SELECT description FROM " + t + " WHERE version = $1", {std::to_string(version)});
          if (!r.is_ok()) return r.status();
          if (r->size() == 0) return std::optional<std::string>();
          return std::optional<std::string>(std::string(r->get(0, 0)));
        },
        [this, &t](const Migration& m) {
          return transaction([&]() -> Status {
            GANTRY_RETURN_IF_ERROR(exec(m.sql));
            auto ins = query("INSERT INTO " + t + "(version, description) VALUES ($1, $2)",
                             {std::to_string(m.version), m.description});
            return ins.is_ok() ? Status() : ins.status();
          });
        },
        "postgres.migrate");
  }
  (void)query("SELECT pg_advisory_unlock($1::bigint)", {std::to_string(kMigrationLock)});
  (void)exec("RESET statement_timeout");
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
