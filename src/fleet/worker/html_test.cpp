#include "fleet/worker/html.h"

#include <gtest/gtest.h>

namespace gantry::fleet::worker {
namespace {

TEST(Html, DetectsByContentTypeOrLeadingAngle) {
  EXPECT_TRUE(is_html("text/html; charset=utf-8", "x"));
  EXPECT_TRUE(is_html("application/xhtml+xml", ""));
  EXPECT_FALSE(is_html("application/json", "<not html>"));
  EXPECT_TRUE(is_html("", "  \n<!doctype html><p>x"));
  EXPECT_FALSE(is_html("", "plain"));
}

TEST(Html, BodyTextIsCollapsedTrimmedWithoutScripts) {
  std::string page = R"(<html><head><title>T</title><style>p{}</style></head>
    <body>
      <h1>Hello</h1><p>big   <b>wide</b>
      world</p><script>var x = 1;</script>
    </body></html>)";
  EXPECT_EQ(body_text(page), "Hello big wide world");
  EXPECT_EQ(body_text("<p>no body tag</p>"), "no body tag");
  EXPECT_EQ(body_text("<body>caf\xc3\xa9 &amp; cr&egrave;me</body>"), "caf\xc3\xa9 & cr\xc3\xa8me");
}

TEST(Html, InputValueByName) {
  std::string page = R"(<form><input name="q" value="nope"><input type="text" name="ip" value="203.0.113.7"></form>)";
  EXPECT_EQ(input_value(page, "ip"), "203.0.113.7");
  EXPECT_EQ(input_value(page, "missing"), std::nullopt);
}

TEST(Html, Trim) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  EXPECT_EQ(trim(" \t "), "");
}

}  // namespace
}  // namespace gantry::fleet::worker
