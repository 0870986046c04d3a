#include "core/http/server.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/http/client.h"
#include "core/metrics.h"
#include "core/http/test_socket.h"

namespace gantry::core::http {
namespace {

using namespace std::chrono_literals;
using testing::status_of;
using testing::TestSocket;

struct ServerTest : ::testing::Test {
  std::shared_ptr<Router> router = std::make_shared<Router>();
  std::unique_ptr<Server> server;
  std::vector<std::thread> helpers;

  void start(ServerOptions o = {}) {
    o.address = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    o.access_log = false;
    o.name = "test";
    router->get("/hello", [](const Request&, Response& r) { r.text(200, "hi"); });
    router->post("/echo", [](const Request& q, Response& r) { r.text(200, q.body()); });
    router->get("/id", [](const Request& q, Response& r) { r.text(200, std::string(q.request_id())); });
    router->add_async(Method::kGet, "/slow", [this](const Request&, Responder resp) {
      helpers.emplace_back([resp] {
        std::this_thread::sleep_for(300ms);
        Response r;
        r.text(200, "slow done");
        resp.send(std::move(r));
      });
    });
    server = std::make_unique<Server>(o, router);
    ASSERT_TRUE(server->start().is_ok());
    ASSERT_NE(server->port(), 0);
  }
  void TearDown() override {
    if (server) server->stop(2s);
    for (auto& t : helpers) t.join();
  }
  static std::string get(std::string_view path, std::string_view extra = "") {
    return "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" + std::string(extra) + "\r\n";
  }
};

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  TestSocket s(server->port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send(get("/hello")));
    std::string r = s.read_response();
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_NE(r.find("\r\n\r\nhi"), std::string::npos);
    EXPECT_NE(r.find("X-Request-ID: "), std::string::npos);
  }
}

TEST_F(ServerTest, PipelinedRequestsAnsweredInOrder) {
  start();
  TestSocket s(server->port());
  ASSERT_TRUE(s.send(get("/hello") + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld" + get("/nope")));
  EXPECT_NE(s.read_response().find("\r\n\r\nhi"), std::string::npos);
  EXPECT_NE(s.read_response().find("\r\n\r\nworld"), std::string::npos);
  EXPECT_EQ(status_of(s.read_response()), 404);
}

TEST_F(ServerTest, OversizedHeaderIs431AndClosesOnlyThatConnection) {
  ServerOptions o;
  o.max_header_bytes = 2048;
  start(o);
  TestSocket other(server->port());
  TestSocket s(server->port());
  ASSERT_TRUE(s.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"));
  bool closed = false;
  std::string r = s.read_until_close(5s, &closed);
  EXPECT_EQ(status_of(r), 431) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(closed);
  ASSERT_TRUE(other.send(get("/hello")));
  EXPECT_EQ(status_of(other.read_response()), 200);
}

TEST_F(ServerTest, OversizedBodyIs413) {
  ServerOptions o;
  o.max_body_bytes = 1000;
  start(o);
  TestSocket s(server->port());
  ASSERT_TRUE(s.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
  std::string r = s.read_until_close(5s);
  EXPECT_EQ(status_of(r), 413) << r;
  EXPECT_NE(r.find(R"({"error":"request body larger than 1000 bytes"})"), std::string::npos) << r;

  // Chunked bodies are counted as they arrive.
  TestSocket c(server->port());
  std::string chunk(900, 'x');
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n384\r\n" + chunk +
                     "\r\n384\r\n" + chunk + "\r\n0\r\n\r\n"));
  EXPECT_EQ(status_of(c.read_until_close(5s)), 413);

  // At the limit is fine.
  TestSocket ok(server->port());
  ASSERT_TRUE(ok.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'y')));
  EXPECT_EQ(status_of(ok.read_response()), 200);
}

TEST_F(ServerTest, MalformedRequestIs400) {
  start();
  for (std::string bad : {"GARBAGE\r\n\r\n", "GET /hello HTTP/9\r\n\r\n", "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n"}) {
    TestSocket s(server->port());
    ASSERT_TRUE(s.send(bad));
    bool closed = false;
    std::string r = s.read_until_close(5s, &closed);
    EXPECT_EQ(status_of(r), 400) << bad << " -> " << r;
    EXPECT_TRUE(closed);
  }
}

TEST_F(ServerTest, SlowClientTimesOutWithoutAffectingOthers) {
  ServerOptions o;
  o.read_timeout = 300ms;
  start(o);
  TestSocket slow(server->port());
  ASSERT_TRUE(slow.send("GET /hello HTTP/1.1\r\nHost: x\r\n"));  // header never finished
  // Meanwhile, other connections are served at once.
  for (int i = 0; i < 5; ++i) {
    TestSocket fast(server->port());
    ASSERT_TRUE(fast.send(get("/hello")));
    EXPECT_EQ(status_of(fast.read_response(2s)), 200);
  }
  bool closed = false;
  std::string r = slow.read_until_close(5s, &closed);
  EXPECT_EQ(status_of(r), 408) << r;
  EXPECT_TRUE(closed);
}

TEST_F(ServerTest, DripFedRequestStillBoundByReadTimeout) {
  ServerOptions o;
  o.read_timeout = 400ms;
  start(o);
  TestSocket s(server->port());
  std::string req = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(40, 'p') + "\r\n\r\n";
  bool sent_all = true;
  auto t0 = std::chrono::steady_clock::now();
  for (char c : req) {  // one byte every 25 ms: 1.3 s in all, far past the 400 ms budget
    if (!s.send(std::string_view(&c, 1))) {
      sent_all = false;
      break;
    }
    std::this_thread::sleep_for(25ms);
    if (std::chrono::steady_clock::now() - t0 > 3s) break;
  }
  std::string r = s.read_until_close(2s);
  EXPECT_EQ(status_of(r), 408) << r;
  (void)sent_all;
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout = 200ms;
  start(o);
  TestSocket s(server->port());
  ASSERT_TRUE(s.send(get("/hello")));
  EXPECT_EQ(status_of(s.read_response()), 200);
  bool closed = false;
  std::string rest = s.read_until_close(5s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(rest, "");  // closed quietly, no response
}

TEST_F(ServerTest, RequestIdEchoedOrGenerated) {
  start();
  TestSocket s(server->port());
  ASSERT_TRUE(s.send(get("/id", "X-Request-ID: trace-42\r\n")));
  std::string r = s.read_response();
  EXPECT_NE(r.find("X-Request-ID: trace-42"), std::string::npos);
  EXPECT_NE(r.find("\r\n\r\ntrace-42"), std::string::npos);
  ASSERT_TRUE(s.send(get("/id", "X-Request-ID: bad id with spaces\r\n")));
  r = s.read_response();
  EXPECT_EQ(r.find("bad id"), std::string::npos);
  auto body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_EQ(body.size(), 15u);
}

TEST_F(ServerTest, ExpectContinueAndHead) {
  start();
  TestSocket s(server->port());
  ASSERT_TRUE(s.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  std::string cont = s.read_response();
  EXPECT_EQ(status_of(cont), 100) << cont;
  ASSERT_TRUE(s.send("abc"));
  EXPECT_NE(s.read_response().find("\r\n\r\nabc"), std::string::npos);
  ASSERT_TRUE(s.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string head = s.read_until_close(500ms);
  EXPECT_EQ(status_of(head), 200);
  EXPECT_NE(head.find("Content-Length: 2"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body bytes
}

TEST_F(ServerTest, AsyncHandlerAnsweredFromAnotherThread) {
  start();
  Client c;
  auto r = c.get("http://127.0.0.1:" + std::to_string(server->port()) + "/slow");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
}

// A handler that starts work on its request's io_context (a timer here, a broker publish in
// ingest) is answered on the same thread, once per worker the hook attached something.
TEST_F(ServerTest, WorkerHookAndAnswersCompletedOnTheRequestsOwnThread) {
  std::vector<boost::asio::io_context*> attached;
  ServerOptions o;
  o.on_worker_start = [&](boost::asio::io_context& ioc) {
    attached.push_back(&ioc);
    return Status{};
  };
  router->add_async(Method::kGet, "/later", [&attached](const Request& q, Responder resp) {
    boost::asio::io_context* ioc = q.io_context();
    bool known = std::find(attached.begin(), attached.end(), ioc) != attached.end();
    auto t = std::make_shared<boost::asio::steady_timer>(*ioc, 20ms);
    t->async_wait([t, ioc, known, resp](boost::system::error_code) {
      Response r;
      r.text(200, known && ioc->get_executor().running_in_this_thread() ? "same thread" : "elsewhere");
      resp.send(std::move(r));
    });
  });
  start(o);
  EXPECT_EQ(attached.size(), 2u);
  TestSocket s(server->port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.send(get("/later")));
    std::string r = s.read_response();
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_NE(r.find("same thread"), std::string::npos) << r;
  }
  EXPECT_EQ(Request::make(Method::kGet, "/x")->io_context(), nullptr);
}

TEST_F(ServerTest, AFailingWorkerHookFailsStart) {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.threads = 2;
  o.on_worker_start = [](boost::asio::io_context&) { return Status(Code::kUnavailable, "broker down", "test"); };
  Server other(o, router);
  Status st = other.start();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_EQ(st.message(), "broker down");
}

TEST_F(ServerTest, StopDrainsInFlightRequestsAndRefusesNewOnes) {
  start();
  uint16_t port = server->port();
  TestSocket idle(port);  // an idle keep-alive connection must not hold up the drain
  TestSocket busy(port);
  ASSERT_TRUE(busy.send(get("/slow")));
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { server->stop(5s); });
  std::string r = busy.read_response();
  stopper.join();
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("slow done"), std::string::npos);
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // waited for the request, not the deadline
  bool closed = false;
  idle.read_until_close(1s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_THROW(TestSocket again(port), std::runtime_error);
  server.reset();
}

TEST_F(ServerTest, StopDeadlineCutsStuckRequests) {
  router->add_async(Method::kGet, "/never", [](const Request&, Responder resp) {
    static std::vector<Responder> leak;  // never answered until the process ends
    leak.push_back(resp);
  });
  start();
  TestSocket s(server->port());
  ASSERT_TRUE(s.send(get("/never")));
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  server->stop(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  bool closed = false;
  s.read_until_close(1s, &closed);
  EXPECT_TRUE(closed);
  server.reset();
}

double handler_failures(std::string_view reason) {
  return metrics::Registry::global()
      .counter("http_handler_failures_total", "", {"server", "reason"})
      .with({"test", std::string(reason)})
      .value();
}

// A throwing handler used to skip the session's cleanup: the client hung, the connection was
// counted open forever and stop() waited out its deadline.
TEST_F(ServerTest, ThrowingHandlerIsAnswered500AndTheConnectionGoesOn) {
  router->get("/throw", [](const Request&, Response&) -> void { throw std::runtime_error("boom"); });
  router->add_async(Method::kGet, "/throw-async", [](const Request&, Responder) { throw 42; });
  start();
  double before = handler_failures("exception");
  {
    TestSocket s(server->port());
    ASSERT_TRUE(s.send(get("/throw")));
    std::string r = s.read_response(2s);
    EXPECT_EQ(status_of(r), 500) << r;
    EXPECT_NE(r.find(R"({"error":)"), std::string::npos) << r;
    ASSERT_TRUE(s.send(get("/throw-async")));
    r = s.read_response(2s);
    EXPECT_EQ(status_of(r), 500) << r;
    ASSERT_TRUE(s.send(get("/hello")));  // the same connection still serves
    r = s.read_response(2s);
    EXPECT_EQ(status_of(r), 200) << r;
  }
  EXPECT_EQ(handler_failures("exception") - before, 2);
  for (int i = 0; i < 200 && server->active_connections() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server->active_connections(), 0);  // the closed connection is no longer counted
  auto t0 = std::chrono::steady_clock::now();
  server->stop(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

// A responder kept and never completed used to hold its request (and its connection) forever.
// After handler_timeout the server answers 503; a late send() must not leak into the next
// request's answer on that connection.
TEST_F(ServerTest, ForgottenResponderIsAnswered503AfterTheHandlerTimeout) {
  auto kept = std::make_shared<std::vector<Responder>>();
  auto mu = std::make_shared<std::mutex>();
  router->add_async(Method::kGet, "/forgotten", [kept, mu](const Request&, Responder resp) {
    std::lock_guard l(*mu);
    kept->push_back(resp);
  });
  ServerOptions o;
  o.handler_timeout = 200ms;
  start(o);
  double before = handler_failures("timeout");
  TestSocket s(server->port());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.send(get("/forgotten")));
  std::string r = s.read_response(3s);
  EXPECT_EQ(status_of(r), 503) << r;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);
  EXPECT_EQ(handler_failures("timeout") - before, 1);
  {
    std::lock_guard l(*mu);
    ASSERT_EQ(kept->size(), 1u);
    Response late;
    late.text(200, "late answer");
    kept->front().send(std::move(late));
  }
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(s.send(get("/hello")));
  r = s.read_response(2s);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("\r\n\r\nhi"), std::string::npos) << r;
  EXPECT_EQ(r.find("late answer"), std::string::npos) << r;
}

TEST_F(ServerTest, PortInUseIsAClearError) {
  testing::HeldPort held;
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = held.port();
  o.threads = 1;
  Server other(o, router);
  Status st = other.start();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.to_string().find("cannot listen on 127.0.0.1:" + std::to_string(o.port)), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace gantry::core::http
