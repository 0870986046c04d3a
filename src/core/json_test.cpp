#include "core/json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <limits>

namespace gantry::core::json {
namespace {

TEST(JsonWriter, NestedContainersCommasAndEscapes) {
  std::string out;
  Writer w(out);
  w.object()
      .field("s", "quote \" back \\ nl \n tab \t ctl \x01 é")
      .field("n", 42)
      .field("neg", int64_t{-7})
      .field("big", uint64_t{18446744073709551615ull})
      .field("t", true)
      .field_null("none")
      .key("list")
      .array();
  for (int i = 0; i < 3; ++i) w.object().field("i", i).end();
  w.array().end();
  w.end().field_raw("raw", R"({"a":[1,2]})").key("empty").object().end().end();
  EXPECT_EQ(out,
            R"({"s":"quote \" back \\ nl \n tab \t ctl \u0001 é","n":42,"neg":-7,"big":18446744073709551615,)"
            R"("t":true,"none":null,"list":[{"i":0},{"i":1},{"i":2},[]],"raw":{"a":[1,2]},"empty":{}})");
  // An independent parser reads it back to the same values.
  auto v = boost::json::parse(out).as_object();
  EXPECT_EQ(v["s"].as_string(), "quote \" back \\ nl \n tab \t ctl \x01 é");
  EXPECT_EQ(v["list"].as_array().size(), 4u);
}

TEST(JsonWriter, NumbersAreShortestOrRoundedToTheirResolution) {
  std::string out;
  Writer w(out);
  w.array().value(0.1 + 0.2).value(0.5).value(1e21).value(std::nan("")).value(std::numeric_limits<double>::infinity());
  w.value_fixed(0.09999999999999998, 3).value_fixed(12.5, 3).value_fixed(2.0, 3).value_fixed(-0.0001, 3).end();
  // 0.1 + 0.2 is not 0.3 in binary: its shortest exact text says so; value_fixed is for figures
  // measured to a resolution (a millisecond figure from microseconds: 3 decimals).
  EXPECT_EQ(out, "[0.30000000000000004,0.5,1e+21,null,null,0.1,12.5,2,0]");
}

}  // namespace
}  // namespace gantry::core::json
