// Blocking HTTP(S) client on libcurl, safe to share between threads. Connections are kept
// alive and reused: each call borrows a pooled curl handle, which keeps its own connection
// cache. Proxies (http://user:pass@host:port) and TLS come from libcurl.
//
// Failures are values: a URL that cannot be parsed is kInvalidArgument; a refused or reset
// connection or DNS failure kUnavailable; a timeout kDeadlineExceeded; a body over
// max_body_bytes kResourceExhausted. Any HTTP status,
// including 4xx and 5xx, is a successful exchange and returned as a ClientResponse.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/http/message.h"
#include "core/status.h"

namespace gantry::core::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientRequest {
  Method method = Method::kGet;
  std::string url;
  Headers headers;
  std::string body;
  std::optional<std::chrono::milliseconds> timeout;  // default: the client's
  std::string proxy;                                 // "" = none
  // When set and it becomes true, the exchange is abandoned within ~100 ms with kCancelled
  // (a held long poll must not delay a shutdown).
  const std::atomic<bool>* cancel = nullptr;
  std::optional<int64_t> max_body_bytes;  // default: the client's
};

struct ClientResponse {
  int status = 0;
  std::string body;
  Headers headers;
  // The first header of that name (case-insensitive); "" when absent.
  std::string_view header(std::string_view name) const;
};

struct ClientOptions {
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::string user_agent = "gantry/0.1";
  int max_pooled_handles = 32;
  // A response body larger than this is abandoned as kResourceExhausted: a target we do not
  // control must not make us hold an unbounded answer in memory.
  int64_t max_body_bytes = 16 << 20;
};

class Client {
 public:
  explicit Client(ClientOptions o = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<ClientResponse> send(const ClientRequest& r);
  Result<ClientResponse> get(std::string url, Headers h = {});
  Result<ClientResponse> post(std::string url, std::string body, Headers h = {});

 private:
  struct Pool;
  ClientOptions opts_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace gantry::core::http
