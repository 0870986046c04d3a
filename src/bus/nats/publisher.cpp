#include "bus/nats/publisher.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <optional>
#include <random>
#include <vector>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include "bus/nats/ack.h"
#include "core/log.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"

namespace gantry::bus::nats {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using core::Code;
using Clock = std::chrono::steady_clock;

namespace {

const core::log::Logger publisher_log("nats");
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kTick = std::chrono::milliseconds(100);

struct Endpoint {
  std::string host, port, user, password;
  bool has_password = false;
  std::string text;  // host:port, for messages
};

Result<std::vector<Endpoint>> parse_urls(std::string_view urls) {
  std::vector<Endpoint> out;
  size_t start = 0;
  while (start <= urls.size()) {
    size_t comma = urls.find(',', start);
    std::string_view u = urls.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!u.empty() && u.front() == ' ') u.remove_prefix(1);
    while (!u.empty() && u.back() == ' ') u.remove_suffix(1);
    if (!u.empty()) {
      Endpoint e;
      if (auto s = u.find("://"); s != std::string_view::npos) {
        std::string_view scheme = u.substr(0, s);
        if (scheme != "nats")
          return Status(Code::kInvalidArgument,
                        "NATS URL '" + std::string(u) + "': only nats:// (plain TCP) is supported, not " + std::string(scheme) + "://",
                        "nats.url");
        u.remove_prefix(s + 3);
      }
      if (auto at = u.rfind('@'); at != std::string_view::npos) {
        std::string_view cred = u.substr(0, at);
        u.remove_prefix(at + 1);
        auto colon = cred.find(':');
        e.user = std::string(cred.substr(0, colon));
        if (colon != std::string_view::npos) {
          e.password = std::string(cred.substr(colon + 1));
          e.has_password = true;
        }
      }
      if (auto slash = u.find('/'); slash != std::string_view::npos) u = u.substr(0, slash);
      size_t rb = u.find(']');  // [v6addr]:port
      size_t colon = u.rfind(':');
      if (colon != std::string_view::npos && (rb == std::string_view::npos || colon > rb)) {
        e.host = std::string(u.substr(0, colon));
        e.port = std::string(u.substr(colon + 1));
      } else {
        e.host = std::string(u);
      }
      if (e.port.empty()) e.port = "4222";
      if (!e.host.empty() && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
      int port = 0;
      auto [p, ec] = std::from_chars(e.port.data(), e.port.data() + e.port.size(), port);
      if (e.host.empty() || ec != std::errc() || p != e.port.data() + e.port.size() || port < 1 || port > 65535)
        return Status(Code::kInvalidArgument, "NATS URL '" + std::string(urls.substr(start, comma - start)) + "': expected nats://host:port",
                      "nats.url");
      e.text = e.host + ":" + e.port;
      out.push_back(std::move(e));
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return Status(Code::kInvalidArgument, "no NATS URL given", "nats.url");
  return out;
}

std::string random_token(size_t n) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::mt19937_64 g((static_cast<uint64_t>(rd()) << 32) ^ rd());
  std::string s(n, '0');
  for (auto& c : s) c = kAlphabet[g() % (sizeof kAlphabet - 1)];
  return s;
}

bool clean_token(std::string_view s) {  // a subject or header value the protocol can carry
  for (char c : s)
    if (c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '\0') return false;
  return true;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}


}  // namespace

class Publisher::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& ioc, Options o, Result<std::vector<Endpoint>> eps)
      : ioc_(ioc), o_(std::move(o)), sock_(ioc), tick_(ioc), retry_(ioc) {
    if (eps.is_ok())
      eps_ = std::move(*eps);
    else
      config_error_ = eps.status();
    in_.resize(64 * 1024);
  }

  Status connect() {
    if (eps_.empty()) return config_error_;
    if (!ticking_) {
      ticking_ = true;
      start_ticking();
    }
    Status last;
    for (size_t i = 0; i < eps_.size(); ++i) {
      std::optional<Status> result;
      asio::co_spawn(ioc_, handshake(shared_from_this(), gen_), [&result](std::exception_ptr e, Status s) {
        result = e ? Status(Code::kInternal, "handshake threw", "nats.connect") : s;
      });
      while (!result) {
        if (ioc_.stopped()) ioc_.restart();
        ioc_.run_one_for(std::chrono::milliseconds(50));
      }
      if (ioc_.stopped()) ioc_.restart();
      if (result->is_ok()) return {};
      last = *result;
    }
    schedule_reconnect();
    return last;
  }

  Status publish(std::string_view subject, std::string_view data, std::string_view msg_id, Done done) {
    if (!connected_.load(std::memory_order_relaxed))
      return Status(Code::kUnavailable, closed_ ? "publisher closed" : "not connected to NATS", "nats.publish");
    if (live_ >= o_.max_in_flight)
      return Status(Code::kUnavailable, "too many publishes awaiting JetStream acks (" + std::to_string(live_) + ")", "nats.publish");
    if (static_cast<int64_t>(data.size()) > max_payload_)
      return Status(Code::kInvalidArgument,
                    "message of " + std::to_string(data.size()) + " bytes over the server's max_payload " + std::to_string(max_payload_),
                    "nats.publish");
    if (subject.empty() || !clean_token(subject) || !clean_token(msg_id))
      return Status(Code::kInvalidArgument, "subject or message id with spaces or control characters", "nats.publish");
    if (out_.size() + writing_.size() + data.size() + subject.size() + msg_id.size() + 128 > o_.max_buffered_bytes)
      return Status(Code::kUnavailable,
                    "write buffer full: " + std::to_string(out_.size() + writing_.size()) +
                        " bytes not yet taken by the server",
                    "nats.publish");
    uint64_t seq = next_seq_++;
    pending_.push_back({std::move(done), coarse_now_ + o_.ack_timeout});
    ++live_;
    live_count_.store(live_, std::memory_order_relaxed);
    if (msg_id.empty()) {
      out_ += "PUB ";
      out_ += subject;
      out_ += ' ';
      out_ += inbox_;
      append_uint(out_, seq);
      out_ += ' ';
      append_uint(out_, data.size());
      out_ += "\r\n";
    } else {
      // NATS/1.0\r\nNats-Msg-Id: <id>\r\n\r\n
      size_t hdr = 10 + 13 + msg_id.size() + 2 + 2;
      out_ += "HPUB ";
      out_ += subject;
      out_ += ' ';
      out_ += inbox_;
      append_uint(out_, seq);
      out_ += ' ';
      append_uint(out_, hdr);
      out_ += ' ';
      append_uint(out_, hdr + data.size());
      out_ += "\r\nNATS/1.0\r\nNats-Msg-Id: ";
      out_ += msg_id;
      out_ += "\r\n\r\n";
    }
    out_ += data;
    out_ += "\r\n";
    schedule_flush();
    return {};
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    tick_.cancel();
    retry_.cancel();
    drop("publisher closed");
  }

  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  size_t in_flight() const { return live_count_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    Done done;
    Clock::time_point deadline;
  };

  // Ends the current connection: everything pending fails (it may have been stored; the
  // caller resends by id), and unless closed, a reconnection is scheduled.
  void drop(const std::string& why) {
    ++gen_;
    bool was = connected_.exchange(false);
    boost::system::error_code ec;
    sock_.close(ec);
    out_.clear();
    in_len_ = 0;
    pings_out_ = 0;
    std::vector<Done> failed;
    for (auto& p : pending_)
      if (p.done) failed.push_back(std::move(p.done));
    first_seq_ = next_seq_;
    pending_.clear();
    live_ = 0;
    live_count_.store(0, std::memory_order_relaxed);
    if (was && !closed_) publisher_log.warn("connection lost", {{"server", eps_.empty() ? "" : eps_[cur_ % eps_.size()].text}, {"error", why}, {"failed_publishes", static_cast<long long>(failed.size())}});
    for (auto& d : failed) d(Status(Code::kUnavailable, "NATS connection lost before the ack: " + why, "nats.publish"));
    if (!closed_) schedule_reconnect();
  }

  void schedule_reconnect() {
    if (closed_ || reconnecting_ || eps_.empty()) return;
    reconnecting_ = true;
    // The shared reconnect policy, starting at reconnect_wait: each failed attempt in a row
    // doubles the wait, up to 5 s (jittered), so a server that stays down is not hammered.
    core::resilience::RetryPolicy p = core::resilience::RetryPolicy::reconnect();
    p.base_delay = o_.reconnect_wait;
    p.max_delay = std::max(p.max_delay, o_.reconnect_wait);
    int n = static_cast<int>(std::min<uint64_t>(failed_attempts_, 30)) + 1;
    retry_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        p.delay(n, core::Random::real().uniform())));
    retry_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->reconnecting_ = false;
      if (ec || self->closed_ || self->connected_) return;
      // Through the "nats" breaker preset: while it is open the attempt fails at once and the
      // backoff goes on.
      auto admitted = self->breaker_.acquire();
      if (!admitted.is_ok()) {
        ++self->failed_attempts_;
        self->schedule_reconnect();
        return;
      }
      auto permit = std::make_shared<core::resilience::CircuitBreaker::Permit>(std::move(*admitted));
      self->reconnecting_ = true;
      asio::co_spawn(self->ioc_, self->handshake(self, self->gen_), [self, permit](std::exception_ptr e, Status s) {
        self->reconnecting_ = false;
        if (e) s = Status(Code::kInternal, "handshake threw", "nats.connect");  // one more failed attempt, not the end
        if (s.is_ok()) permit->success();
        else permit->failure();
        if (self->closed_ || self->connected_) return;
        if (!s.is_ok()) {
          if (self->failed_attempts_++ % 40 == 0)
            publisher_log.warn("reconnect failed; retrying", {{"error", s.to_string()}, {"attempts", static_cast<long long>(self->failed_attempts_)}});
          self->schedule_reconnect();
        }
      });
    });
  }

  asio::awaitable<Status> handshake(std::shared_ptr<Impl> self, uint64_t gen) {
    const Endpoint& ep = eps_[cur_++ % eps_.size()];
    // One deadline over the whole handshake: when it passes, the socket is closed, which
    // fails whatever step is waiting.
    struct Watch {
      bool done = false;
      bool fired = false;
    };
    auto watch = std::make_shared<Watch>();
    asio::steady_timer deadline(ioc_);
    deadline.expires_after(o_.connect_timeout);
    deadline.async_wait([self, watch, gen](boost::system::error_code ec) {
      if (ec || watch->done || self->gen_ != gen) return;
      watch->fired = true;
      boost::system::error_code ignored;
      self->sock_.close(ignored);
    });
    struct Finish {
      std::shared_ptr<Watch> w;
      asio::steady_timer& t;
      ~Finish() {
        w->done = true;
        t.cancel();
      }
    } finish{watch, deadline};

    auto fail = [&](const std::string& what) {
      boost::system::error_code ignored;
      if (gen_ == gen) sock_.close(ignored);
      return Status(Code::kUnavailable, (watch->fired ? "timed out: " : "") + what + " (" + ep.text + ")", "nats.connect");
    };

    tcp::resolver resolver(ioc_);
    auto [rec, results] = co_await resolver.async_resolve(ep.host, ep.port, kTuple);
    if (rec) co_return fail("cannot resolve: " + rec.message());
    if (gen_ != gen || closed_) co_return Status(Code::kCancelled, "superseded", "nats.connect");
    boost::system::error_code ignored;
    sock_.close(ignored);
    auto [cec, endpoint] = co_await asio::async_connect(sock_, results, kTuple);
    if (cec) co_return fail("cannot connect: " + cec.message());
    sock_.set_option(tcp::no_delay(true), ignored);

    std::string buf;
    auto read_line = [&]() -> asio::awaitable<std::optional<std::string>> {
      auto [ec, n] = co_await asio::async_read_until(sock_, asio::dynamic_buffer(buf, 1 << 20), "\r\n", kTuple);
      if (ec) co_return std::nullopt;
      std::string line = buf.substr(0, n - 2);
      buf.erase(0, n);
      co_return line;
    };
    auto info = co_await read_line();
    if (!info || info->rfind("INFO ", 0) != 0) co_return fail("no INFO from the server; is this a NATS port?");
    boost::system::error_code jec;
    auto iv = boost::json::parse(std::string_view(*info).substr(5), jec);
    if (jec || !iv.is_object()) co_return fail("unreadable INFO");
    const auto& io = iv.as_object();
    auto flag = [&](const char* k) {
      auto* v = io.if_contains(k);
      return v && v->is_bool() && v->as_bool();
    };
    if (flag("tls_required")) co_return fail("the server requires TLS, which this publisher does not speak");
    if (!flag("headers")) co_return fail("the server does not support message headers (NATS 2.2 or newer needed)");
    if (auto* mp = io.if_contains("max_payload"); mp && mp->is_int64()) max_payload_ = mp->as_int64();

    boost::json::object c{{"verbose", false}, {"pedantic", false}, {"headers", true}, {"no_responders", true},
                          {"protocol", 1}, {"lang", "cpp"}, {"version", "gantry"}, {"name", o_.name}};
    if (!ep.user.empty() && ep.has_password) {
      c["user"] = ep.user;
      c["pass"] = ep.password;
    } else if (!ep.user.empty()) {
      c["auth_token"] = ep.user;
    }
    std::string inbox = "_INBOX." + random_token(22) + ".";
    std::string hello = "CONNECT " + boost::json::serialize(c) + "\r\nSUB " + inbox + "* 1\r\nPING\r\n";
    auto [wec, wn] = co_await asio::async_write(sock_, asio::buffer(hello), kTuple);
    if (wec) co_return fail("cannot send CONNECT: " + wec.message());
    for (;;) {
      auto line = co_await read_line();
      if (!line) co_return fail("connection closed during the handshake");
      if (*line == "PONG") break;
      if (line->rfind("-ERR", 0) == 0) co_return fail("server refused the connection: " + line->substr(4));
      // +OK, PING, INFO updates: nothing to do before the PONG
    }
    if (gen_ != gen || closed_) co_return Status(Code::kCancelled, "superseded", "nats.connect");

    inbox_ = std::move(inbox);
    in_len_ = buf.size();
    if (in_.size() < in_len_) in_.resize(in_len_);
    std::copy(buf.begin(), buf.end(), in_.begin());
    pings_out_ = 0;
    next_ping_ = coarse_now_ + o_.ping_interval;
    connected_ = true;
    if (failed_attempts_ > 0 || ever_connected_) publisher_log.info("connected", {{"server", ep.text}});
    failed_attempts_ = 0;
    ever_connected_ = true;
    --cur_;  // stay on this server for the next reconnection
    parse();  // what arrived with the PONG, before the next read appends to the buffer
    if (gen_ == gen) start_read(gen);
    co_return Status{};
  }

  void start_ticking() {
    coarse_now_ = Clock::now();
    tick_.expires_after(kTick);
    tick_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      self->on_tick();
      self->start_ticking();
    });
  }

  void on_tick() {
    coarse_now_ = Clock::now();
    std::vector<Done> late;
    while (!pending_.empty() && (!pending_.front().done || pending_.front().deadline <= coarse_now_)) {
      if (pending_.front().done) {
        late.push_back(std::move(pending_.front().done));
        --live_;
      }
      pending_.pop_front();
      ++first_seq_;
    }
    live_count_.store(live_, std::memory_order_relaxed);
    for (auto& d : late) d(Status(Code::kDeadlineExceeded, "no JetStream ack within " + std::to_string(o_.ack_timeout.count()) + " ms", "nats.publish"));
    if (connected_ && coarse_now_ >= next_ping_) {
      if (pings_out_ >= 2) return drop("server answered no PING for " + std::to_string(2 * o_.ping_interval.count()) + " ms");
      ++pings_out_;
      out_ += "PING\r\n";
      next_ping_ = coarse_now_ + o_.ping_interval;
      schedule_flush();
    }
  }

  void schedule_flush() {
    if (flush_posted_ || writing_busy_) return;
    flush_posted_ = true;
    // Posted, not written now: every publish the handlers make in this pass of the loop
    // joins the same write.
    asio::post(ioc_, [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->flush();
    });
  }

  void flush() {
    if (writing_busy_ || out_.empty() || !connected_) return;
    writing_.swap(out_);
    out_.clear();
    writing_busy_ = true;
    asio::async_write(sock_, asio::buffer(writing_), [self = shared_from_this(), gen = gen_](boost::system::error_code ec, size_t) {
      self->writing_busy_ = false;
      self->writing_.clear();
      if (gen != self->gen_) return self->flush();  // a write of a dropped connection
      if (ec) return self->drop("write failed: " + ec.message());
      self->flush();
    });
  }

  void start_read(uint64_t gen) {
    if (in_len_ == in_.size()) in_.resize(in_.size() * 2);
    sock_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                          [self = shared_from_this(), gen](boost::system::error_code ec, size_t n) {
                            if (gen != self->gen_) return;
                            if (ec) return self->drop(ec == asio::error::eof ? "server closed the connection" : "read failed: " + ec.message());
                            self->in_len_ += n;
                            self->parse();
                            if (gen == self->gen_) self->start_read(gen);
                          });
  }

  // Consumes every complete protocol message in the input buffer.
  void parse() {
    uint64_t gen = gen_;
    size_t pos = 0;
    std::string_view all(in_.data(), in_len_);
    while (gen == gen_) {
      size_t eol = all.find("\r\n", pos);
      if (eol == std::string_view::npos) break;
      std::string_view line = all.substr(pos, eol - pos);
      if (line.starts_with("MSG ") || line.starts_with("HMSG ")) {
        bool headers = line[0] == 'H';
        // [H]MSG <subject> <sid> [reply] [<header bytes>] <total bytes>
        std::string_view parts[6];
        size_t np = 0;
        for (size_t i = 0; i < line.size() && np < 6;) {
          size_t sp = line.find(' ', i);
          if (sp == std::string_view::npos) sp = line.size();
          if (sp > i) parts[np++] = line.substr(i, sp - i);
          i = sp + 1;
        }
        size_t total = 0, hdr = 0;
        bool ok = np >= (headers ? 5u : 4u);
        if (ok) {
          auto num = [](std::string_view s, size_t& v) {
            auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            return ec == std::errc() && p == s.data() + s.size();
          };
          ok = num(parts[np - 1], total) && (!headers || (num(parts[np - 2], hdr) && hdr <= total));
        }
        if (!ok) return drop("unreadable message line from the server: " + std::string(line.substr(0, 200)));
        size_t need = eol + 2 + total + 2;
        if (all.size() < need) {
          if (need - pos > in_.size()) in_.resize(need - pos);  // room for the whole message after compaction
          break;
        }
        std::string_view payload = all.substr(eol + 2, total);
        on_message(parts[1], headers ? payload.substr(0, hdr) : std::string_view(), payload.substr(hdr));
        pos = need;
      } else {
        pos = eol + 2;
        if (line == "PING") {
          out_ += "PONG\r\n";
          schedule_flush();
        } else if (line == "PONG") {
          pings_out_ = 0;
        } else if (line.starts_with("-ERR")) {
          publisher_log.warn("server error", {{"error", std::string(line.substr(4))}});
        }  // +OK and INFO updates need nothing
      }
    }
    if (gen != gen_) return;
    if (pos > 0) {
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
      in_len_ -= pos;
    }
  }

  void on_message(std::string_view subject, std::string_view headers, std::string_view body) {
    if (!subject.starts_with(inbox_)) return;
    uint64_t seq = 0;
    std::string_view tail = subject.substr(inbox_.size());
    auto [p, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), seq);
    if (ec != std::errc() || seq < first_seq_ || seq - first_seq_ >= pending_.size()) return;  // answered already (timed out)
    Done done = std::move(pending_[seq - first_seq_].done);
    if (!done) return;
    --live_;
    while (!pending_.empty() && !pending_.front().done) {
      pending_.pop_front();
      ++first_seq_;
    }
    live_count_.store(live_, std::memory_order_relaxed);
    // A status line instead of a JetStream answer: "NATS/1.0 503" is no responders, i.e. no
    // stream takes this subject.
    if (headers.size() > 12 && headers.starts_with("NATS/1.0 ")) {
      std::string_view code = headers.substr(9, 3);
      if (code == "503")
        return done(Status(Code::kUnavailable, "no JetStream stream takes this subject (no responders)", "nats.publish"));
      return done(Status(Code::kIoError, "NATS status " + std::string(code) + " instead of a JetStream ack", "nats.publish"));
    }
    done(parse_ack(body));
  }

  asio::io_context& ioc_;
  Options o_;
  std::vector<Endpoint> eps_;
  size_t cur_ = 0;
  tcp::socket sock_;
  asio::steady_timer tick_, retry_;
  uint64_t gen_ = 0;  // connection generation: handlers of a dropped connection see it changed
  std::atomic<bool> connected_{false};
  Status config_error_;
  bool closed_ = false, reconnecting_ = false, ever_connected_ = false, ticking_ = false;
  uint64_t failed_attempts_ = 0;
  core::resilience::CircuitBreaker breaker_{"nats", core::resilience::BreakerRegistry::preset("nats")};
  std::string inbox_;
  int64_t max_payload_ = 1 << 20;
  // pending_[i] is the publish with reply sequence first_seq_ + i; an answered one has an
  // empty `done` until it reaches the front.
  std::deque<Pending> pending_;
  uint64_t first_seq_ = 1, next_seq_ = 1;
  size_t live_ = 0;
  std::atomic<size_t> live_count_{0};
  Clock::time_point coarse_now_ = Clock::now(), next_ping_{};
  int pings_out_ = 0;
  std::string out_, writing_;
  bool writing_busy_ = false, flush_posted_ = false;
  std::vector<char> in_;
  size_t in_len_ = 0;
};

Publisher::Publisher(asio::io_context& ioc, Options o) {
  auto eps = parse_urls(o.urls);  // a bad list is connect()'s failure
  impl_ = std::make_shared<Impl>(ioc, std::move(o), std::move(eps));
}

Publisher::~Publisher() { impl_->close(); }

Status Publisher::connect() { return impl_->connect(); }

Status Publisher::publish(std::string_view subject, std::string_view data, std::string_view msg_id, Done done) {
  return impl_->publish(subject, data, msg_id, std::move(done));
}
void Publisher::close() { impl_->close(); }
bool Publisher::connected() const { return impl_->connected(); }
size_t Publisher::in_flight() const { return impl_->in_flight(); }

Status Publisher::check_urls(std::string_view urls) {
  auto r = parse_urls(urls);
  return r.is_ok() ? Status{} : r.status();
}

}  // namespace gantry::bus::nats
