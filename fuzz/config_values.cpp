// Settings as they arrive from flags, the environment and a TOML file: every value type the
// config mechanism parses (bool, port, int, number, duration, list, string), with ranges.
// The input is split at NUL bytes: the first part is a TOML document, the next parts are
// values given as flags, then as environment variables, field by field. Invariant: a load
// that fails leaves every value as it was.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace config = gantry::core::config;

namespace {
struct Settings {
  bool flag = false;
  uint16_t port = 8080;
  int count = 5;
  double ratio = 0.5;
  std::chrono::milliseconds timeout{5000};
  std::vector<std::string> list{"a"};
  std::string text = "x";
  bool operator==(const Settings&) const = default;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) parts.emplace_back();
    else parts.back() += static_cast<char>(data[i]);
  }
  Settings st;
  config::Schema s("role");
  const char* keys[] = {"flag", "port", "count", "ratio", "timeout", "list", "text"};
  s.add("flag", &st.flag, "b").env("FZ_FLAG");
  s.add("port", &st.port, "p").env("FZ_PORT");
  s.add("count", &st.count, "i").env("FZ_COUNT").range(1, 1000);
  s.add("ratio", &st.ratio, "d").env("FZ_RATIO").range(0, 1);
  s.add("timeout", &st.timeout, "t").env("FZ_TIMEOUT").range(1, 3'600'000);
  s.add("list", &st.list, "l").env("FZ_LIST");
  s.add("text", &st.text, "s").env("FZ_TEXT");
  config::Inputs in;
  size_t next = 1;
  for (const char* k : keys)
    if (next < parts.size()) in.flags[k] = parts[next++];
  std::vector<std::pair<std::string, std::string>> env;
  for (const char* e : {"FZ_FLAG", "FZ_PORT", "FZ_COUNT", "FZ_RATIO", "FZ_TIMEOUT", "FZ_LIST", "FZ_TEXT"})
    if (next < parts.size()) env.emplace_back(e, parts[next++]);
  in.env = [&](const std::string& n) -> std::optional<std::string> {
    for (auto& [k, v] : env)
      if (k == n) return v;
    return std::nullopt;
  };
  // The TOML document through a file, as a deployment gives it.
  int fd = ::memfd_create("fuzz-toml", 0);
  if (fd < 0) return 0;
  if (::write(fd, parts[0].data(), parts[0].size()) != static_cast<ssize_t>(parts[0].size())) {
    ::close(fd);
    return 0;
  }
  in.file = "/proc/self/fd/" + std::to_string(fd);
  Settings before = st;
  auto status = s.load(in);
  ::close(fd);
  if (!status.is_ok() && !(st == before)) std::abort();  // a failed load changes nothing
  (void)s.print();
  return 0;
}
