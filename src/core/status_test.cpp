#include "core/status.h"

#include <gtest/gtest.h>

namespace gantry::core {
namespace {

TEST(Status, OkByDefaultAndCheap) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_EQ(sizeof(Status), sizeof(void*));  // the OK path is one null pointer
}

TEST(Status, CarriesCodeMessageAndWhere) {
  Status s(Code::kUnavailable, "connection refused", "pg.connect");
  EXPECT_FALSE(s.is_ok());
  s.within("store");
  EXPECT_EQ(s.where(), "store: pg.connect");
  EXPECT_EQ(s.to_string(), "unavailable: store: pg.connect: connection refused");
  Status copy = s;
  EXPECT_EQ(copy.to_string(), s.to_string());
}

TEST(Status, OkCodeWithMessageIsStillOk) {
  Status s(Code::kOk, "ignored");
  EXPECT_TRUE(s.is_ok());
}

Result<int> half(int v) {
  if (v % 2) return invalid_argument("odd");
  return v / 2;
}

Status chain(int v, int* out) {
  auto r = half(v);
  if (!r) return r.status();
  *out = *r;
  GANTRY_RETURN_IF_ERROR(half(*out).status());
  return {};
}

TEST(Result, ValueOrStatus) {
  auto ok = half(4);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.value_or(-1), -1);
  int out = 0;
  EXPECT_TRUE(chain(8, &out).is_ok());
  EXPECT_EQ(chain(6, &out).code(), Code::kInvalidArgument);  // 6/2 = 3 is odd
}

}  // namespace
}  // namespace gantry::core
