#include "core/resilience/idempotency.h"

#include <openssl/evp.h>

#include <boost/json.hpp>

#include "core/metrics.h"

namespace gantry::core::resilience {

IdempotencyKey idempotency_key(std::string_view operation, std::string_view params) {
  IdempotencyKey k{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, operation.data(), operation.size());
  EVP_DigestUpdate(ctx, "\0", 1);  // "ab"+"c" and "a"+"bc" must differ
  EVP_DigestUpdate(ctx, params.data(), params.size());
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, k.data(), &len);
  EVP_MD_CTX_free(ctx);
  return k;
}

std::string to_hex(const IdempotencyKey& k) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (uint8_t b : k) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

namespace {
void canonical(const boost::json::value& v, std::string& out) {
  if (v.is_object()) {
    const auto& o = v.as_object();
    std::vector<const boost::json::key_value_pair*> kv;
    for (auto& p : o) kv.push_back(&p);
    std::sort(kv.begin(), kv.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    out += '{';
    for (size_t i = 0; i < kv.size(); ++i) {
      if (i) out += ',';
      out += boost::json::serialize(boost::json::value(kv[i]->key()));
      out += ':';
      canonical(kv[i]->value(), out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    const auto& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out += ',';
      canonical(a[i], out);
    }
    out += ']';
  } else {
    out += boost::json::serialize(v);
  }
}
}  // namespace

Result<std::string> canonical_json(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec) return Status(Code::kInvalidArgument, "not JSON: " + ec.message(), "idempotency");
  std::string out;
  canonical(v, out);
  return out;
}

namespace detail {
void export_idempotency_metrics(const std::string& name, std::function<IdempotencyStats()> stats) {
  auto& r = metrics::Registry::global();
  r.counter_callback("resilience_idempotency_hits_total", "Idempotent operations answered from the store.",
                     {"store"}, {name}, [stats] { return static_cast<double>(stats().hits); });
  r.counter_callback("resilience_idempotency_misses_total", "Idempotent operations that had to run.", {"store"},
                     {name}, [stats] { return static_cast<double>(stats().misses); });
  r.gauge_callback("resilience_idempotency_entries", "Entries held by the idempotency store.", {"store"}, {name},
                   [stats] { return static_cast<double>(stats().entries); });
}
void unexport_idempotency_metrics(const std::string& name) {
  auto& r = metrics::Registry::global();
  for (const char* m : {"resilience_idempotency_hits_total", "resilience_idempotency_misses_total",
                        "resilience_idempotency_entries"})
    r.remove_callback(m, {name});
}
}  // namespace detail

}  // namespace gantry::core::resilience
