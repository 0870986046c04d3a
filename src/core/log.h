// Structured logging: one line per event, JSON (LOG_FORMAT=json) or human-readable console
// text, with key/value fields:
//
//   const log::Logger controller_log("controller");
//   controller_log.info("config updated", {{"etag", etag}, {"agents", n}});
//   -> {"ts":"2026-11-22T10:00:00.123Z","level":"info","role":"controller","msg":"config updated","etag":"…","agents":3}
//   -> 2026-11-22 10:00:00.123 info  [controller] config updated etag=… agents=3
//
// Writing is asynchronous (a background thread does the I/O), so a log line costs a format and
// a queue push on the caller's thread, and never waits: when the queue is full (the output
// cannot keep up, or stdout is a pipe nobody reads) the oldest queued line is dropped and
// counted in log_lines_dropped_total. Secrets must never be passed as fields.
//
// A file's logger is named after the file (controller.cpp: controller_log), not `lg`: the
// build compiles a library's sources together in unity batches, where two files' anonymous
// namespaces are one.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/config.h"

namespace gantry::core::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };

struct Settings {
  std::string format = "console";  // console | json
  std::string level = "info";      // trace | debug | info | warn | error | critical | off
  std::string file;                // also write to this file, rotated; empty = stdout only
  int file_max_mb = 100;
  int file_count = 5;
  int queue_lines = 16384;  // lines waiting for the writer before the oldest are dropped
};
// LOG_FORMAT, LOG_LEVEL, LOG_FILE, LOG_FILE_MAX_MB, LOG_FILE_COUNT, LOG_QUEUE_LINES.
void bind(config::Schema& schema, Settings* s);

// (Re)configures the process logger. Safe to call again; logs before the first call go to
// stderr in console format at info level. queue_lines takes effect at the first call only.
Status init(const Settings& s);
// Returns once every line logged before the call is written and the outputs flushed, or after
// `limit` (a writer stuck on a full pipe must not hang a shutdown); false in that case.
bool flush(std::chrono::milliseconds limit = std::chrono::seconds(5));
// Flushes (bounded as flush()) and from then on writes synchronously on the caller's thread,
// for the last words of an exiting process. Safe while other threads log: no logger is freed.
void shutdown();
// Lines dropped because the queue was full, since the start.
uint64_t dropped_lines();

bool enabled(Level l) noexcept;

// A field value that does not own string data: it must outlive the call only.
class Value {
 public:
  Value(std::string_view s) : kind_(kStr), s_(s) {}              // NOLINT
  Value(const char* s) : kind_(kStr), s_(s) {}                   // NOLINT
  Value(const std::string& s) : kind_(kStr), s_(s) {}            // NOLINT
  Value(bool b) : kind_(kBool), i_(b) {}                         // NOLINT
  Value(int v) : kind_(kInt), i_(v) {}                           // NOLINT
  Value(long v) : kind_(kInt), i_(v) {}                          // NOLINT
  Value(long long v) : kind_(kInt), i_(v) {}                     // NOLINT
  Value(unsigned v) : kind_(kInt), i_(v) {}                      // NOLINT
  Value(unsigned long v) : kind_(kInt), i_(static_cast<int64_t>(v)) {}       // NOLINT
  Value(unsigned long long v) : kind_(kInt), i_(static_cast<int64_t>(v)) {}  // NOLINT
  Value(double v) : kind_(kDouble), d_(v) {}                     // NOLINT

  enum Kind { kStr, kBool, kInt, kDouble };
  Kind kind() const { return kind_; }
  std::string_view str() const { return s_; }
  int64_t i() const { return i_; }
  double d() const { return d_; }

 private:
  Kind kind_;
  std::string_view s_;
  int64_t i_ = 0;
  double d_ = 0;
};

struct Field {
  std::string_view key;
  Value value;
};
using Fields = std::initializer_list<Field>;

// A duration as a log field, in milliseconds to 0.1 ms: what a reader of the log can use (the
// nanoseconds behind it read as noise: "wait_ms=1096.689409").
template <class Rep, class Period>
double ms(std::chrono::duration<Rep, Period> d) {
  return std::round(std::chrono::duration<double, std::milli>(d).count() * 10) / 10;
}

void write(Level level, std::string_view role, std::string_view msg, Fields fields);

class Logger {
 public:
  explicit Logger(std::string_view role) : role_(role) {}
  void trace(std::string_view m, Fields f = {}) const { if (enabled(Level::kTrace)) write(Level::kTrace, role_, m, f); }
  void debug(std::string_view m, Fields f = {}) const { if (enabled(Level::kDebug)) write(Level::kDebug, role_, m, f); }
  void info(std::string_view m, Fields f = {}) const { if (enabled(Level::kInfo)) write(Level::kInfo, role_, m, f); }
  void warn(std::string_view m, Fields f = {}) const { if (enabled(Level::kWarn)) write(Level::kWarn, role_, m, f); }
  void error(std::string_view m, Fields f = {}) const { if (enabled(Level::kError)) write(Level::kError, role_, m, f); }
  std::string_view role() const { return role_; }

 private:
  std::string_view role_;  // a string literal or otherwise outliving the logger
};

// Appends s to out as the inside of a JSON string (quotes not included).
void json_escape(std::string_view s, std::string& out);

}  // namespace gantry::core::log
