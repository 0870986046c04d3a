#include "telemetry/probe/measure.h"

#include <cmath>

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

int64_t us(CURL* h, CURLINFO what) {
  curl_off_t v = 0;
  curl_easy_getinfo(h, what, &v);
  return static_cast<int64_t>(v);
}

// Microseconds as milliseconds: the nearest double to a whole number of microseconds, which
// prints as such (0.1, never 0.09999999999999998).
double ms(int64_t micros) { return static_cast<double>(micros) / 1000.0; }

double kbps(curl_off_t bytes, int64_t micros) {
  // bits per microsecond * 1000 = kbit/s, to 0.1.
  return std::round(static_cast<double>(bytes) * 8 * 1000 / static_cast<double>(micros) * 10) / 10;
}

}  // namespace

Measurement measure(const std::string& target, const ThroughputStep& throughput, std::chrono::milliseconds timeout) {
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
  int64_t dns = us(e.h, CURLINFO_NAMELOOKUP_TIME_T), connect = us(e.h, CURLINFO_CONNECT_TIME_T),
          app = us(e.h, CURLINFO_APPCONNECT_TIME_T), first = us(e.h, CURLINFO_STARTTRANSFER_TIME_T),
          page_total = us(e.h, CURLINFO_TOTAL_TIME_T);
  curl_off_t page_bytes = bytes;
  bool tls = target.rfind("https://", 0) == 0;
  if (rc != CURLE_OK) {
    m.error_stage = rc == CURLE_OPERATION_TIMEDOUT ? (connect == 0 ? (dns == 0 ? "DNS" : "TCP") : tls && app == 0 ? "TLS" : "HTTP")
                                                   : stage_of(rc);
    m.error = curl_easy_strerror(rc);
  }
  if (dns > 0 || connect > 0) m.timings.dns_ms = ms(dns);
  if (connect > 0) m.timings.tcp_ms = ms(connect - dns);
  if (tls && app > 0) m.timings.tls_ms = ms(app - connect);
  if (first > 0) m.timings.http_ttfb_ms = ms(first - (tls && app > 0 ? app : connect));
  if (m.error_stage) return m;
  long status = 0;
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400) {
    m.error_stage = "HTTP";
    m.error = "HTTP " + std::to_string(status);
    return m;
  }
  if (throughput.url.empty()) return m;

  // Throughput on the same handle: libcurl reuses the connection when the host is the same.
  bytes = 0;
  curl_easy_setopt(e.h, CURLOPT_URL, throughput.url.c_str());
  curl_easy_setopt(e.h, CURLOPT_FRESH_CONNECT, 0L);
  rc = curl_easy_perform(e.h);
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
  int64_t total = us(e.h, CURLINFO_TOTAL_TIME_T);
  if (rc == CURLE_OK && (status < 200 || status >= 300) && throughput.defaulted) {
    // Most sites serve no /fixed/1mb.bin: the page just fetched is what there is to measure.
    m.throughput_from_page = true;
    if (page_total > 0 && page_bytes > 0) m.throughput_kbps = kbps(page_bytes, page_total);
    return m;
  }
  if (rc != CURLE_OK || status < 200 || status >= 300) {
    m.error_stage = "throughput";
    m.error = rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
    return m;
  }
  if (total > 0) m.throughput_kbps = kbps(bytes, total);
  return m;
}

}  // namespace gantry::telemetry::probe
