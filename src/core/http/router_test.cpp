#include "core/http/router.h"

#include <gtest/gtest.h>

namespace gantry::core::http {
namespace {

Response run(const Router& r, Method m, std::string target) {
  auto req = Request::make(m, std::move(target));
  Response out;
  bool sync = r.dispatch(*req, out, [] { return Responder(); });
  EXPECT_TRUE(sync);
  return out;
}

TEST(Router, LiteralParamsAndRest) {
  Router r;
  r.get("/agents", [](const Request&, Response& o) { o.text(200, "list"); });
  r.get("/agents/{id}", [](const Request& q, Response& o) { o.text(200, "one:" + std::string(q.param("id"))); });
  r.put("/agents/{id}/interval", [](const Request& q, Response& o) { o.text(200, "iv:" + std::string(q.param("id"))); });
  r.get("/files/{path...}", [](const Request& q, Response& o) { o.text(200, "f:" + std::string(q.param("path"))); });
  EXPECT_EQ(run(r, Method::kGet, "/agents").body, "list");
  EXPECT_EQ(run(r, Method::kGet, "/agents/a1?x=1").body, "one:a1");
  EXPECT_EQ(run(r, Method::kPut, "/agents/a2/interval").body, "iv:a2");
  EXPECT_EQ(run(r, Method::kGet, "/files/a/b/c.txt").body, "f:a/b/c.txt");
  EXPECT_EQ(run(r, Method::kGet, "/agents/").status, 404);  // an empty parameter does not match
  EXPECT_EQ(run(r, Method::kGet, "/agents/a1/extra").status, 404);
  EXPECT_EQ(run(r, Method::kGet, "/files/").status, 404);
}

// routes() is what a role's OpenAPI document is held to: every route, in registration order,
// with its method, the async kinds included.
TEST(Router, RoutesListsEveryRegisteredMethodAndPattern) {
  Router r;
  r.get("/a", [](const Request&, Response&) {});
  r.add_async(Method::kPost, "/b/{id}", [](const Request&, Responder) {});
  r.add_deferrable(Method::kGet, "/c/{rest...}", [](const Request&, Response&, const std::function<Responder()>&) { return true; });
  r.del("/a", [](const Request&, Response&) {});
  std::vector<std::pair<Method, std::string>> want = {
      {Method::kGet, "/a"}, {Method::kPost, "/b/{id}"}, {Method::kGet, "/c/{rest...}"}, {Method::kDelete, "/a"}};
  EXPECT_EQ(r.routes(), want);
}

TEST(Router, NotFoundAndMethodNotAllowed) {
  Router r;
  r.get("/config", [](const Request&, Response& o) { o.text(200, "g"); });
  r.post("/config", [](const Request&, Response& o) { o.text(200, "p"); });
  auto nf = run(r, Method::kGet, "/nope");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.body, R"({"error":"no such path: /nope"})");
  auto na = run(r, Method::kDelete, "/config");
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.header("Allow"), "GET, POST");
}

TEST(Router, HeadFallsBackToGet) {
  Router r;
  r.get("/x/{id}", [](const Request& q, Response& o) { o.text(200, std::string(q.param("id"))); });
  EXPECT_EQ(run(r, Method::kHead, "/x/7").body, "7");
}

TEST(Router, AsyncHandlerGetsResponderAndDroppedResponderAnswers500) {
  Router r;
  Responder kept;
  r.add_async(Method::kGet, "/wait", [&](const Request&, Responder resp) { kept = resp; });
  r.add_async(Method::kGet, "/drop", [](const Request&, Responder) {});
  auto req = Request::make(Method::kGet, "/wait");
  Response sync_out;
  std::optional<Response> async_out;
  auto make = [&] { return Responder([&](Response&& x) { async_out = std::move(x); }); };
  EXPECT_FALSE(r.dispatch(*req, sync_out, make));
  EXPECT_FALSE(async_out);
  Response answer;
  answer.text(202, "later");
  kept.send(std::move(answer));
  ASSERT_TRUE(async_out);
  EXPECT_EQ(async_out->status, 202);
  kept.send(Response{});  // a second send is ignored
  EXPECT_EQ(async_out->status, 202);

  async_out.reset();
  auto req2 = Request::make(Method::kGet, "/drop");
  EXPECT_FALSE(r.dispatch(*req2, sync_out, make));
  ASSERT_TRUE(async_out);
  EXPECT_EQ(async_out->status, 500);
}

TEST(Router, DeferrableHandlerAnswersNowOrLater) {
  Router r;
  Responder kept;
  int made = 0;
  r.add_deferrable(Method::kGet, "/poll", [&](const Request& q, Response& out, const std::function<Responder()>& defer) {
    if (q.query_param("wait")) {
      kept = defer();
      return false;
    }
    out.text(304, "");
    return true;
  });
  Response sync_out;
  std::optional<Response> async_out;
  auto make = [&] {
    ++made;
    return Responder([&](Response&& x) { async_out = std::move(x); });
  };
  auto now = Request::make(Method::kGet, "/poll");
  EXPECT_TRUE(r.dispatch(*now, sync_out, make));
  EXPECT_EQ(sync_out.status, 304);
  EXPECT_EQ(made, 0);  // the common case builds no responder
  auto later = Request::make(Method::kGet, "/poll?wait=5");
  EXPECT_FALSE(r.dispatch(*later, sync_out, make));
  EXPECT_EQ(made, 1);
  EXPECT_FALSE(async_out);
  Response answer;
  answer.text(200, "new");
  kept.send(std::move(answer));
  ASSERT_TRUE(async_out);
  EXPECT_EQ(async_out->status, 200);
}

TEST(Request, QueryParamsDecoded) {
  auto req = Request::make(Method::kGet, "/p?wait=30&name=a%20b+c&empty=&flag");
  EXPECT_EQ(req->query_param("wait"), "30");
  EXPECT_EQ(req->query_param("name"), "a b c");
  EXPECT_EQ(req->query_param("empty"), "");
  EXPECT_EQ(req->query_param("flag"), "");
  EXPECT_FALSE(req->query_param("missing"));
  EXPECT_EQ(req->path(), "/p");
}

}  // namespace
}  // namespace gantry::core::http
