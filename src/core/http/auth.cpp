#include "core/http/auth.h"

#include <strings.h>

namespace gantry::core::http {

bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
  // Walk the expected secret whatever was given; an empty guess still costs a full pass.
  volatile unsigned char diff = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = given.empty() ? 0 : static_cast<unsigned char>(given[i % given.size()]);
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // a dangling single character is not base64
  return out;
}

std::optional<BasicCredentials> parse_basic(std::string_view h) {
  if (h.size() < 6 || strncasecmp(h.data(), "Basic ", 6) != 0) return std::nullopt;
  h.remove_prefix(6);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  auto decoded = base64_decode(h);
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

bool check_basic(const Request& req, std::string_view user, std::string_view password) {
  auto c = parse_basic(req.header("Authorization"));
  if (!c) return false;
  // Both comparisons always run, so a wrong user and a wrong password take the same time.
  bool u = constant_time_equal(c->user, user);
  bool p = constant_time_equal(c->password, password);
  return u & p;
}

void basic_challenge(Response& resp, std::string_view realm, std::string body) {
  resp.json(401, std::move(body));
  resp.set_header("WWW-Authenticate", "Basic realm=\"" + std::string(realm) + "\"");
}

Bearer parse_bearer(const Request& req) {
  std::string_view h = req.header("Authorization");
  if (h.empty()) return {{}, BearerError::kMissing};
  if (h.size() < 6 || strncasecmp(h.data(), "Bearer", 6) != 0 || (h.size() > 6 && h[6] != ' '))
    return {{}, BearerError::kMalformed};
  h.remove_prefix(6);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.empty()) return {{}, BearerError::kEmpty};
  return {h, BearerError::kNone};
}

std::string_view describe(BearerError e) {
  switch (e) {
    case BearerError::kNone: return "";
    case BearerError::kMissing: return "missing authorization header";
    case BearerError::kMalformed: return "malformed authorization header";
    case BearerError::kEmpty: return "empty bearer token";
  }
  return "";
}

}  // namespace gantry::core::http
