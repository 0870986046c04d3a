#include "store/postgres/listener.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

namespace gantry::store::postgres {

namespace {
const core::log::Logger listener_log("pg.listener");
}

Listener::Listener(std::string url, std::vector<std::string> channels, Handlers h, Settings s)
    : url_(std::move(url)),
      channels_(std::move(channels)),
      h_(std::move(h)),
      s_(std::move(s)),
      breaker_("postgres:listen", core::resilience::BreakerRegistry::preset("postgres")) {}

Listener::~Listener() {
  stop();
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

Status Listener::open_session() {
  listening_ = false;
  if (!conn_) {
    GANTRY_ASSIGN(c, Connection::connect(url_, s_.pg));
    conn_ = std::move(c);
    conn_->on_session_lost([this](const Status& why, const std::set<int64_t>&) {
      listening_ = false;
      lost_why_ = why;
    });
  }
  for (const std::string& ch : channels_) {
    if (!conn_->raw()) GANTRY_RETURN_IF_ERROR(conn_->exec("SELECT 1"));  // a new session
    char* quoted = PQescapeIdentifier(conn_->raw(), ch.data(), ch.size());
    if (!quoted) return Status(core::Code::kInvalidArgument, "bad channel name '" + ch + "'", "pg.listener");
    std::string sql = std::string("LISTEN ") + quoted;
    PQfreemem(quoted);
    GANTRY_RETURN_IF_ERROR(conn_->exec(sql));
  }
  listening_ = true;
  ++sessions_;
  return {};
}

Status Listener::start() {
  if (thread_.joinable()) return {};
  if (wake_[0] < 0) {
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) return core::io_error("pipe2 failed");
  }
  GANTRY_RETURN_IF_ERROR(open_session().within("pg.listener"));
  {
    std::lock_guard lk(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { loop(); });
  return {};
}

void Listener::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  conn_.reset();
  listening_ = false;
}

bool Listener::wait_backoff(std::chrono::nanoseconds d) {
  std::unique_lock lk(mu_);
  return !cv_.wait_for(lk, d, [this] { return stopping_; });
}

void Listener::loop() {
  auto next_ping = std::chrono::steady_clock::now() + s_.ping_interval;
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
    }
    if (!listening_) {
      // Recover: a new session, LISTEN again, then tell the owner what may have been missed.
      Status why = lost_why_.is_ok() ? Status(core::Code::kUnavailable, "session lost", "pg.listener") : lost_why_;
      core::resilience::Backoff backoff(s_.reconnect, core::Clock::real(), core::Random::real());
      for (;;) {
        Status s = breaker_.call([this] { return open_session(); });
        if (s.is_ok()) break;
        auto wait = backoff.next(s);
        if (!wait.is_ok()) wait = std::chrono::nanoseconds(s_.reconnect.max_delay);
        if (backoff.attempts() % 20 == 1) listener_log.warn("cannot listen again; retrying", {{"error", s.to_string()}});
        if (!wait_backoff(*wait)) return;
      }
      listener_log.info("listening again; notifications may have been missed", {{"reason", why.to_string()}});
      lost_why_ = Status();
      if (h_.on_missed) h_.on_missed(why);
      next_ping = std::chrono::steady_clock::now() + s_.ping_interval;
      continue;
    }
    pg_conn* c = conn_->raw();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_ping - std::chrono::steady_clock::now());
    pollfd p[2] = {{PQsocket(c), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int n = ::poll(p, 2, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n > 0 && (p[1].revents & POLLIN)) {
      char buf[16];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
      continue;  // stop() was called
    }
    if (n > 0 && p[0].revents) {
      if (!PQconsumeInput(c)) {
        (void)conn_->session_alive();  // reports the loss (listening_ turns false)
        continue;
      }
    }
    if (std::chrono::steady_clock::now() >= next_ping) {
      // A frozen server sends nothing and keepalives are answered by its kernel: only a ping
      // with a deadline tells. Notifications that arrive meanwhile stay queued in libpq.
      (void)conn_->exec("SELECT 1");
      next_ping = std::chrono::steady_clock::now() + s_.ping_interval;
      if (!listening_) continue;
      c = conn_->raw();
    }
    while (PGnotify* note = PQnotifies(c)) {
      if (h_.on_notify) h_.on_notify(note->relname, note->extra ? note->extra : "");
      PQfreemem(note);
    }
  }
}

}  // namespace gantry::store::postgres
