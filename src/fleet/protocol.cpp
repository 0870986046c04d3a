#include "fleet/protocol.h"

#include <openssl/evp.h>

#include <charconv>
#include <random>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "core/clock.h"
#include "core/http/message.h"
#include "core/json.h"
#include "core/text.h"

namespace gantry::fleet {

namespace json = boost::json;
using core::Status;

std::string to_json(const PushMessage& m) {
  std::string out;
  core::json::Writer(out)
      .object()
      .field("agent_id", m.agent_id)
      .field("etag", m.etag)
      .field("correlation_id", m.correlation_id)
      .end();
  return out;
}

namespace {

core::Result<json::object> object_of(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return core::invalid_argument("invalid JSON body: " + ec.message());
  if (!v.is_object()) return core::invalid_argument("body must be a JSON object");
  return std::move(v.get_object());
}

// A string member; an absent (or, when optional, null) one leaves *out as it was.
Status string_field(const json::object& o, std::string_view key, bool required, std::string* out) {
  const json::value* v = o.if_contains(key);
  if (!v || (v->is_null() && !required)) {
    return required ? core::invalid_argument("missing required field: " + std::string(key)) : Status();
  }
  if (!v->is_string()) return core::invalid_argument("field " + std::string(key) + " must be a string");
  *out = std::string(v->get_string());
  return {};
}

}  // namespace

core::Result<RegisterBody> parse_register(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  RegisterBody b;
  GANTRY_RETURN_IF_ERROR(string_field(o, "hostname", true, &b.hostname));
  GANTRY_RETURN_IF_ERROR(string_field(o, "start_time", true, &b.start_time));
  GANTRY_RETURN_IF_ERROR(string_field(o, "version", false, &b.version));
  if (b.hostname.empty()) return core::invalid_argument("hostname must not be empty");
  if (!core::parse_rfc3339(b.start_time))
    return core::invalid_argument("start_time must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z");
  return b;
}

core::Result<ConfigBody> parse_config_body(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  ConfigBody b;
  GANTRY_RETURN_IF_ERROR(string_field(o, "url", true, &b.url));
  GANTRY_RETURN_IF_ERROR(string_field(o, "proxy", false, &b.proxy));
  if (auto e = check_target_url(b.url, &b.url)) return core::invalid_argument(*e);
  if (auto e = check_proxy(b.proxy)) return core::invalid_argument(*e);
  return b;
}

core::Result<HeartbeatBody> parse_heartbeat(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  HeartbeatBody b;
  GANTRY_RETURN_IF_ERROR(string_field(o, "config_version", true, &b.config_version));
  GANTRY_RETURN_IF_ERROR(string_field(o, "status", false, &b.status));
  if (b.status.empty()) b.status = "online";
  return b;
}

core::Result<std::optional<int>> parse_interval(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  const json::value* v = o.if_contains("poll_interval_seconds");
  if (!v) v = o.if_contains("pollIntervalSeconds");
  if (!v) return core::invalid_argument("body must have poll_interval_seconds (or pollIntervalSeconds): a number or null");
  if (v->is_null()) return std::optional<int>();
  auto n = v->is_int64() ? std::optional<int64_t>(v->get_int64())
           : v->is_uint64() && v->get_uint64() <= INT64_MAX ? std::optional<int64_t>(static_cast<int64_t>(v->get_uint64()))
                                                            : std::nullopt;
  if (!n || *n < 1 || *n > kMaxInterval)
    return core::invalid_argument("poll_interval_seconds must be a whole number 1..86400, or null for the default");
  return std::optional<int>(static_cast<int>(*n));
}

core::Result<WorkerConfig> parse_worker_config(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  const json::value* etag = o.if_contains("etag");
  if (!etag || !etag->is_string() || etag->get_string().empty())
    return core::invalid_argument("etag is required and must be a non-empty string");
  const json::value* data = o.if_contains("config_data");
  if (!data) data = o.if_contains("config");  // the controller's own name for it
  if (!data || !data->is_object()) return core::invalid_argument("config_data is required and must be an object");
  WorkerConfig c;
  c.etag = std::string(etag->get_string());
  if (const json::value* id = o.if_contains("id"); id && !id->is_null())
    c.id = id->is_string() ? std::string(id->get_string()) : json::serialize(*id);
  const json::object& d = data->get_object();
  for (auto [key, dest] : {std::pair{"url", &c.url}, std::pair{"proxy", &c.proxy}}) {
    const json::value* f = d.if_contains(key);
    if (!f || f->is_null()) continue;
    if (!f->is_string()) return core::invalid_argument(std::string("config_data.") + key + " must be a string");
    *dest = std::string(f->get_string());
  }
  if (!c.url.empty())
    if (auto e = check_target_url(c.url, &c.url)) return core::invalid_argument(*e);
  if (auto e = check_proxy(c.proxy)) return core::invalid_argument(*e);
  return c;
}

core::Result<PushMessage> parse_push(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return core::invalid_argument("push message is not a JSON object");
  const json::object& o = v.get_object();
  PushMessage m;
  auto str = [&](std::string_view k, std::string* out) {
    if (const json::value* f = o.if_contains(k); f && f->is_string()) *out = std::string(f->get_string());
  };
  str("agent_id", &m.agent_id);
  str("etag", &m.etag);
  str("correlation_id", &m.correlation_id);
  return m;
}

std::optional<std::string> check_target_url(std::string_view url, std::string* normalized) {
  // Go's url.Parse, which the original validated with, takes bytes RFC 3986 does not (UTF-8,
  // spaces, quotes): they are percent-encoded here, as Go's client sends them. Control
  // characters stay refused, as Go refuses them.
  std::string encoded;
  encoded.reserve(url.size());
  for (unsigned char ch : url) {
    if (core::is_control(static_cast<char>(ch))) return "url contains a control character";
    if (ch >= 0x80 || ch == ' ' || ch == '"' || ch == '<' || ch == '>' || ch == '\\' || ch == '^' || ch == '`' ||
        ch == '{' || ch == '|' || ch == '}') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      encoded += '%';
      encoded += kHex[ch >> 4];
      encoded += kHex[ch & 15];
    } else {
      encoded += static_cast<char>(ch);
    }
  }
  auto u = boost::urls::parse_absolute_uri(encoded);
  if (!u) return "url must be an absolute http(s) URL, got \"" + std::string(url) + "\"";
  if (u->scheme() != "http" && u->scheme() != "https") return "url scheme must be http or https, got \"" + std::string(u->scheme()) + "\"";
  if (!u->has_authority() || u->host().empty()) return "url has no host: \"" + std::string(url) + "\"";
  if (normalized) *normalized = std::move(encoded);
  return std::nullopt;
}

std::optional<std::string> check_proxy(std::string_view proxy) {
  if (proxy.empty()) return std::nullopt;
  if (proxy.find("://") != std::string_view::npos) {
    if (check_target_url(proxy)) return "proxy URL must be http(s)://[user:pass@]host:port";
    return std::nullopt;
  }
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t c = proxy.find(':', start);
    parts.push_back(proxy.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start));
    if (c == std::string_view::npos) break;
    start = c + 1;
  }
  if ((parts.size() != 2 && parts.size() != 4) || parts[0].empty())
    return "proxy must be host:port or host:port:user:pass";
  int port = 0;
  for (char ch : parts[1]) {
    if (ch < '0' || ch > '9' || port > 65535) return "proxy port must be a number 1..65535";
    port = port * 10 + (ch - '0');
  }
  if (port < 1 || port > 65535) return "proxy port must be a number 1..65535";
  return std::nullopt;
}

std::string proxy_url(std::string_view proxy) {
  if (proxy.empty() || proxy.find("://") != std::string_view::npos) return std::string(proxy);
  size_t c1 = proxy.find(':');
  size_t c2 = c1 == std::string_view::npos ? c1 : proxy.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return "http://" + std::string(proxy);
  size_t c3 = proxy.find(':', c2 + 1);
  std::string_view hostport = proxy.substr(0, c2);
  std::string_view user = proxy.substr(c2 + 1, c3 == std::string_view::npos ? std::string_view::npos : c3 - c2 - 1);
  std::string_view pass = c3 == std::string_view::npos ? std::string_view{} : proxy.substr(c3 + 1);
  return "http://" + std::string(user) + ":" + std::string(pass) + "@" + std::string(hostport);
}

std::optional<std::string> split_listen_addr(const std::string& addr, std::string* host, uint16_t* port) {
  size_t c = addr.rfind(':');
  if (c == std::string::npos) return "must be [host]:port, e.g. :8080";
  int p = 0;
  auto [ptr, ec] = std::from_chars(addr.data() + c + 1, addr.data() + addr.size(), p);
  if (ec != std::errc() || ptr != addr.data() + addr.size() || p < 0 || p > 65535) return "port must be 0..65535";
  *host = c == 0 ? "0.0.0.0" : addr.substr(0, c);
  *port = static_cast<uint16_t>(p);
  return std::nullopt;
}

std::optional<std::string> check_listen_addr(const std::string& addr) {
  if (addr.empty()) return std::nullopt;
  std::string h;
  uint16_t p;
  return split_listen_addr(addr, &h, &p);
}

void bind(core::config::Schema& s, Listen* l, const std::string& env_prefix) {
  s.add("address", &l->address, "listen address").env(env_prefix + "_HOST");
  s.add("port", &l->port, "listen port (0 = any free port)").env(env_prefix + "_PORT");
  s.add("addr", &l->addr, "listen as [host]:port, the original's form (overrides address and port)")
      .env(env_prefix + "_ADDR")
      .check([l] { return check_listen_addr(l->addr); });
}

void apply(const Listen& l, core::http::ServerOptions* o) {
  o->address = l.address;
  o->port = l.port;
  if (!l.addr.empty()) (void)split_listen_addr(l.addr, &o->address, &o->port);
}

bus::redis::Endpoint RedisPush::endpoint() const {
  bus::redis::Endpoint ep;
  ep.host = host;
  ep.port = port;
  ep.password = password;
  ep.db = db;
  return ep;
}

void bind(core::config::Schema& s, RedisPush* r, const std::string& enabled_help) {
  s.add("redis_enabled", &r->enabled, enabled_help).env("REDIS_ENABLED");
  s.add("redis_host", &r->host, "Redis host").env("REDIS_HOST");
  s.add("redis_port", &r->port, "Redis port").env("REDIS_PORT").range(1, 65535);
  s.add("redis_password", &r->password, "Redis password").env("REDIS_PASSWORD").secret();
  s.add("redis_db", &r->db, "Redis database number").env("REDIS_DB").range(0, 15);
}

std::string random_hex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local std::random_device rd;  // getrandom(2)
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; i += 4) {
    uint32_t r = rd();
    for (size_t j = 0; j < 4 && i + j < bytes; ++j) {
      uint8_t b = static_cast<uint8_t>(r >> (8 * j));
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

std::string uuid4() {
  std::string h = random_hex(16);
  h[12] = '4';
  h[16] = "89ab"[(h[16] - '0') & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

std::string token_hash(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once: an implicit fetch per call takes OpenSSL 3's provider locks on every poll.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_Digest(token.data(), token.size(), md, &len, sha256, nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 15];
  }
  return out;
}

core::Result<RegisterAnswer> parse_register_answer(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  RegisterAnswer a;
  GANTRY_RETURN_IF_ERROR(string_field(o, "agent_id", true, &a.agent_id));
  GANTRY_RETURN_IF_ERROR(string_field(o, "api_token", true, &a.api_token));
  if (a.api_token.empty()) return core::invalid_argument("field api_token must not be empty");
  if (const json::value* iv = o.if_contains("poll_interval_seconds");
      iv && iv->is_int64() && iv->get_int64() >= 1 && iv->get_int64() <= kMaxInterval)
    a.poll_interval = static_cast<int>(iv->get_int64());
  return a;
}

core::Result<ConfigAnswer> parse_config_answer(std::string_view body) {
  GANTRY_ASSIGN(o, object_of(body));
  ConfigAnswer a;
  GANTRY_RETURN_IF_ERROR(string_field(o, "etag", true, &a.etag));
  const json::value* c = o.if_contains("config");
  if (a.etag.empty() || !c) return core::invalid_argument("configuration answer lacks etag or config");
  json::object wb;
  if (const json::value* id = o.if_contains("id")) wb["id"] = *id;
  wb["etag"] = a.etag;
  wb["config_data"] = *c;
  a.worker_body = json::serialize(wb);
  return a;
}

}  // namespace gantry::fleet
