// An HTTP request as the core server reads it: Beast's parser with the server's header and
// body limits, then, for a complete request, route matching with path parameters and query
// decoding on a router shaped like the roles' (literal, {param} and {rest...} patterns).
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "core/http/message.h"
#include "core/http/router.h"
#include "core/http/server.h"

namespace http = gantry::core::http;
namespace bhttp = boost::beast::http;

namespace {
const http::Router& router() {
  static http::Router* r = [] {
    auto* r = new http::Router;
    auto echo = [](const http::Request& q, http::Response& o) {
      std::string s(q.param("id"));
      s += q.param("path");
      if (auto v = q.query_param("wait")) s += *v;
      if (auto v = q.query_param("limit")) s += *v;
      s += q.header("If-None-Match");
      o.text(200, s);
    };
    r->get("/config", echo);
    r->post("/config", echo);
    r->get("/agents/{id}", echo);
    r->put("/agents/{id}/interval", echo);
    r->del("/agents/{id}", echo);
    r->get("/files/{path...}", echo);
    r->post("/events", echo);
    return r;
  }();
  return *r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const http::ServerOptions limits;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
  parser.eager(true);
  boost::system::error_code ec;
  size_t used = parser.put(boost::asio::buffer(data, size), ec);
  (void)used;
  if (ec || !parser.is_done()) return 0;
  auto& msg = parser.get();
  std::vector<std::pair<std::string, std::string>> headers;
  for (auto& f : msg) headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  auto req = http::Request::make(http::method_from(std::string_view(msg.method_string().data(), msg.method_string().size())),
                                 std::string(msg.target()), msg.body(), std::move(headers));
  http::Response out;
  (void)router().dispatch(*req, out, [] { return http::Responder(); });
  return 0;
}
