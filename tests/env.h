// Where the integration tests find the servers scripts/servers started.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

namespace gantry::testing {

using core::Status;

// The gantry binary the build wrote, which the tests start as processes.
inline constexpr const char* kBin = GANTRY_BINARY;

// A name no other run of the tests uses (streams, queues, keys, databases): prefix, pid and a
// random number.
inline std::string unique(const std::string& prefix) {
  return prefix + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}() % 100000);
}

// A file's whole content; empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Milliseconds since the Unix epoch, as telemetry events carry them.
inline int64_t now_ms() { return core::unix_ms(std::chrono::system_clock::now()); }

// The i-th of a series of valid, distinct UUIDs (event ids).
inline std::string uuid(int i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", i);
  return buf;
}

// The value of a GANTRY_*_URL variable. Missing means the tests were run without servers,
// which is a failure (never a skip): run them with `make test`, or after
// `eval "$(scripts/servers start)"`.
inline std::string server_url(const char* var) {
  const char* v = std::getenv(var);
  if (!v || !*v) {
    ADD_FAILURE() << var << " is not set: start the servers with `eval \"$(scripts/servers start)\"` or run `make test`";
    return {};
  }
  return v;
}

// host and port of scheme://[user[:pass]@]host:port[/...]
inline std::pair<std::string, int> host_port(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto at = url.find('@', start);
  auto slash = url.find('/', start);
  if (at != std::string::npos && (slash == std::string::npos || at < slash)) start = at + 1;
  auto end = url.find('/', start);
  std::string hp = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  auto colon = hp.rfind(':');
  return {hp.substr(0, colon), std::stoi(hp.substr(colon + 1))};
}

// Polls pred every 10 ms until it holds or `limit` passes; returns its last answer. For
// waiting on something another thread or process does (a reconnect, a delivery).
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// The value of a metric series ("name" or "name{labels}", labels as exposed) in Prometheus
// text; -1 when absent.
inline double metric(const std::string& text, const std::string& series) {
  size_t brace = series.find('{');
  std::string_view name = std::string_view(series).substr(0, brace);
  std::string_view labels = brace == std::string::npos ? std::string_view() : std::string_view(series).substr(brace + 1, series.size() - brace - 2);
  std::optional<double> found;
  core::metrics::for_each_sample(text, [&](const core::metrics::Sample& s) {
    if (!found && s.name == name && s.labels == labels) found = s.value;
  });
  return found.value_or(-1);
}

}  // namespace gantry::testing
