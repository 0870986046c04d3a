#include "orchestrator/domain.h"

#include <gtest/gtest.h>

#include "orchestrator/bridge/route.h"
#include "orchestrator/settings.h"
#include "orchestrator/topology.h"

namespace gantry::orchestrator {
namespace {

std::string error_of(std::string_view body, BodyRule rule) {
  auto r = parse_domain_body(body, rule);
  return r.is_ok() ? "" : std::string(r.status().message());
}

TEST(DomainBody, CreateNeedsNameAndCompany) {
  auto r = parse_domain_body(R"({"name":"example.com","companyname":"Acme"})", BodyRule::kCreate);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r->name, "example.com");
  EXPECT_EQ(*r->companyname, "Acme");
  EXPECT_FALSE(r->enabled.has_value());
  EXPECT_EQ(error_of(R"({"companyname":"Acme"})", BodyRule::kCreate), "name is required");
  EXPECT_EQ(error_of(R"({"name":"a.com"})", BodyRule::kCreate), "companyname is required");
  EXPECT_EQ(error_of(R"({"name":"","companyname":"x"})", BodyRule::kCreate), "name must not be empty");
  EXPECT_EQ(error_of(R"({"name":"a.com","companyname":"x","enabled":"yes"})", BodyRule::kCreate), "enabled must be true or false");
  EXPECT_EQ(error_of(R"({"name":"a.com","companyname":"x","owner":1})", BodyRule::kCreate),
            "unknown field 'owner' (fields: name, companyname, enabled)");
  EXPECT_EQ(error_of("[1]", BodyRule::kCreate), "body must be a JSON object");
  EXPECT_NE(error_of("{", BodyRule::kCreate).find("not JSON"), std::string::npos);
}

TEST(DomainBody, LimitsCountCharactersNotBytes) {
  std::string two_hundred_umlauts;
  for (int i = 0; i < 200; ++i) two_hundred_umlauts += "ü";  // 400 bytes, 200 characters: fits varchar(200)
  EXPECT_EQ(error_of(R"({"name":")" + two_hundred_umlauts + R"(","companyname":"x"})", BodyRule::kCreate), "");
  EXPECT_EQ(error_of(R"({"name":")" + two_hundred_umlauts + R"(x","companyname":"x"})", BodyRule::kCreate),
            "name is 201 characters; at most 200");
  EXPECT_EQ(error_of(R"({"name":"a","companyname":")" + std::string(51, 'c') + R"("})", BodyRule::kCreate),
            "companyname is 51 characters; at most 50");
  EXPECT_EQ(error_of(R"({"name":"a\u0000b","companyname":"x"})", BodyRule::kCreate),
            "name must be UTF-8 text without NUL characters");
}

TEST(DomainBody, UpdateTakesAnySubsetButNotNothing) {
  auto r = parse_domain_body(R"({"enabled":false})", BodyRule::kUpdate);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->enabled, false);
  EXPECT_FALSE(r->name.has_value());
  EXPECT_EQ(error_of("{}", BodyRule::kUpdate), "nothing to change: give name, companyname or enabled");
}

TEST(DomainJson, EscapesAndShape) {
  Domain d{"a3afbc2e-1998-4f40-83c5-e946d5b2f7bb", "ex\"ample", "Acme", false};
  EXPECT_EQ(to_json(d), R"({"id":"a3afbc2e-1998-4f40-83c5-e946d5b2f7bb","name":"ex\"ample","companyname":"Acme","enabled":false})");
}

TEST(Notice, ReadsTheTriggerPayload) {
  auto n = parse_notice(R"({"id":"a3afbc2e-1998-4f40-83c5-e946d5b2f7bb","op":"UPDATE","enabled":true,"ts":1700000000000000})");
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(n->op, "UPDATE");
  EXPECT_TRUE(n->enabled);
  EXPECT_EQ(n->ts_us, 1700000000000000);
  EXPECT_FALSE(parse_notice(R"({"id":"x","op":"TRUNCATE"})").is_ok());
  EXPECT_FALSE(parse_notice("a3afbc2e").is_ok());  // the original guide's bare-id payload is not ours
}

TEST(Route, MapsKeyToMethodAndPath) {
  auto r = parse_routing_key("cptm8.asmm8.get.scan", "asmm8");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->method, core::http::Method::kGet);
  EXPECT_EQ(r->path, "scan");
  r = parse_routing_key("cptm8.num8.POST.scan.full", "num8");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->method, core::http::Method::kPost);
  EXPECT_EQ(r->path, "scan/full");
}

TEST(Route, RefusesWhatCouldLeaveTheBaseUrl) {
  EXPECT_FALSE(parse_routing_key("cptm8.naabum8.get.scan", "asmm8").is_ok());  // another service's
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get.", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get.a..b", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.trace.scan", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get.scan?x=1", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get.a/b", "asmm8").is_ok());
  EXPECT_FALSE(parse_routing_key("cptm8.asmm8.get.%2e%2e", "asmm8").is_ok());
}

TEST(Topology, KickBodyIsTheOriginals) {
  core::WallTime t{std::chrono::nanoseconds(1'700'000'000'123'456'700)};
  EXPECT_EQ(kick_body("asmm8", t),
            R"({"channel":"cptm8.asmm8.get.scan","timestamp":"2023-11-14T22:13:20.1234567Z","source":"orchestratorm8"})");
  EXPECT_EQ(queue_of("num8"), "qnum8");
  EXPECT_EQ(dlq_of("num8"), "qnum8.dlq");
}

TEST(Settings, ConnectionStringsCarryTheSchemaAndEscape) {
  DbSettings d;
  d.host = "db";
  d.password = "p'w";
  EXPECT_EQ(d.connection_string(), R"(host='db' port=5432 dbname='postgres' user='postgres' password='p\'w')");
  d.schema = "scans";
  EXPECT_NE(d.connection_string().find("options='-csearch_path=scans'"), std::string::npos);
  d.url = "postgres://u@h/db";
  EXPECT_EQ(d.connection_string(), "postgres://u@h/db?options=-csearch_path%3Dscans");
  AmqpSettings a;
  a.password = "p@ss/";
  EXPECT_EQ(a.amqp_url(), "amqp://guest:p%40ss%2F@localhost:5672/%2F");
  EXPECT_EQ(check_services({"asmm8", "asmm8"}), "'asmm8' given twice");
  EXPECT_EQ(check_services({"a.b"}), "'a.b' is not a service name (letters, digits, '-', '_')");
  EXPECT_EQ(check_services({}), "needs at least one service");
}

}  // namespace
}  // namespace gantry::orchestrator
