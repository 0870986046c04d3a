#include "core/http/auth.h"

#include <gtest/gtest.h>

namespace gantry::core::http {
namespace {

TEST(Auth, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("secret", "secret"));
  EXPECT_FALSE(constant_time_equal("secreT", "secret"));
  EXPECT_FALSE(constant_time_equal("secret1", "secret"));
  EXPECT_FALSE(constant_time_equal("", "secret"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("x", ""));
}

TEST(Auth, Base64RoundTrip) {
  for (std::string s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", "admin:password", std::string("\0\xff", 2)}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("admin:password"), "YWRtaW46cGFzc3dvcmQ=");
  EXPECT_FALSE(base64_decode("a$b="));
}

TEST(Auth, Basic) {
  auto good = Request::make(Method::kGet, "/", "", {{"Authorization", "Basic YWRtaW46cGFzc3dvcmQ="}});
  EXPECT_TRUE(check_basic(*good, "admin", "password"));
  EXPECT_FALSE(check_basic(*good, "admin", "passwordx"));
  EXPECT_FALSE(check_basic(*good, "root", "password"));
  auto none = Request::make(Method::kGet, "/");
  EXPECT_FALSE(check_basic(*none, "admin", "password"));
  auto garbage = Request::make(Method::kGet, "/", "", {{"Authorization", "Basic !!!"}});
  EXPECT_FALSE(check_basic(*garbage, "admin", "password"));
  auto nocolon = Request::make(Method::kGet, "/", "", {{"Authorization", "Basic " + base64_encode("admin")}});
  EXPECT_FALSE(parse_basic(nocolon->header("Authorization")));
  auto colon_in_pw = parse_basic("basic " + base64_encode("u:p:q"));
  ASSERT_TRUE(colon_in_pw);
  EXPECT_EQ(colon_in_pw->password, "p:q");
  Response r;
  basic_challenge(r, "Restricted", R"({"message":"Invalid auth"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("WWW-Authenticate"), "Basic realm=\"Restricted\"");
}

TEST(Auth, Bearer) {
  auto t = [](std::string h) {
    auto req = h.empty() ? Request::make(Method::kGet, "/") : Request::make(Method::kGet, "/", "", {{"Authorization", h}});
    auto b = parse_bearer(*req);
    return std::make_pair(std::string(b.token), b.error);
  };
  EXPECT_EQ(t("Bearer abc"), std::make_pair(std::string("abc"), BearerError::kNone));
  EXPECT_EQ(t("").second, BearerError::kMissing);
  EXPECT_EQ(t("Token abc").second, BearerError::kMalformed);
  EXPECT_EQ(t("Bearerabc").second, BearerError::kMalformed);
  EXPECT_EQ(t("Bearer   ").second, BearerError::kEmpty);
  EXPECT_EQ(t("Bearer").second, BearerError::kEmpty);
  EXPECT_EQ(describe(BearerError::kMissing), "missing authorization header");
}

}  // namespace
}  // namespace gantry::core::http
