#include "core/log.h"

#include <atomic>
#include <mutex>

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
// Loggers are kept until shutdown() so a writer holding the raw pointer never sees it freed;
// reconfiguration is rare (start-up), so the few kept loggers cost nothing.
std::vector<std::shared_ptr<spdlog::logger>> g_owned;
std::atomic<spdlog::logger*> g_logger{nullptr};

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
  if (!spdlog::thread_pool()) spdlog::init_thread_pool(16384, 1);
  auto logger = std::make_shared<spdlog::async_logger>("gantry", sinks.begin(), sinks.end(), spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::block);
  // The payload (%v) is built by write(): in JSON mode it is the remaining members of the object.
  if (json)
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
  else
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::trace);  // filtering is done by enabled() before formatting
  logger->flush_on(spdlog::level::warn);
  g_owned.push_back(logger);
  g_logger.store(logger.get(), std::memory_order_release);
  g_json = json;
  g_level = static_cast<int>(*level);
  return {};
}

void flush() {
  if (auto* lg = g_logger.load(std::memory_order_acquire)) lg->flush();
}

void shutdown() {
  std::lock_guard lock(g_mu);
  if (auto* lg = g_logger.exchange(nullptr)) lg->flush();
  // Join the writer thread (it finishes the queue) before the loggers and sinks it writes to
  // are destroyed.
  spdlog::shutdown();
  g_owned.clear();
}

bool enabled(Level l) noexcept { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

void json_escape(std::string_view s, std::string& out) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

namespace {
void append_value(const Value& v, bool json, std::string& out) {
  switch (v.kind()) {
    case Value::kStr:
      if (json) {
        out += '"';
        json_escape(v.str(), out);
        out += '"';
      } else {
        bool quote = v.str().empty() || v.str().find_first_of(" \"=") != std::string_view::npos;
        if (quote) {
          out += '"';
          json_escape(v.str(), out);
          out += '"';
        } else {
          out += v.str();
        }
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
    line += "\"role\":\"";
    json_escape(role, line);
    line += "\",\"msg\":\"";
    json_escape(msg, line);
    line += '"';
    for (auto& f : fields) {
      line += ",\"";
      json_escape(f.key, line);
      line += "\":";
      append_value(f.value, true, line);
    }
  } else {
    line += '[';
    line += role;
    line += "] ";
    line += msg;
    for (auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      append_value(f.value, false, line);
    }
  }
  spdlog::logger* lg = g_logger.load(std::memory_order_acquire);
  if (!lg) lg = fallback().get();
  lg->log(to_spd(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace gantry::core::log
