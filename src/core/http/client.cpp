#include "core/http/client.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace gantry::core::http {

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct BodySink {
  std::string* body;
  size_t limit;
  bool over = false;
};

size_t on_body(char* p, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  if (sink->body->size() + size * n > sink->limit) {
    sink->over = true;
    return 0;  // libcurl ends the transfer with CURLE_WRITE_ERROR
  }
  sink->body->append(p, size * n);
  return size * n;
}

size_t on_header(char* p, size_t size, size_t n, void* user) {
  auto* h = static_cast<Headers*>(user);
  std::string_view line(p, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    h->clear();  // a new response (after a redirect or 100 Continue) starts over
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
    return s;
  };
  h->emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  return size * n;
}

Code code_for(CURLcode c) {
  switch (c) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return Code::kInvalidArgument;
    case CURLE_OPERATION_TIMEDOUT: return Code::kDeadlineExceeded;
    case CURLE_ABORTED_BY_CALLBACK: return Code::kCancelled;
    default: return Code::kUnavailable;
  }
}

}  // namespace

std::string_view ClientResponse::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return {};
}

// A pooled easy handle with the multi handle that drives it. Driving it ourselves (instead of
// curl_easy_perform) lets a cancel be seen between polls of at most 100 ms; libcurl's progress
// callback comes only about once a second on an idle transfer. The multi handle holds the
// connection cache, so keeping the pair together keeps connections alive across calls.
namespace {
struct Handle {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  ~Handle() {
    if (easy) curl_easy_cleanup(easy);
    if (multi) curl_multi_cleanup(multi);
  }
};
}  // namespace

struct Client::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<Handle>> idle;
};

namespace {

// Runs the transfer to its end, or abandons it once *cancel is true.
CURLcode perform(Handle& h, const std::atomic<bool>* cancel) {
  if (curl_multi_add_handle(h.multi, h.easy) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode rc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(h.multi, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    if (!running) {
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(h.multi, &left))
        if (m->msg == CURLMSG_DONE && m->easy_handle == h.easy) rc = m->data.result;
      break;
    }
    if (cancel && cancel->load()) {
      rc = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    // libcurl shortens the wait to its own next timeout (the request's and connect limits).
    if (curl_multi_poll(h.multi, nullptr, 0, cancel ? 100 : 1000, nullptr) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
  }
  curl_multi_remove_handle(h.multi, h.easy);  // an unfinished transfer's connection is closed
  return rc;
}

}  // namespace

Client::Client(ClientOptions o) : opts_(std::move(o)), pool_(std::make_unique<Pool>()) {
  static CurlGlobal global;
}

Client::~Client() = default;

Result<ClientResponse> Client::send(const ClientRequest& r) {
  std::unique_ptr<Handle> handle;
  {
    std::lock_guard lock(pool_->mu);
    if (!pool_->idle.empty()) {
      handle = std::move(pool_->idle.back());
      pool_->idle.pop_back();
    }
  }
  if (!handle) {
    handle = std::make_unique<Handle>();
    handle->easy = curl_easy_init();
    handle->multi = curl_multi_init();
    if (!handle->easy || !handle->multi) return Status(Code::kInternal, "curl_easy_init failed", "http.client");
  }
  CURL* h = handle->easy;
  curl_easy_reset(h);  // clears the options; the connections live in the multi handle

  ClientResponse resp;
  curl_slist* hdrs = nullptr;
  for (auto& [k, v] : r.headers) hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
  // libcurl would otherwise wait up to a second for "100 Continue" before sending a body.
  hdrs = curl_slist_append(hdrs, "Expect:");

  curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, opts_.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>((r.timeout ? *r.timeout : opts_.timeout).count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  BodySink sink{&resp.body, static_cast<size_t>(std::max<int64_t>(0, r.max_body_bytes.value_or(opts_.max_body_bytes)))};
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
  curl_easy_setopt(h, CURLOPT_PROXY, r.proxy.c_str());  // "" disables proxies, including env ones
  switch (r.method) {
    case Method::kGet: break;
    case Method::kHead: curl_easy_setopt(h, CURLOPT_NOBODY, 1L); break;
    case Method::kPost:
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      break;
    default:
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method_name(r.method)).c_str());
      if (!r.body.empty() || r.method == Method::kPut || r.method == Method::kPatch) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      }
  }

  CURLcode rc = perform(*handle, r.cancel);
  curl_slist_free_all(hdrs);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  {
    std::lock_guard lock(pool_->mu);
    if (static_cast<int>(pool_->idle.size()) < opts_.max_pooled_handles) pool_->idle.push_back(std::move(handle));
  }
  if (sink.over)
    return Status(Code::kResourceExhausted,
                  "response body larger than " + std::to_string(sink.limit) + " bytes (" +
                      std::string(method_name(r.method)) + " " + r.url + ")",
                  "http.client");
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return Status(Code::kCancelled, "abandoned on request (" + std::string(method_name(r.method)) + " " + r.url + ")",
                  "http.client");
  if (rc != CURLE_OK)
    return Status(code_for(rc), std::string(curl_easy_strerror(rc)) + " (" + std::string(method_name(r.method)) + " " + r.url + ")",
                  "http.client");
  resp.status = static_cast<int>(status);
  return resp;
}

Result<ClientResponse> Client::get(std::string url, Headers h) {
  return send(ClientRequest{Method::kGet, std::move(url), std::move(h), {}, std::nullopt, {}, nullptr, std::nullopt});
}

Result<ClientResponse> Client::post(std::string url, std::string body, Headers h) {
  bool has_type = false;
  for (auto& [k, v] : h)
    if (strcasecmp(k.c_str(), "Content-Type") == 0) has_type = true;
  if (!has_type) h.emplace_back("Content-Type", "application/json");
  return send(ClientRequest{Method::kPost, std::move(url), std::move(h), std::move(body), std::nullopt, {}, nullptr, std::nullopt});
}

}  // namespace gantry::core::http
