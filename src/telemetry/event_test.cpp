#include "telemetry/event.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace gantry::telemetry {
namespace {

constexpr int64_t kNow = 1'795'000'000'000;

std::string good(std::string extra = "", std::string timings = R"("timings":{"dns_ms":1.5,"tcp_ms":2,"tls_ms":null,"http_ttfb_ms":30})") {
  return R"({"event_id":"123e4567-e89b-12d3-a456-426614174000","client_id":"probe-1","ts_ms":1794999999000,)"
         R"("schema_version":"1.0","target":"https://example.com/","network_context":{"interface_type":"wifi","vpn_enabled":false},)" +
         timings + R"(,"throughput_kbps":5000)" + extra + "}";
}

std::string error_of(const std::string& json) {
  auto r = parse_event(json, kNow);
  return r.is_ok() ? "" : std::string(r.status().message());
}

TEST(TelemetryEvent, ParsesAValidEventAndSetsRecvTs) {
  auto e = parse_event(good(R"(,"recv_ts_ms":1,"traceparent":"00-abc-def-01")"), kNow);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->client_id, "probe-1");
  EXPECT_EQ(e->recv_ts_ms, kNow);  // whatever the client sent
  EXPECT_EQ(e->timings.dns_ms, 1.5);
  EXPECT_FALSE(e->timings.tls_ms);  // null = not measured, never 0
  EXPECT_EQ(e->throughput_kbps, 5000);
  EXPECT_EQ(e->interface_type, "wifi");
  EXPECT_EQ(e->vpn_enabled, false);
  EXPECT_EQ(e->traceparent, "00-abc-def-01");
}

TEST(TelemetryEvent, TimingMeasurementsIsASynonym) {
  auto e = parse_event(good("", R"("timing_measurements":{"dns_ms":4})"), kNow);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->timings.dns_ms, 4);
  EXPECT_NE(error_of(good(R"(,"timing_measurements":{"dns_ms":4})")), "");  // not both
}

TEST(TelemetryEvent, EveryRuleNamesItsField) {
  struct Case {
    std::string json, needle;
  };
  std::string base = good();
  auto replace = [&](std::string from, std::string to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::vector<Case> cases = {
      {"not json", "invalid JSON"},
      {"[1]", "JSON object"},
      {good(R"(,"color":"red")"), "unknown field: color"},
      {replace(R"("vpn_enabled":false)", R"("vpn_enabled":false,"x":1)"), "unknown field: network_context.x"},
      {replace(R"("dns_ms":1.5)", R"("dns_ms":1.5,"foo_ms":1)"), "unknown field: timings.foo_ms"},
      {replace("123e4567-e89b-12d3-a456-426614174000", "not-a-uuid"), "event_id"},
      {replace(R"("event_id":"123e4567-e89b-12d3-a456-426614174000",)", ""), "event_id is required"},
      {replace(R"("client_id":"probe-1")", R"("client_id":"")"), "client_id"},
      {replace(R"("client_id":"probe-1")", R"("client_id":")" + std::string(256, 'c') + "\""), "client_id must be at most 255"},
      {replace(R"("ts_ms":1794999999000)", R"("ts_ms":0)"), "ts_ms must be > 0"},
      {replace(R"("ts_ms":1794999999000)", R"("ts_ms":1795003600001)"), "future"},
      {replace(R"("ts_ms":1794999999000)", R"("ts_ms":"1794999999000")"), "ts_ms must be an integer"},
      {replace(R"("ts_ms":1794999999000,)", ""), "ts_ms is required"},
      {replace(R"("schema_version":"1.0",)", ""), "schema_version is required"},
      {replace(R"("target":"https://example.com/")", R"("target":"")"), "target is required"},
      {replace(R"("target":"https://example.com/")", R"("target":"no url")"), "target must be an absolute URL"},
      {replace(R"("target":"https://example.com/")", R"("target":"https://e.com/)" + std::string(250, 'a') + "\""), "target must be at most 255"},
      {replace(R"("interface_type":"wifi",)", ""), "interface_type is required"},
      {replace(R"(,"network_context":{"interface_type":"wifi","vpn_enabled":false})", ""), "network_context is required"},
      {replace(R"("vpn_enabled":false)", R"("vpn_enabled":"no")"), "vpn_enabled must be a boolean"},
      {replace(R"("dns_ms":1.5)", R"("dns_ms":-1)"), "timings.dns_ms must be >= 0"},
      {replace(R"("dns_ms":1.5)", R"("dns_ms":"fast")"), "timings.dns_ms must be a number"},
      {replace(R"("throughput_kbps":5000)", R"("throughput_kbps":-5)"), "throughput_kbps must be >= 0"},
      {good(R"(,"error_stage":"SMTP")"), "error_stage must be one of"},
  };
  for (const Case& c : cases) {
    std::string err = error_of(c.json);
    EXPECT_NE(err.find(c.needle), std::string::npos) << "expected '" << c.needle << "' for " << c.json.substr(0, 160) << " got '" << err << "'";
  }
}

TEST(TelemetryEvent, ErrorEventsSkipTheRangeChecks) {
  std::string failed = good(R"(,"error_stage":"DNS")", R"("timings":{"dns_ms":-1})");
  EXPECT_EQ(error_of(failed), "");
}

TEST(TelemetryEvent, UnknownSchemaIsAccepted) {
  std::string s = good();
  s.replace(s.find(R"("1.0")"), 5, R"("2.7")");
  EXPECT_EQ(error_of(s), "");
}

TEST(TelemetryEvent, StreamFormRoundTrips) {
  auto e = parse_event(good(R"(,"error_stage":"TLS","tracestate":"k=v")"), kNow);
  ASSERT_TRUE(e.is_ok());
  std::string j = to_json(*e);
  auto back = parse_event(j, kNow + 5);
  ASSERT_TRUE(back.is_ok()) << j;
  EXPECT_EQ(back->event_id, e->event_id);
  EXPECT_EQ(back->timings.dns_ms, 1.5);
  EXPECT_FALSE(back->timings.tls_ms);
  EXPECT_EQ(back->error_stage, "TLS");
  EXPECT_EQ(back->tracestate, "k=v");
  auto v = boost::json::parse(j);
  EXPECT_TRUE(v.at("timings").at("tls_ms").is_null());
  EXPECT_EQ(v.at("recv_ts_ms").as_int64(), kNow);
}

TEST(TelemetryEvent, UuidShape) {
  EXPECT_TRUE(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_TRUE(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
  EXPECT_FALSE(is_uuid("123e4567e89b12d3a456426614174000"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
}

}  // namespace
}  // namespace gantry::telemetry
