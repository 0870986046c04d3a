#include "core/log.h"

#include <atomic>
#include <vector>
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
  ASSERT_TRUE(flush());
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

// flush() used to queue a flush and return at once: lines logged just before were often not
// in the file yet.
TEST(Log, FlushReturnsOnceEveryEarlierLineIsWritten) {
  std::string path = ::testing::TempDir() + "/gantry_log_flush_" + std::to_string(::getpid()) + ".log";
  std::remove(path.c_str());
  Settings s;
  s.format = "json";
  s.level = "info";
  s.file = path;
  ASSERT_TRUE(init(s).is_ok());
  Logger lg("flusher");
  for (int i = 0; i < 3000; ++i) lg.info("line", {{"i", i}});
  ASSERT_TRUE(flush());
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 3000u);
  EXPECT_NE(lines.back().find("\"i\":2999"), std::string::npos) << lines.back();
  shutdown();
  std::remove(path.c_str());
}

// shutdown() used to free the loggers while other threads (roles still running when the
// runtime's watchdog gives up) were writing through them. Now they keep writing, synchronously.
TEST(Log, ShutdownWhileOtherThreadsLogLosesNothingAfterward) {
  std::string path = ::testing::TempDir() + "/gantry_log_shutdown_" + std::to_string(::getpid()) + ".log";
  std::remove(path.c_str());
  Settings s;
  s.format = "json";
  s.file = path;
  ASSERT_TRUE(init(s).is_ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      Logger lg("busy");
      while (!stop) {
        lg.warn("still running");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  shutdown();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : ts) t.join();
  Logger("last").error("after shutdown");
  auto lines = read_lines(path);  // written synchronously: no flush needed
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("after shutdown"), std::string::npos) << lines.back();
  ASSERT_TRUE(init(Settings{}).is_ok());  // and the logger can be set up again
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

TEST(Log, DurationsAreLoggedInMillisecondsToATenth) {
  using namespace std::chrono;
  EXPECT_EQ(ms(nanoseconds(1'096'689'409)), 1096.7);
  EXPECT_EQ(ms(milliseconds(250)), 250.0);
  EXPECT_EQ(ms(duration<double>(0.0051)), 5.1);
  EXPECT_EQ(ms(microseconds(40)), 0.0);
}

TEST(Log, AConsoleValueWithControlCharactersIsQuotedAndEscaped) {
  std::string path = ::testing::TempDir() + "/gantry_log_console_" + std::to_string(::getpid()) + ".log";
  std::remove(path.c_str());
  Settings s;
  s.file = path;
  ASSERT_TRUE(init(s).is_ok());
  Logger lg("tester");
  lg.info("bad message", {{"body", "x\nforged\x1b[2J"}, {"plain", "abc"}, {"tab", "a\tb"}});
  ASSERT_TRUE(flush());
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(R"(body="x\nforged\u001b[2J" plain=abc tab="a\tb")"), std::string::npos) << lines[0];
  shutdown();
  std::remove(path.c_str());
}

TEST(Log, JsonEscape) {
  std::string out;
  json_escape(std::string_view("a\"b\\c\x01\t", 7), out);
  EXPECT_EQ(out, "a\\\"b\\\\c\\u0001\\t");
}

}  // namespace
}  // namespace gantry::core::log
