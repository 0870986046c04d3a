#include "core/http/server.h"

#include <sys/socket.h>

#include <atomic>
#include <cmath>
#include <ctime>
#include <optional>
#include <thread>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "core/log.h"
#include "core/metrics.h"

namespace gantry::core::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

void bind(config::Schema& s, ServerOptions* o) {
  s.add("http_threads", &o->threads, "HTTP worker threads (0 = one per core)").env("HTTP_THREADS").range(0, 256);
  s.add("http_max_header_bytes", &o->max_header_bytes, "largest request header accepted (else 431)")
      .env("HTTP_MAX_HEADER_BYTES").range(1024, 1 << 20);
  s.add("http_max_body_bytes", &o->max_body_bytes, "largest request body accepted (else 413)")
      .env("HTTP_MAX_BODY_BYTES").range(0, 1LL << 32);
  s.add("http_read_timeout", &o->read_timeout, "time allowed to receive a whole request (else 408)")
      .env("HTTP_READ_TIMEOUT").range(1, 3'600'000);
  s.add("http_idle_timeout", &o->idle_timeout, "keep-alive connections idle longer are closed")
      .env("HTTP_IDLE_TIMEOUT").range(1, 86'400'000);
  s.add("http_write_timeout", &o->write_timeout, "time allowed to send a response")
      .env("HTTP_WRITE_TIMEOUT").range(1, 3'600'000);
  s.add("http_max_connections", &o->max_connections, "connections beyond this are refused")
      .env("HTTP_MAX_CONNECTIONS").range(1, 1'000'000);
  s.add("http_handler_timeout", &o->handler_timeout,
        "an asynchronous handler that has not answered within this is answered 503")
      .env("HTTP_HANDLER_TIMEOUT").range(1, 86'400'000);
  s.add("access_log", &o->access_log, "log one line per request").env("ACCESS_LOG");
}

namespace {

// An id unique within the process and very likely across processes: 28 random bits per
// thread, then a 32-bit per-thread counter. 15 hex digits fit std::string's inline buffer, so
// making one allocates nothing.
std::string new_request_id() {
  thread_local uint64_t prefix = (static_cast<uint64_t>(std::random_device{}() & 0x0fffffffu) << 32);
  thread_local uint32_t counter = 0;
  uint64_t v = prefix | ++counter;
  static constexpr char hex[] = "0123456789abcdef";
  std::string s(15, '0');
  for (int i = 14; i >= 0; --i, v >>= 4) s[i] = hex[v & 15];
  return s;
}

bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
  return true;
}

// The Date header, formatted at most once a second per thread.
std::string_view http_date() {
  thread_local time_t cached_sec = 0;
  thread_local char buf[40];
  thread_local size_t len = 0;
  time_t now = std::time(nullptr);
  if (now != cached_sec) {
    cached_sec = now;
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return {buf, len};
}

std::string_view beast_header(const void* msg, std::string_view name) {
  auto& m = *static_cast<const bhttp::request<bhttp::string_body>*>(msg);
  auto it = m.find(name);
  if (it == m.end()) return {};
  auto v = it->value();
  return v.data() ? std::string_view(v.data(), v.size()) : std::string_view("", 0);
}

}  // namespace

struct Connection {
  explicit Connection(tcp::socket s)
      : stream(std::move(s)), wake(stream.get_executor()), read_deadline(stream.get_executor()) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  asio::steady_timer wake;  // an async handler's answer wakes the session through this
  // Bounds the reading of one request. tcp_stream's own expiry would close the socket, leaving
  // no way to answer 408; this timer only cancels the read.
  asio::steady_timer read_deadline;
  bool read_timed_out = false;
  // The pending request's answer slot; replaced per request (see session()).
  std::shared_ptr<std::optional<Response>> async_result;
  bool idle = true;
  std::string remote;
};

struct Worker : std::enable_shared_from_this<Worker> {
  asio::io_context ioc{1};
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::unordered_set<std::shared_ptr<Connection>> conns;  // touched only on this worker's thread
};

class ServerImpl {
 public:
  ServerImpl(ServerOptions o, std::shared_ptr<const Router> r)
      : opts_(std::move(o)), router_(std::move(r)), lg_(opts_.name) {
    auto& reg = metrics::Registry::global();
    requests_ = &reg.counter("http_requests_total", "HTTP requests answered, by server and status code.",
                             {"server", "code"});
    duration_ = &reg.histogram("http_request_duration_seconds", "Time from a request's arrival to its response.",
                               {"server"}).with({opts_.name});
    connections_ = &reg.gauge("http_connections_active", "Open HTTP connections.", {"server"}).with({opts_.name});
    auto& failures = reg.counter("http_handler_failures_total",
                                 "Requests a handler failed to answer: it threw (exception) or did not complete "
                                 "its responder within http_handler_timeout (timeout).",
                                 {"server", "reason"});
    handler_threw_ = &failures.with({opts_.name, "exception"});
    handler_timed_out_ = &failures.with({opts_.name, "timeout"});
    for (auto& c : by_code_) c.store(nullptr, std::memory_order_relaxed);
  }

  Status start() {
    int n = opts_.threads > 0 ? opts_.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(opts_.address, ec);
    if (ec) return Status(Code::kInvalidArgument, "bad listen address '" + opts_.address + "'", opts_.name);
    uint16_t port = opts_.port;
    for (int i = 0; i < n; ++i) {
      auto w = std::make_shared<Worker>();
      w->acceptor.emplace(w->ioc);
      tcp::endpoint ep(addr, port);
      w->acceptor->open(ep.protocol(), ec);
      if (!ec) w->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        int one = 1;
        if (::setsockopt(w->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
          ec.assign(errno, boost::system::system_category());
      }
      if (!ec) w->acceptor->bind(ep, ec);
      if (!ec) w->acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        workers_.clear();
        return Status(Code::kUnavailable,
                      "cannot listen on " + opts_.address + ":" + std::to_string(port) + ": " + ec.message(), opts_.name);
      }
      if (i == 0) port = w->acceptor->local_endpoint().port();  // the others share the port chosen
      workers_.push_back(std::move(w));
    }
    port_ = port;
    if (opts_.on_worker_start) {
      for (auto& w : workers_) {
        // On failure the workers stay (not listening for long: the caller destroys the
        // server) so that what the hook attached is released before its io_context.
        Status s = opts_.on_worker_start(w->ioc);
        if (!s.is_ok()) return s;
      }
    }
    for (auto& w : workers_) {
      asio::co_spawn(w->ioc, accept_loop(*w), asio::detached);
      w->thread = std::thread([wp = w.get()] { wp->ioc.run(); });
    }
    running_ = true;
    return {};
  }

  void stop(std::chrono::milliseconds drain) {
    if (!running_.exchange(false)) return;
    draining_ = true;
    for (auto& w : workers_) {
      asio::post(w->ioc, [wp = w.get()] {
        boost::system::error_code ec;
        wp->acceptor->close(ec);
        for (auto& c : wp->conns)
          if (c->idle) c->stream.socket().cancel(ec);
      });
    }
    auto deadline = std::chrono::steady_clock::now() + drain;
    while (active_.load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (active_.load() > 0) {
      lg_.warn("drain deadline passed; closing connections", {{"open", active_.load()}});
      for (auto& w : workers_) {
        asio::post(w->ioc, [wp = w.get()] {
          boost::system::error_code ec;
          for (auto& c : wp->conns) {
            c->stream.socket().close(ec);
            c->wake.cancel();
            c->read_deadline.cancel();
          }
        });
      }
      auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (active_.load() > 0 && std::chrono::steady_clock::now() < hard)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& w : workers_) w->ioc.stop();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
  }

  uint16_t port() const { return port_; }
  const ServerOptions& options() const { return opts_; }
  int active() const { return active_.load(); }
  bool running() const { return running_; }

 private:
  asio::awaitable<void> accept_loop(Worker& w) {
    for (;;) {
      auto [ec, sock] = co_await w.acceptor->async_accept(kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !w.acceptor->is_open()) co_return;
        // EMFILE and friends: back off a little instead of spinning.
        lg_.warn("accept failed", {{"error", ec.message()}});
        asio::steady_timer t(w.ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(kTuple);
        continue;
      }
      if (active_.load(std::memory_order_relaxed) >= opts_.max_connections) {
        boost::system::error_code ignored;
        sock.close(ignored);
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(w.ioc, session(w, std::move(sock)), asio::detached);
    }
  }

  metrics::Counter& counter_for(int code) {
    if (code < 100 || code > 599) code = 599;
    metrics::Counter* c = by_code_[code].load(std::memory_order_acquire);
    if (!c) {
      c = &requests_->with({opts_.name, std::to_string(code)});
      by_code_[code].store(c, std::memory_order_release);
    }
    return *c;
  }

  // An error answer for a request that could not be read; the connection closes after it.
  asio::awaitable<void> reject(Connection& c, int status, std::string_view message, unsigned version) {
    Response r;
    r.error(status, message);
    std::string id = new_request_id();
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), version ? version : 11};
    res.set(bhttp::field::server, "gantry");
    res.set(bhttp::field::date, http_date());
    res.set(bhttp::field::content_type, r.content_type);
    res.set("X-Request-ID", id);
    res.keep_alive(false);
    res.body() = std::move(r.body);
    res.prepare_payload();
    c.stream.expires_after(std::chrono::seconds(2));
    co_await bhttp::async_write(c.stream, res, kTuple);
    counter_for(status).inc();
    if (opts_.access_log)
      lg_.info("request rejected", {{"request_id", id}, {"status", status}, {"reason", message}, {"remote", c.remote}});
  }

  Response handler_failed(const Request& req, int status, std::string_view message, std::string_view reason,
                          std::string_view detail) {
    (reason == "timeout" ? handler_timed_out_ : handler_threw_)->inc();
    lg_.error("handler failed", {{"request_id", req.request_id()},
                                 {"method", req.method_text()},
                                 {"path", req.path()},
                                 {"reason", reason},
                                 {"error", detail}});
    Response r;
    r.error(status, message);
    return r;
  }

  // The frame is owned by w's io_context, so w outlives it; hence a plain reference.
  asio::awaitable<void> session(Worker& w, tcp::socket sock) {
    auto conn = std::make_shared<Connection>(std::move(sock));
    Connection& c = *conn;
    {
      boost::system::error_code ec;
      auto ep = c.stream.socket().remote_endpoint(ec);
      if (!ec) c.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    w.conns.insert(conn);
    active_.fetch_add(1);
    connections_->inc();

    for (;;) {
      // 1. Wait for the next request (keep-alive idle time).
      if (c.buffer.size() == 0) {
        c.idle = true;
        if (draining_) break;
        c.stream.expires_after(opts_.idle_timeout);
        auto [ec, n] = co_await c.stream.async_read_some(c.buffer.prepare(4096), kTuple);
        c.idle = false;
        if (ec) break;  // closed, idle timeout, or drained
        c.buffer.commit(n);
      }
      c.idle = false;
      auto started = std::chrono::steady_clock::now();

      // 2. Read the request within read_timeout.
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts_.max_header_bytes));
      parser.body_limit(static_cast<std::uint64_t>(opts_.max_body_bytes));
      c.stream.expires_never();
      c.read_timed_out = false;
      c.read_deadline.expires_after(opts_.read_timeout);
      c.read_deadline.async_wait([conn](boost::system::error_code ec) {
        if (ec) return;  // cancelled: the request arrived in time
        conn->read_timed_out = true;
        boost::system::error_code ignored;
        conn->stream.socket().cancel(ignored);
      });
      auto [hec, hn] = co_await bhttp::async_read_header(c.stream, c.buffer, parser, kTuple);
      boost::system::error_code ec = hec;
      if (!ec && !parser.is_done()) {
        if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser.get().version()};
          c.stream.expires_after(opts_.write_timeout);
          auto [wec, wn] = co_await bhttp::async_write(c.stream, cont, kTuple);
          c.stream.expires_never();
          if (wec) {
            c.read_deadline.cancel();
            break;
          }
        }
        auto [bec, bn] = co_await bhttp::async_read(c.stream, c.buffer, parser, kTuple);
        ec = bec;
      }
      c.read_deadline.cancel();
      if (ec && c.read_timed_out) ec = beast::error::timeout;
      if (ec) {
        unsigned version = parser.is_header_done() ? parser.get().version() : 11;
        if (ec == bhttp::error::header_limit) {
          co_await reject(c, 431, "request header larger than " + std::to_string(opts_.max_header_bytes) + " bytes", version);
        } else if (ec == bhttp::error::body_limit) {
          co_await reject(c, 413, "request body larger than " + std::to_string(opts_.max_body_bytes) + " bytes", version);
        } else if (ec == beast::error::timeout) {
          co_await reject(c, 408, "request not received within " + config::format(opts_.read_timeout), version);
        } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                   ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
                   ec == bhttp::error::partial_message) {
          // the client went away mid-request; nobody to answer
        } else {
          co_await reject(c, 400, "malformed request: " + ec.message(), version);
        }
        break;
      }

      // 3. Dispatch.
      auto& msg = parser.get();
      Request req;
      std::string_view target(msg.target().data(), msg.target().size());
      req.method_text_ = std::string_view(msg.method_string().data(), msg.method_string().size());
      req.method_ = method_from(req.method_text_);
      req.target_ = target;
      auto q = target.find('?');
      req.path_ = target.substr(0, q);
      if (q != std::string_view::npos) req.query_ = target.substr(q + 1);
      req.body_ = &msg.body();
      req.header_fn_ = &beast_header;
      req.msg_ = &msg;
      req.remote_ = c.remote;
      req.ioc_ = &w.ioc;
      auto client_id = beast_header(&msg, "X-Request-ID");
      req.request_id_ = acceptable_request_id(client_id) ? std::string(client_id) : new_request_id();

      Response resp;
      // A request answered later gets its own slot, made when the handler asks for a Responder
      // (a synchronous answer allocates none): a Responder outliving its deadline writes into a
      // slot nobody reads any more instead of into the next request's answer.
      std::shared_ptr<std::optional<Response>> slot;
      bool done = true;
      try {
        done = router_->dispatch(req, resp, [&slot, &c, weak_worker = w.weak_from_this(),
                                             weak = std::weak_ptr<Connection>(conn)] {
          if (!slot) {
            slot = std::make_shared<std::optional<Response>>();
            c.async_result = slot;
          }
          return Responder([weak_worker, weak, slot](Response&& r) {
            auto worker = weak_worker.lock();
            if (!worker) return;  // the server is gone; nobody to answer
            auto deliver = [weak, slot](Response&& r) {
              auto cp = weak.lock();
              if (!cp || cp->async_result != slot) return;  // answered 503 already, or closed
              *slot = std::move(r);
              cp->wake.cancel();
            };
            if (worker->ioc.get_executor().running_in_this_thread()) {  // answered on the connection's own thread
              deliver(std::move(r));
              return;
            }
            asio::post(worker->ioc, [deliver, r = std::move(r)]() mutable { deliver(std::move(r)); });
          });
        });
      } catch (const std::exception& e) {
        resp = handler_failed(req, 500, "internal error: the handler failed", "exception", e.what());
        done = true;
      } catch (...) {
        resp = handler_failed(req, 500, "internal error: the handler failed", "exception", "unknown exception");
        done = true;
      }
      if (!done && !slot) {  // asynchronous without a Responder: nothing can answer it
        resp = handler_failed(req, 500, "internal error: the handler failed", "exception", "no responder taken");
        done = true;
      }
      if (!done) {
        auto deadline = std::chrono::steady_clock::now() + opts_.handler_timeout;
        while (!*slot) {
          if (!c.stream.socket().is_open()) break;  // force-closed while waiting
          if (std::chrono::steady_clock::now() >= deadline) {
            *slot = handler_failed(req, 503, "the handler did not answer within " + config::format(opts_.handler_timeout),
                                   "timeout", "responder not completed");
            break;
          }
          c.wake.expires_at(deadline);
          co_await c.wake.async_wait(kTuple);
        }
        if (!*slot) {
          c.async_result.reset();
          break;
        }
        resp = std::move(**slot);
      }
      c.async_result.reset();

      // 4. Answer.
      bool keep_alive = msg.keep_alive() && !resp.close && !draining_;
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(resp.status), msg.version()};
      res.set(bhttp::field::server, "gantry");
      res.set(bhttp::field::date, http_date());
      res.set("X-Request-ID", req.request_id_);
      for (auto& [k, v] : resp.headers) res.insert(k, v);
      bool no_body = resp.status == 204 || resp.status == 304 || resp.status < 200;
      size_t body_bytes = resp.body.size();
      if (!no_body) {
        res.set(bhttp::field::content_type, resp.content_type);
        res.body() = std::move(resp.body);
        res.prepare_payload();
        if (req.method_ == Method::kHead) {
          res.body().clear();  // Content-Length stays that of the GET answer
        }
      }
      res.keep_alive(keep_alive);
      c.stream.expires_after(opts_.write_timeout);
      auto [wec, wn] = co_await bhttp::async_write(c.stream, res, kTuple);

      counter_for(resp.status).inc();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      duration_->observe(secs);
      if (opts_.access_log && log::enabled(log::Level::kInfo)) {
        lg_.info("request", {{"request_id", req.request_id_},
                             {"method", req.method_text_},
                             {"path", req.path_},
                             {"status", resp.status},
                             {"duration_ms", std::round(secs * 1e6) / 1e3},
                             {"bytes_in", static_cast<long long>(msg.body().size())},
                             {"bytes_out", static_cast<long long>(no_body ? 0 : body_bytes)},
                             {"remote", c.remote}});
      }
      if (wec || !keep_alive) break;
    }

    boost::system::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.stream.socket().close(ignored);
    w.conns.erase(conn);
    connections_->dec();
    active_.fetch_sub(1);
  }

  ServerOptions opts_;
  std::shared_ptr<const Router> router_;
  log::Logger lg_;
  // Shared so that a Responder completed after the server is gone finds no worker (weak_ptr)
  // instead of a freed one.
  std::vector<std::shared_ptr<Worker>> workers_;
  std::atomic<int> active_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> running_{false};
  uint16_t port_ = 0;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Histogram* duration_;
  metrics::Gauge* connections_;
  metrics::Counter* handler_threw_;
  metrics::Counter* handler_timed_out_;
  std::array<std::atomic<metrics::Counter*>, 600> by_code_;
};

Server::Server(ServerOptions opts, std::shared_ptr<const Router> router)
    : impl_(std::make_unique<ServerImpl>(std::move(opts), std::move(router))) {}
Server::~Server() {
  if (impl_ && impl_->running()) impl_->stop(std::chrono::milliseconds(1000));
}
Status Server::start() { return impl_->start(); }
uint16_t Server::port() const { return impl_->port(); }
const ServerOptions& Server::options() const { return impl_->options(); }
void Server::stop(std::chrono::milliseconds drain) { impl_->stop(drain); }
int Server::active_connections() const { return impl_->active(); }

}  // namespace gantry::core::http
