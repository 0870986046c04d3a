#include "core/http/message.h"

#include "core/json.h"

#include <strings.h>

#include <algorithm>
#include <cstdio>

#include "core/log.h"

namespace gantry::core::http {

std::string_view method_name(Method m) {
  switch (m) {
    case Method::kGet: return "GET";
    case Method::kHead: return "HEAD";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kDelete: return "DELETE";
    case Method::kPatch: return "PATCH";
    case Method::kOptions: return "OPTIONS";
    case Method::kOther: return "OTHER";
  }
  return "OTHER";
}

Method method_from(std::string_view s) {
  if (s == "GET") return Method::kGet;
  if (s == "POST") return Method::kPost;
  if (s == "PUT") return Method::kPut;
  if (s == "DELETE") return Method::kDelete;
  if (s == "HEAD") return Method::kHead;
  if (s == "PATCH") return Method::kPatch;
  if (s == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

std::string_view reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view q = query_;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    auto eq = pair.find('=');
    std::string_view k = pair.substr(0, eq);
    if (url_decode(k) == name) return url_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string_view Request::header(std::string_view name) const {
  return header_fn_ ? header_fn_(msg_, name) : std::string_view();
}

bool Request::has_header(std::string_view name) const {
  // header_fn_ answers a default (null) string_view for an absent header and a view into the
  // message, possibly empty, for a present one.
  return header_fn_ && header_fn_(msg_, name).data() != nullptr;
}

std::string_view Request::param(std::string_view name) const {
  for (auto& [k, v] : params_)
    if (k == name) return v;
  return {};
}

namespace {
struct OwnedRequest {
  std::string method, target, body;
  std::vector<std::pair<std::string, std::string>> headers;
};
std::string_view owned_header(const void* msg, std::string_view name) {
  auto* o = static_cast<const OwnedRequest*>(msg);
  for (auto& [k, v] : o->headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return {};
}
}  // namespace

std::unique_ptr<Request> Request::make(Method m, std::string target, std::string body,
                                       std::vector<std::pair<std::string, std::string>> headers) {
  auto owned = std::make_shared<OwnedRequest>();
  owned->method = std::string(method_name(m));
  owned->target = std::move(target);
  owned->body = std::move(body);
  owned->headers = std::move(headers);
  std::unique_ptr<Request> r(new Request());
  r->method_ = m;
  r->method_text_ = owned->method;
  r->target_ = owned->target;
  auto q = r->target_.find('?');
  r->path_ = r->target_.substr(0, q);
  if (q != std::string_view::npos) r->query_ = r->target_.substr(q + 1);
  r->body_ = &owned->body;
  r->header_fn_ = &owned_header;
  r->msg_ = owned.get();
  r->request_id_ = "test";
  r->remote_ = "test";
  r->owned_ = owned;
  return r;
}

std::string_view Response::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return {};
}

void append_json_string(std::string_view s, std::string& out) { json::append_string(s, out); }

void Response::error(int s, std::string_view message) {
  status = s;
  content_type = "application/json";
  body.clear();
  json::Writer(body).object().field("error", message).end();
}

void Response::json_string(int s, std::string_view text) {
  status = s;
  content_type = "application/json";
  body.clear();
  append_json_string(text, body);
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      auto hex = [](char h) { return std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10); };
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace gantry::core::http
