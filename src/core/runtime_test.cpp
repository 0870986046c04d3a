#include "core/runtime.h"

#include <dirent.h>

#include <gtest/gtest.h>

#include <thread>

#include "core/http/client.h"

namespace gantry::core::runtime {
namespace {

struct Recorder {
  std::vector<std::string> events;
};

class FakeRole : public Role {
 public:
  FakeRole(std::string name, Recorder* rec, bool fail = false) : name_(std::move(name)), rec_(rec), fail_(fail) {}
  std::string_view name() const override { return name_; }
  Status start() override {
    rec_->events.push_back("start " + name_);
    if (fail_) return unavailable("no database");
    return {};
  }
  void stop(std::chrono::milliseconds) override { rec_->events.push_back("stop " + name_); }

 private:
  std::string name_;
  Recorder* rec_;
  bool fail_;
};

TEST(Runtime, StartsInOrderStopsInReverse) {
  Recorder rec;
  Runtime rt;
  rt.add(std::make_unique<FakeRole>("a", &rec));
  rt.add(std::make_unique<FakeRole>("b", &rec));
  ASSERT_TRUE(rt.start().is_ok());
  rt.request_stop();
  EXPECT_EQ(rt.wait_and_stop(std::chrono::seconds(5)), 0);
  EXPECT_EQ(rec.events, (std::vector<std::string>{"start a", "start b", "stop b", "stop a"}));
}

int thread_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

TEST(Runtime, ShutdownWatchdogEndsWithACleanStop) {
  // The watchdog cuts an overrunning shutdown short at deadline + 5 s. After a clean stop it
  // must be gone, or it would kill a process that simply lives on: a stop leaves no thread
  // behind. The first cycle lets threads made lazily on first use (a sanitizer's, a logger's)
  // appear; the next ones must not add any.
  int before = 0;
  for (int cycle = 0; cycle < 3; ++cycle) {
    Recorder rec;
    Runtime rt;
    rt.add(std::make_unique<FakeRole>("a", &rec));
    ASSERT_TRUE(rt.start().is_ok());
    rt.request_stop();
    EXPECT_EQ(rt.wait_and_stop(std::chrono::milliseconds(0)), 0);
    if (cycle == 0) before = thread_count();
  }
  EXPECT_LE(thread_count(), before);
}

TEST(Runtime, FailedStartStopsTheStartedOnes) {
  Recorder rec;
  Runtime rt;
  rt.add(std::make_unique<FakeRole>("a", &rec));
  rt.add(std::make_unique<FakeRole>("b", &rec, /*fail=*/true));
  rt.add(std::make_unique<FakeRole>("c", &rec));
  Status s = rt.start();
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(rec.events, (std::vector<std::string>{"start a", "start b", "stop a"}));
}

class Svc : public HttpRole {
 public:
  explicit Svc(std::atomic<bool>* ready) : HttpRole("svc", opts()), ready_(ready) {
    router().get("/health", [](const http::Request&, http::Response& r) { r.json(200, R"({"status":"healthy","service":"svc"})"); });
  }
  bool ready() const override { return ready_->load(); }
  static http::ServerOptions opts() {
    http::ServerOptions o;
    o.address = "127.0.0.1";
    o.threads = 1;
    o.access_log = false;
    return o;
  }

 private:
  std::atomic<bool>* ready_;
};

TEST(Runtime, HttpRoleServesAdminEndpointsAndKeepsItsOwnHealth) {
  std::atomic<bool> ready{false};
  Svc svc(&ready);
  ASSERT_TRUE(svc.start().is_ok());
  std::string base = svc.endpoints().at(0).second;
  http::Client c;
  auto health = c.get(base + "/health");
  ASSERT_TRUE(health.is_ok());
  EXPECT_EQ(health->body, R"({"status":"healthy","service":"svc"})");  // the role's shape wins
  auto r = c.get(base + "/ready");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 503);
  ready = true;
  EXPECT_EQ(c.get(base + "/ready")->status, 200);
  auto m = c.get(base + "/metrics");
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ(m->header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m->body.find("http_requests_total{server=\"svc\",code=\"503\"} 1"), std::string::npos) << m->body;
  svc.stop(std::chrono::seconds(2));
}

}  // namespace
}  // namespace gantry::core::runtime
