#include "core/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <thread>

namespace gantry::core::log {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

TEST(Log, JsonLinesWithFieldsToRotatingFile) {
  std::string path = ::testing::TempDir() + "/gantry_log_test_" + std::to_string(::getpid()) + ".log";
  std::remove(path.c_str());
  Settings s;
  s.format = "json";
  s.level = "info";
  s.file = path;
  ASSERT_TRUE(init(s).is_ok());
  Logger lg("tester");
  lg.debug("below the level", {{"x", 1}});
  lg.info("config \"updated\"\nnext", {{"etag", "e-1"}, {"agents", 3}, {"ratio", 0.5}, {"ok", true}});
  flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the async writer drains its queue
  flush();
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 1u);
  auto v = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(v["level"].as_string(), "info");
  EXPECT_EQ(v["role"].as_string(), "tester");
  EXPECT_EQ(v["msg"].as_string(), "config \"updated\"\nnext");
  EXPECT_EQ(v["etag"].as_string(), "e-1");
  EXPECT_EQ(v["agents"].as_int64(), 3);
  EXPECT_EQ(v["ratio"].as_double(), 0.5);
  EXPECT_EQ(v["ok"].as_bool(), true);
  EXPECT_EQ(v["ts"].as_string().size(), 24u);  // 2026-11-22T10:00:00.123Z
  shutdown();
  std::remove(path.c_str());
}

TEST(Log, LevelsAndBadSettings) {
  Settings s;
  s.level = "warn";
  ASSERT_TRUE(init(s).is_ok());
  EXPECT_FALSE(enabled(Level::kInfo));
  EXPECT_TRUE(enabled(Level::kError));
  s.level = "loud";
  EXPECT_EQ(init(s).code(), Code::kInvalidArgument);
  s.level = "info";
  s.format = "xml";
  EXPECT_EQ(init(s).code(), Code::kInvalidArgument);
  s.format = "console";
  s.file = "/dev/null/y.log";  // a directory under a file cannot be created
  EXPECT_FALSE(init(s).is_ok());
  shutdown();
}

TEST(Log, JsonEscape) {
  std::string out;
  json_escape(std::string_view("a\"b\\c\x01\t", 7), out);
  EXPECT_EQ(out, "a\\\"b\\\\c\\u0001\\t");
}

}  // namespace
}  // namespace gantry::core::log
