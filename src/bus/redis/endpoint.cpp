// Redis URLs: parsed without a connection (outside input: settings, flags; fuzzed).
#include <charconv>
#include <optional>
#include <string>

#include "bus/redis/redis.h"

namespace gantry::bus::redis {

using core::Code;

namespace {

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}


}  // namespace

Result<Endpoint> Endpoint::parse_url(std::string_view url) {
  Endpoint e;
  std::string_view rest = url;
  if (rest.rfind("redis://", 0) == 0) rest.remove_prefix(8);
  // The URL is never echoed: it may hold a password.
  else return Status(Code::kInvalidArgument, "expected redis://[user:password@]host[:port][/db]");
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    auto colon = cred.find(':');
    auto user = percent_decode(colon == std::string_view::npos ? std::string_view() : cred.substr(0, colon));
    auto pass = percent_decode(colon == std::string_view::npos ? cred : cred.substr(colon + 1));
    if (!user || !pass) return Status(Code::kInvalidArgument, "bad percent-encoding in the user or password of a Redis URL");
    e.user = std::move(*user);
    e.password = std::move(*pass);
    rest.remove_prefix(at + 1);
  }
  std::string_view hostport = rest.substr(0, rest.find('/'));
  if (rest.find('/') != std::string_view::npos) {
    std::string_view db = rest.substr(rest.find('/') + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), e.db);
      if (ec != std::errc() || p != db.data() + db.size() || e.db < 0 || e.db > 15)
        return Status(Code::kInvalidArgument, "bad Redis database '" + std::string(db) + "' (0-15)");
    }
  }
  auto colon = hostport.rfind(':');
  e.host = std::string(hostport.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view port = hostport.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (ec != std::errc() || p != port.data() + port.size() || e.port <= 0 || e.port > 65535)
      return Status(Code::kInvalidArgument, "bad Redis port '" + std::string(port) + "'");
  }
  if (e.host.empty()) return Status(Code::kInvalidArgument, "no host in the Redis URL");
  return e;
}

std::string Endpoint::describe() const { return host + ":" + std::to_string(port) + "/" + std::to_string(db); }

}  // namespace gantry::bus::redis
