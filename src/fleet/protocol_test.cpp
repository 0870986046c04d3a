#include "fleet/protocol.h"

#include <gtest/gtest.h>

namespace gantry::fleet {
namespace {

TEST(FleetProtocol, PushMessageRoundTrips) {
  PushMessage m{"", "2c-17", "c\"1"};
  auto back = parse_push(to_json(m));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->agent_id, "");
  EXPECT_EQ(back->etag, "2c-17");
  EXPECT_EQ(back->correlation_id, "c\"1");
  EXPECT_FALSE(parse_push("[1]").is_ok());
}

TEST(FleetProtocol, TargetUrlsMustBeAbsoluteHttp) {
  EXPECT_FALSE(check_target_url("http://example.com"));
  EXPECT_FALSE(check_target_url("https://ip.me"));
  EXPECT_FALSE(check_target_url("http://127.0.0.1:8080/a?b=c"));
  for (const char* bad : {"", "example.com", "/relative", "ftp://x/y", "http://", "not a url", "mailto:a@b",
                          "http://a.example/x\ny", "http://a.example/\x7f"})
    EXPECT_TRUE(check_target_url(bad)) << bad;
  // What Go's url.Parse (the original's validator) took, stored percent-encoded.
  std::string n;
  EXPECT_FALSE(check_target_url("http://a.example/x?q=\xc3\xbc", &n));
  EXPECT_EQ(n, "http://a.example/x?q=%C3%BC");
  EXPECT_FALSE(check_target_url("https://a.example/a b/{c}", &n));
  EXPECT_EQ(n, "https://a.example/a%20b/%7Bc%7D");
  EXPECT_FALSE(check_target_url("http://a.example/already%20encoded", &n));
  EXPECT_EQ(n, "http://a.example/already%20encoded");
}

TEST(FleetProtocol, ProxyFormsAndTheirUrls) {
  for (const char* ok : {"", "proxy:3128", "10.0.0.1:8080:user:pass", "http://u:p@proxy:3128"})
    EXPECT_FALSE(check_proxy(ok)) << ok;
  for (const char* bad : {"proxy", "proxy:", "proxy:99999", "proxy:80:user", ":80", "proxy:8a"})
    EXPECT_TRUE(check_proxy(bad)) << bad;
  EXPECT_EQ(proxy_url(""), "");
  EXPECT_EQ(proxy_url("proxy:3128"), "http://proxy:3128");
  EXPECT_EQ(proxy_url("proxy:3128:user:pa:ss"), "http://user:pa:ss@proxy:3128");
  EXPECT_EQ(proxy_url("http://x:1"), "http://x:1");
}

TEST(FleetProtocol, ListenAddresses) {
  std::string host;
  uint16_t port = 0;
  EXPECT_FALSE(split_listen_addr(":8080", &host, &port));
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(split_listen_addr("127.0.0.1:9", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9);
  EXPECT_TRUE(check_listen_addr("8080"));
  EXPECT_TRUE(check_listen_addr(":99999"));
  EXPECT_FALSE(check_listen_addr(""));
}

TEST(FleetProtocol, IdentifiersAndTokenHashes) {
  std::string u = uuid4();
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
  EXPECT_NE(uuid4(), u);
  EXPECT_EQ(random_hex(32).size(), 64u);
  // SHA-256("abc")
  EXPECT_EQ(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace gantry::fleet

namespace gantry::fleet {
namespace {

TEST(ControllerAnswers, RegisterAnswerNeedsIdAndTokenAndBoundsTheInterval) {
  auto a = parse_register_answer(R"({"agent_id":"a-1","api_token":"t","poll_interval_seconds":7})");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->agent_id, "a-1");
  EXPECT_EQ(a->api_token, "t");
  EXPECT_EQ(a->poll_interval, 7);
  auto big = parse_register_answer(R"({"agent_id":"a","api_token":"t","poll_interval_seconds":86401})");
  ASSERT_TRUE(big.is_ok());
  EXPECT_FALSE(big->poll_interval.has_value()) << "an interval over a day is ignored, not obeyed";
  EXPECT_FALSE(parse_register_answer(R"({"agent_id":"a"})").is_ok());
  EXPECT_FALSE(parse_register_answer(R"({"agent_id":"a","api_token":""})").is_ok());
  EXPECT_FALSE(parse_register_answer("<html>502 Bad Gateway</html>").is_ok());
}

TEST(ControllerAnswers, ConfigAnswerBecomesTheWorkersBody) {
  auto c = parse_config_answer(R"({"id":3,"etag":"e-3","config":{"url":"http://t.example/","proxy":""},"extra":1})");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->etag, "e-3");
  auto w = parse_worker_config(c->worker_body);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->etag, "e-3");
  EXPECT_EQ(w->url, "http://t.example/");
  EXPECT_FALSE(parse_config_answer(R"({"etag":"e"})").is_ok());
  EXPECT_FALSE(parse_config_answer(R"({"etag":7,"config":{}})").is_ok());
}

}  // namespace
}  // namespace gantry::fleet
