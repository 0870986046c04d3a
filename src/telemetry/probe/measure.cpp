#include "telemetry/probe/measure.h"

#include <curl/curl.h>

#include <memory>

namespace gantry::telemetry::probe {

namespace {

size_t discard(char*, size_t size, size_t n, void* counter) {
  *static_cast<curl_off_t*>(counter) += static_cast<curl_off_t>(size * n);
  return size * n;
}

struct Easy {
  CURL* h = curl_easy_init();
  ~Easy() {
    if (h) curl_easy_cleanup(h);
  }
};

std::string stage_of(CURLcode rc) {
  switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return "parse";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "DNS";
    case CURLE_COULDNT_CONNECT: return "TCP";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: return "TLS";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP_RETURNED_ERROR:
    case CURLE_WEIRD_SERVER_REPLY: return "HTTP";
    default: return "unknown";
  }
}

double ms(CURL* h, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(h, what, &us);
  return static_cast<double>(us) / 1000.0;
}

}  // namespace

Measurement measure(const std::string& target, const std::string& throughput_url, std::chrono::milliseconds timeout) {
  Measurement m;
  Easy e;
  if (!e.h) {
    m.error_stage = "unknown";
    m.error = "curl_easy_init failed";
    return m;
  }
  curl_off_t bytes = 0;
  curl_easy_setopt(e.h, CURLOPT_URL, target.c_str());
  curl_easy_setopt(e.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(e.h, CURLOPT_FRESH_CONNECT, 1L);  // the phases of a new connection, not a reused one
  curl_easy_setopt(e.h, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
  curl_easy_setopt(e.h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e.h, CURLOPT_USERAGENT, "gantry-probe/0.1");
  curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(e.h, CURLOPT_WRITEDATA, &bytes);
  curl_easy_setopt(e.h, CURLOPT_PROXY, "");
  CURLcode rc = curl_easy_perform(e.h);
  double dns = ms(e.h, CURLINFO_NAMELOOKUP_TIME_T), connect = ms(e.h, CURLINFO_CONNECT_TIME_T),
         app = ms(e.h, CURLINFO_APPCONNECT_TIME_T), first = ms(e.h, CURLINFO_STARTTRANSFER_TIME_T);
  bool tls = target.rfind("https://", 0) == 0;
  if (rc != CURLE_OK) {
    m.error_stage = rc == CURLE_OPERATION_TIMEDOUT ? (connect == 0 ? (dns == 0 ? "DNS" : "TCP") : tls && app == 0 ? "TLS" : "HTTP")
                                                   : stage_of(rc);
    m.error = curl_easy_strerror(rc);
  }
  if (dns > 0 || connect > 0) m.timings.dns_ms = dns;
  if (connect > 0) m.timings.tcp_ms = connect - dns;
  if (tls && app > 0) m.timings.tls_ms = app - connect;
  if (first > 0) m.timings.http_ttfb_ms = first - (tls && app > 0 ? app : connect);
  if (m.error_stage) return m;
  long status = 0;
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400) {
    m.error_stage = "HTTP";
    m.error = "HTTP " + std::to_string(status);
    return m;
  }
  if (throughput_url.empty()) return m;

  // Throughput on the same handle: same host, same connection, no second handshake.
  bytes = 0;
  curl_easy_setopt(e.h, CURLOPT_URL, throughput_url.c_str());
  curl_easy_setopt(e.h, CURLOPT_FRESH_CONNECT, 0L);
  rc = curl_easy_perform(e.h);
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
  double total_s = ms(e.h, CURLINFO_TOTAL_TIME_T) / 1000.0;
  if (rc != CURLE_OK || status < 200 || status >= 300) {
    m.error_stage = "throughput";
    m.error = rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
    return m;
  }
  if (total_s > 0) m.throughput_kbps = static_cast<double>(bytes) * 8 / total_s / 1000;
  return m;
}

}  // namespace gantry::telemetry::probe
