#include "orchestrator/domain.h"

#include <boost/json.hpp>

#include "core/json.h"

namespace gantry::orchestrator {

namespace json = boost::json;
using core::invalid_argument;

namespace {

// Code points of valid UTF-8, or nullopt when it is not UTF-8 (PostgreSQL would refuse it).
std::optional<size_t> utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return std::nullopt;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return std::nullopt;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    if (cp == 0) return std::nullopt;  // PostgreSQL text cannot hold NUL
    i += len;
  }
  return n;
}

core::Status text_field(const json::value& v, std::string_view field, size_t max, std::optional<std::string>* out) {
  if (!v.is_string()) return invalid_argument(std::string(field) + " must be a string");
  std::string_view s = v.get_string();
  auto len = utf8_length(s);
  if (!len) return invalid_argument(std::string(field) + " must be UTF-8 text without NUL characters");
  if (*len == 0) return invalid_argument(std::string(field) + " must not be empty");
  if (*len > max)
    return invalid_argument(std::string(field) + " is " + std::to_string(*len) + " characters; at most " + std::to_string(max));
  *out = std::string(s);
  return {};
}

}  // namespace

core::Result<DomainChange> parse_domain_body(std::string_view body, BodyRule rule) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return invalid_argument("body is not JSON: " + ec.message());
  if (!v.is_object()) return invalid_argument("body must be a JSON object");
  DomainChange c;
  for (auto& [k, val] : v.get_object()) {
    if (k == "name") {
      GANTRY_RETURN_IF_ERROR(text_field(val, "name", 200, &c.name));
    } else if (k == "companyname") {
      GANTRY_RETURN_IF_ERROR(text_field(val, "companyname", 50, &c.companyname));
    } else if (k == "enabled") {
      if (!val.is_bool()) return invalid_argument("enabled must be true or false");
      c.enabled = val.get_bool();
    } else {
      return invalid_argument("unknown field '" + std::string(k) + "' (fields: name, companyname, enabled)");
    }
  }
  if (rule == BodyRule::kCreate) {
    if (!c.name) return invalid_argument("name is required");
    if (!c.companyname) return invalid_argument("companyname is required");
  } else if (!c.name && !c.companyname && !c.enabled) {
    return invalid_argument("nothing to change: give name, companyname or enabled");
  }
  return c;
}

std::string to_json(const Domain& d) {
  std::string b;
  core::json::Writer(b).object().field("id", d.id).field("name", d.name).field("companyname", d.companyname).field("enabled", d.enabled).end();
  return b;
}

core::Result<DomainNotice> parse_notice(std::string_view payload) {
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object()) return invalid_argument("notification payload is not a JSON object");
  const json::object& o = v.get_object();
  DomainNotice n;
  auto* id = o.if_contains("id");
  auto* op = o.if_contains("op");
  if (!id || !id->is_string() || !op || !op->is_string()) return invalid_argument("notification payload lacks id or op");
  n.id = std::string(id->get_string());
  n.op = std::string(op->get_string());
  if (n.op != "INSERT" && n.op != "UPDATE" && n.op != "DELETE") return invalid_argument("notification op '" + n.op + "' unknown");
  if (auto* e = o.if_contains("enabled"); e && e->is_bool()) n.enabled = e->get_bool();
  if (auto* t = o.if_contains("ts"); t && t->is_int64()) n.ts_us = t->get_int64();
  if (auto* sc = o.if_contains("schema"); sc && sc->is_string()) n.schema = std::string(sc->get_string());
  return n;
}

}  // namespace gantry::orchestrator
