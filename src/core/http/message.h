// HTTP request and response as handlers see them. No Beast or Asio here: the server owns the
// wire representation and a Request is a read-only view of it, valid until the response is
// sent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;  // only named here, see Request::io_context()
}

namespace gantry::core::http {

enum class Method : unsigned char { kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kOther };
std::string_view method_name(Method m);
Method method_from(std::string_view s);

// The reason phrase for a status ("Not Found").
std::string_view reason(int status);

class Request {
 public:
  Method method() const { return method_; }
  std::string_view method_text() const { return method_text_; }
  std::string_view target() const { return target_; }  // path and query as sent
  std::string_view path() const { return path_; }      // target without the query
  std::string_view query() const { return query_; }    // after '?', not decoded
  // Percent-decoded value of the first query parameter with this name.
  std::optional<std::string> query_param(std::string_view name) const;
  // A header's value, "" when absent. Names are case-insensitive.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  const std::string& body() const { return *body_; }
  // A path parameter captured by the route pattern ("/agents/{id}" -> "id"); "" when absent.
  std::string_view param(std::string_view name) const;
  // The request id: the client's X-Request-ID when acceptable, else generated.
  std::string_view request_id() const { return request_id_; }
  std::string_view remote_address() const { return remote_; }
  // The io_context of the worker thread serving this request (nullptr for a request built
  // by make()). Work a handler starts on it completes on the same thread as the request, and
  // a Responder answered there skips the cross-thread hand-off.
  boost::asio::io_context* io_context() const { return ioc_; }

  // For tests and internal dispatch: builds a request without a connection.
  static std::unique_ptr<Request> make(Method m, std::string target, std::string body = {},
                                       std::vector<std::pair<std::string, std::string>> headers = {});

 private:
  friend class Router;
  friend class ServerImpl;
  friend struct Connection;
  Request() = default;

  Method method_ = Method::kGet;
  std::string_view method_text_, target_, path_, query_, remote_;
  std::string request_id_;
  const std::string* body_ = nullptr;
  // Header lookup over the wire message, bound by the server (or by make()).
  std::string_view (*header_fn_)(const void* msg, std::string_view name) = nullptr;
  const void* msg_ = nullptr;
  std::vector<std::pair<std::string_view, std::string_view>> params_;
  std::shared_ptr<void> owned_;  // storage of a request built by make()
  boost::asio::io_context* ioc_ = nullptr;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this response

  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
  std::string_view header(std::string_view name) const;

  // Body as given, content type application/json.
  void json(int s, std::string b) {
    status = s;
    body = std::move(b);
    content_type = "application/json";
  }
  void text(int s, std::string b) {
    status = s;
    body = std::move(b);
    content_type = "text/plain; charset=utf-8";
  }
  // Our own errors: {"error": "<message>"}.
  void error(int s, std::string_view message);
  // A JSON string as the whole body ("Config updated successfully"), as some original APIs answer.
  void json_string(int s, std::string_view text);
};

// Appends s as a JSON string literal, quotes included (json::append_string).
void append_json_string(std::string_view s, std::string& out);
// Percent-decodes (and '+' -> ' ' for form/query encoding).
std::string url_decode(std::string_view s);

}  // namespace gantry::core::http
