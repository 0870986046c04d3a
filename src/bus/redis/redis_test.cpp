#include "bus/redis/redis.h"

#include <gtest/gtest.h>

namespace gantry::bus::redis {
namespace {

TEST(RedisEndpoint, ParsesUrls) {
  auto e = Endpoint::parse_url("redis://:s3cret@10.0.0.5:6380/3");
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->host, "10.0.0.5");
  EXPECT_EQ(e->port, 6380);
  EXPECT_EQ(e->password, "s3cret");
  EXPECT_EQ(e->db, 3);
  EXPECT_EQ(e->describe(), "10.0.0.5:6380/3");  // never the password
  auto d = Endpoint::parse_url("redis://localhost");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 0);
  EXPECT_FALSE(Endpoint::parse_url("http://x").is_ok());
  EXPECT_FALSE(Endpoint::parse_url("redis://h:99999").is_ok());
  EXPECT_FALSE(Endpoint::parse_url("redis://h:1/16").is_ok());
  EXPECT_FALSE(Endpoint::parse_url("redis:///0").is_ok());
}

TEST(RedisConnection, UnreachableServerIsUnavailable) {
  Endpoint e;
  e.port = 1;  // nothing listens on port 1
  Connection c(e);
  Status s = c.ping();
  EXPECT_EQ(s.code(), core::Code::kUnavailable);
  EXPECT_NE(s.to_string().find("127.0.0.1:1/0"), std::string::npos) << s.to_string();
}

}  // namespace
}  // namespace gantry::bus::redis
