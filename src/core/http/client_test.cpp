#include "core/http/client.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/http/server.h"

namespace gantry::core::http {
namespace {

using namespace std::chrono_literals;

// A listener that never accepts: the kernel completes the connection, nobody ever answers.
struct SilentListener {
  int fd = -1;
  uint16_t port = 0;
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, 8) != 0) return;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd); }
};

TEST(HttpClient, CancelAbandonsAHeldRequestAndTheClientStaysUsable) {
  SilentListener silent;
  ASSERT_NE(silent.port, 0);
  Client c;
  std::atomic<bool> cancel{false};
  ClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(silent.port) + "/config?wait=60";
  req.timeout = 60s;
  req.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(150ms);
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.send(req);
  auto took = std::chrono::steady_clock::now() - t0;
  canceller.join();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled) << r.status().to_string();
  EXPECT_LT(took, 30s);  // well before the request's own limit (timing is not asserted tighter)

  // The handle that carried the abandoned transfer goes back to the pool and serves again.
  auto router = std::make_shared<Router>();
  router->get("/hello", [](const Request&, Response& resp) { resp.text(200, "hi"); });
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  o.access_log = false;
  Server server(o, router);
  ASSERT_TRUE(server.start().is_ok());
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/hello";
  for (int i = 0; i < 3; ++i) {
    auto ok = c.get(url);
    ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
    EXPECT_EQ(ok->status, 200);
    EXPECT_EQ(ok->body, "hi");
  }
  EXPECT_EQ(server.active_connections(), 1);  // kept alive and reused, not one per call
  server.stop(2s);
}

TEST(HttpClient, FailuresAreValuesWithTheirCodes) {
  Client c;
  auto bad = c.get("no-scheme-at-all:::/");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument) << bad.status().to_string();

  SilentListener silent;
  ClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(silent.port) + "/";
  req.timeout = 200ms;
  auto slow = c.send(req);
  ASSERT_FALSE(slow.is_ok());
  EXPECT_EQ(slow.status().code(), Code::kDeadlineExceeded) << slow.status().to_string();

  int closed_port;
  {
    SilentListener gone;
    closed_port = gone.port;
  }
  auto refused = c.get("http://127.0.0.1:" + std::to_string(closed_port) + "/");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable) << refused.status().to_string();
}

// Response bodies used to be appended without limit (the Fleet worker fetches targets nobody
// here controls).
TEST(HttpClient, ABodyOverTheLimitIsRefusedNotHeld) {
  auto router = std::make_shared<Router>();
  router->get("/big", [](const Request&, Response& resp) { resp.text(200, std::string(3 << 20, 'x')); });
  ServerOptions o;
  o.address = "127.0.0.1";
  o.threads = 1;
  o.access_log = false;
  Server server(o, router);
  ASSERT_TRUE(server.start().is_ok());
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/big";
  ClientOptions co;
  co.max_body_bytes = 1 << 20;
  Client c(co);
  auto r = c.get(url);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().to_string();
  EXPECT_NE(r.status().to_string().find("larger than 1048576 bytes"), std::string::npos) << r.status().to_string();
  ClientRequest big;
  big.url = url;
  big.max_body_bytes = 4 << 20;  // a caller expecting more raises it for its call
  auto ok = c.send(big);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->body.size(), 3u << 20);
  server.stop(2s);
}

}  // namespace
}  // namespace gantry::core::http
