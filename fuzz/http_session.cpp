// Bytes sent to a live core HTTP server over a real TCP connection: Beast's parser with the
// server's limits as http_request covers, plus what only a running server does with them:
// keep-alive and pipelining, 100-continue, partial and oversized requests, the read deadline,
// handlers that throw, drop their Responder or answer later, and closing.
//
// The first input byte sets the size of the pieces the rest is written in (1..64 bytes, or all
// at once; the first 256 pieces, then the remainder), so a request also arrives split at every
// possible place. After the last byte the
// client closes its sending side. What must hold, or the target aborts:
//   - the server closes the connection within kCloseLimit of the client's close (a handler that
//     throws, or a request cut short, must not leave it hanging; the review found one that did);
//   - everything it sends is a sequence of HTTP/1.x responses, each with a status line and a
//     Content-Length it honours;
//   - it still accepts the next connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/http/message.h"
#include "core/http/router.h"
#include "core/http/server.h"
#include "core/log.h"

namespace http = gantry::core::http;
using namespace std::chrono_literals;

namespace {

constexpr auto kCloseLimit = 5s;

[[noreturn]] void fail(const char* what, std::string_view got) {
  std::fprintf(stderr, "http_session: %s; the server sent %zu bytes:\n%.*s\n", what, got.size(),
               static_cast<int>(std::min<size_t>(got.size(), 2000)), got.data());
  std::abort();
}

// One server for the whole run, shaped like the roles': literal, {param} and {rest...} routes,
// synchronous, asynchronous and deferrable handlers, one that throws and one that drops its
// Responder. Short deadlines, so a request cut short ends quickly.
uint16_t server_port() {
  static uint16_t port = [] {
    gantry::core::log::Settings quiet;
    quiet.level = "off";
    (void)gantry::core::log::init(quiet);
    auto r = std::make_shared<http::Router>();
    r->get("/ok", [](const http::Request&, http::Response& o) { o.text(200, "ok"); });
    r->post("/echo", [](const http::Request& q, http::Response& o) { o.text(200, std::string(q.body())); });
    r->get("/agents/{id}", [](const http::Request& q, http::Response& o) {
      o.json(200, "{\"id\":\"" + std::string(q.param("id")).substr(0, 8) + "\"}");
    });
    r->get("/files/{path...}", [](const http::Request& q, http::Response& o) { o.text(200, std::string(q.param("path"))); });
    r->get("/throw", [](const http::Request&, http::Response&) -> void { throw std::runtime_error("handler bug"); });
    r->add_async(http::Method::kPost, "/async", [](const http::Request& q, http::Responder done) {
      http::Response o;
      o.text(202, std::to_string(q.body().size()));
      done.send(std::move(o));
    });
    r->add_async(http::Method::kGet, "/drop", [](const http::Request&, http::Responder) {});
    r->add_deferrable(http::Method::kGet, "/config",
                      [](const http::Request& q, http::Response& o, const std::function<http::Responder()>& defer) {
                        if (!q.query_param("wait")) {
                          o.text(200, "now");
                          return true;
                        }
                        http::Responder later = defer();
                        http::Response r;
                        r.status = 304;
                        later.send(std::move(r));
                        return false;
                      });
    http::ServerOptions o;
    o.name = "fuzz";
    o.address = "127.0.0.1";
    o.threads = 1;
    o.max_header_bytes = 4096;
    o.max_body_bytes = 16384;
    o.read_timeout = 1s;
    o.idle_timeout = 1s;
    o.write_timeout = 1s;
    o.handler_timeout = 1s;
    o.access_log = false;
    static http::Server server(o, r);
    if (!server.start().is_ok()) {
      std::fprintf(stderr, "http_session: the server did not start\n");
      std::abort();
    }
    return server.port();
  }();
  return port;
}

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("the server stopped accepting connections", "");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Everything the server sends until it closes; aborts when it has not closed by `limit`.
std::string read_until_close(int fd, std::chrono::steady_clock::time_point limit) {
  std::string got;
  char buf[16384];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(limit - std::chrono::steady_clock::now());
    if (left.count() <= 0) fail("the connection was still open 5 s after the client closed its side", got);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;  // closed (or reset: also closed)
    got.append(buf, static_cast<size_t>(n));
  }
}

// The bytes must be whole HTTP/1.x responses one after the other. An answer to HEAD carries
// the Content-Length of a body it does not send, so after an input that may hold a HEAD only
// the first status line is checked.
void check_responses(std::string_view got, bool may_hold_head) {
  if (may_hold_head) got = got.substr(0, std::min<size_t>(got.size(), 12));
  std::string_view rest = got;
  while (!rest.empty()) {
    // HTTP/1.0 to a 1.0 request, else 1.1.
    if ((rest.substr(0, 9) != "HTTP/1.1 " && rest.substr(0, 9) != "HTTP/1.0 ") || rest.size() < 12)
      fail("a response does not start with a status line", got);
    int status = std::atoi(std::string(rest.substr(9, 3)).c_str());
    if (status < 100 || status > 599) fail("a response has no valid status code", got);
    size_t end = rest.find("\r\n\r\n");
    if (may_hold_head) return;
    if (end == std::string_view::npos) fail("a response's header is cut short", got);
    std::string head(rest.substr(0, end));
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t len = 0;
    if (auto cl = head.find("\r\ncontent-length:"); cl != std::string::npos) len = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (status == 100) len = 0;
    if (may_hold_head) return;
    if (rest.size() < end + 4 + len) fail("a response's body is shorter than its Content-Length", got);
    rest.remove_prefix(end + 4 + len);
  }
}

}  // namespace

// No leak check per input: the server's thread keeps memory from one input to the next (its
// connection state, metric series), which the check cannot tell from a leak, and scanning for
// it took two thirds of the time. The server's leaks are checked by the unit tests under ASan.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint16_t port = server_port();
  size_t piece = data[0] % 65 == 0 ? size : data[0] % 65;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool may_hold_head = rest.find("HEAD") != std::string_view::npos || rest.find("head") != std::string_view::npos;

  int fd = connect_to(port);
  bool open = true;
  // At most 256 pieces, then the rest at once: splits happen anywhere in a request's head,
  // and a 16 KiB body does not cost 16,000 writes.
  for (int pieces = 0; !rest.empty() && open; ++pieces) {
    std::string_view part = pieces < 256 ? rest.substr(0, piece) : rest;
    // The server may answer and close before everything is written (a 431, a 413): then the
    // rest is not sent, which is what a real client would see too.
    if (::send(fd, part.data(), part.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(part.size())) open = false;
    rest.remove_prefix(part.size());
  }
  ::shutdown(fd, SHUT_WR);
  std::string got = read_until_close(fd, std::chrono::steady_clock::now() + kCloseLimit);
  ::close(fd);
  check_responses(got, may_hold_head);
  return 0;
}
