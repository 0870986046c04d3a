#include "core/log.h"

#include "core/json.h"
#include "core/text.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace gantry::core::log {

namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_json{false};
std::mutex g_mu;  // guards (re)configuration
// Loggers are never freed, so a writer holding the raw pointer never sees it freed;
// reconfiguration is rare (start-up, shutdown), so the few kept loggers cost nothing. The
// vector is leaked on purpose: threads may log during static destruction.
auto& g_owned = *new std::vector<std::shared_ptr<spdlog::logger>>();
std::atomic<spdlog::logger*> g_logger{nullptr};
std::atomic<bool> g_async{false};
std::atomic<uint64_t> g_submitted{0};  // lines handed to the async logger

// The last sink of the async logger: counts the lines the writer thread has written to every
// other sink, so flush() can wait for a given line without a message of its own (a flush
// message could itself be dropped when the queue is full).
class CountingSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg&) override { written_.fetch_add(1, std::memory_order_release); }
  void flush() override {}
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
  uint64_t written() const { return written_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> written_{0};
};
std::shared_ptr<CountingSink> g_counter;  // of the current async logger; guarded by g_mu
std::vector<spdlog::sink_ptr> g_sinks;    // its output sinks; guarded by g_mu

spdlog::level::level_enum to_spd(Level l) { return static_cast<spdlog::level::level_enum>(static_cast<int>(l)); }

std::shared_ptr<spdlog::logger> fallback() {
  static auto l = [] {
    auto lg = std::make_shared<spdlog::logger>("gantry", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    lg->set_pattern("%Y-%m-%d %H:%M:%S.%e %-5l %v", spdlog::pattern_time_type::utc);
    return lg;
  }();
  return l;
}

std::optional<Level> parse_level(std::string_view s) {
  static constexpr std::string_view names[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (int i = 0; i < 7; ++i)
    if (s == names[i]) return static_cast<Level>(i);
  if (s == "warning") return Level::kWarn;
  return std::nullopt;
}

}  // namespace

void bind(config::Schema& schema, Settings* s) {
  schema.add("log_format", &s->format, "log line format: console or json").env("LOG_FORMAT").one_of({"console", "json"});
  schema.add("log_level", &s->level, "minimum level: trace, debug, info, warn, error, critical, off")
      .env("LOG_LEVEL")
      .check([s]() -> std::optional<std::string> {
        if (parse_level(s->level)) return std::nullopt;
        return "is not a log level (trace, debug, info, warn, error, critical, off)";
      });
  schema.add("log_file", &s->file, "also write logs to this file, rotated by size").env("LOG_FILE");
  schema.add("log_file_max_mb", &s->file_max_mb, "rotate the log file at this size").env("LOG_FILE_MAX_MB").range(1, 1 << 20);
  schema.add("log_file_count", &s->file_count, "rotated log files kept").env("LOG_FILE_COUNT").range(1, 1000);
  schema.add("log_queue_lines", &s->queue_lines, "log lines queued for the writer; beyond, the oldest are dropped")
      .env("LOG_QUEUE_LINES").range(16, 1 << 24);
}

Status init(const Settings& s) {
  auto level = parse_level(s.level);
  if (!level) return invalid_argument("unknown log level '" + s.level + "'");
  bool json = s.format == "json";
  if (!json && s.format != "console") return invalid_argument("unknown log format '" + s.format + "'");

  std::lock_guard lock(g_mu);
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  if (!s.file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          s.file, static_cast<size_t>(s.file_max_mb) * 1024 * 1024, static_cast<size_t>(s.file_count)));
    } catch (const spdlog::spdlog_ex& e) {
      return io_error(std::string("cannot open log file: ") + e.what());
    }
  }
  if (!spdlog::thread_pool()) spdlog::init_thread_pool(static_cast<size_t>(std::max(s.queue_lines, 16)), 1);
  auto counter = std::make_shared<CountingSink>();
  std::vector<spdlog::sink_ptr> all = sinks;
  all.push_back(counter);
  // overrun_oldest: a full queue drops its oldest line instead of blocking the caller (an io
  // thread must never wait on a terminal or a pipe).
  auto logger = std::make_shared<spdlog::async_logger>("gantry", all.begin(), all.end(), spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::overrun_oldest);
  // The payload (%v) is built by write(): in JSON mode it is the remaining members of the object.
  if (json)
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
  else
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::trace);  // filtering is done by enabled() before formatting
  logger->flush_on(spdlog::level::warn);
  // Lines already queued for the previous logger are not waited for: it is replaced, not freed.
  g_owned.push_back(logger);
  g_counter = counter;
  g_sinks = sinks;
  g_submitted.store(0);
  g_async = true;
  g_logger.store(logger.get(), std::memory_order_release);
  g_json = json;
  g_level = static_cast<int>(*level);
  return {};
}

namespace {
bool flush_locked(std::chrono::milliseconds limit) {
  if (!g_async.load() || !g_counter) {
    if (auto* lg = g_logger.load(std::memory_order_acquire)) lg->flush();
    return true;
  }
  uint64_t target = g_submitted.load(std::memory_order_acquire);
  auto tp = spdlog::thread_pool();
  uint64_t dropped_before = 0;  // lines dropped before the call count as handled
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool done = false;
  while (true) {
    uint64_t dropped = tp ? tp->overrun_counter() : 0;
    if (g_counter->written() + (dropped - dropped_before) >= target) {
      done = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& sink : g_sinks) sink->flush();  // the sinks are thread-safe (_mt)
  return done;
}
}  // namespace

bool flush(std::chrono::milliseconds limit) {
  std::lock_guard lock(g_mu);
  return flush_locked(limit);
}

void shutdown() {
  std::lock_guard lock(g_mu);
  flush_locked(std::chrono::seconds(5));
  if (!g_async.load() || g_sinks.empty()) return;
  // Later lines are written directly to the same sinks (thread-safe) by a synchronous logger;
  // the async logger stays alive for writers that loaded it a moment ago.
  auto sync = std::make_shared<spdlog::logger>("gantry-sync", g_sinks.begin(), g_sinks.end());
  sync->set_level(spdlog::level::trace);
  sync->flush_on(spdlog::level::trace);
  if (g_json.load())
    sync->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
  else
    sync->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  g_owned.push_back(sync);
  g_async = false;
  g_logger.store(sync.get(), std::memory_order_release);
}

uint64_t dropped_lines() {
  auto tp = spdlog::thread_pool();
  return tp ? tp->overrun_counter() : 0;
}

bool enabled(Level l) noexcept { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

void json_escape(std::string_view s, std::string& out) { json::append_escaped(s, out); }

namespace {
// A console field's value: bare, or quoted and escaped when it would not read back as one token.
// Control characters are escaped too: a value from outside holding a newline would otherwise
// forge a log line of its own, and an escape sequence would act on the reader's terminal.
void append_value(const Value& v, std::string& out) {
  switch (v.kind()) {
    case Value::kStr:
      if (v.str().empty() || v.str().find_first_of(" \"=") != std::string_view::npos || has_control(v.str())) {
        json::append_string(v.str(), out);
      } else {
        out += v.str();
      }
      break;
    case Value::kBool: out += v.i() ? "true" : "false"; break;
    case Value::kInt: fmt::format_to(std::back_inserter(out), "{}", v.i()); break;
    case Value::kDouble: fmt::format_to(std::back_inserter(out), "{}", v.d()); break;
  }
}
}  // namespace

void write(Level level, std::string_view role, std::string_view msg, Fields fields) {
  bool json = g_json.load(std::memory_order_relaxed);
  std::string line;
  line.reserve(128 + msg.size());
  if (json) {
    // The members after ts and level (the pattern holds the braces): an object, unwrapped.
    json::Writer w(line);
    w.object().field("role", role).field("msg", msg);
    for (auto& f : fields) {
      w.key(f.key);
      switch (f.value.kind()) {
        case Value::kStr: w.value(f.value.str()); break;
        case Value::kBool: w.value(f.value.i() != 0); break;
        case Value::kInt: w.value(static_cast<long long>(f.value.i())); break;
        case Value::kDouble: w.value(f.value.d()); break;
      }
    }
    w.end();
    line.pop_back();
    line.erase(0, 1);
  } else {
    line += '[';
    line += role;
    line += "] ";
    line += msg;
    for (auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      append_value(f.value, line);
    }
  }
  spdlog::logger* lg = g_logger.load(std::memory_order_acquire);
  if (!lg) lg = fallback().get();
  else if (g_async.load(std::memory_order_relaxed)) g_submitted.fetch_add(1, std::memory_order_release);
  lg->log(to_spd(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace gantry::core::log
