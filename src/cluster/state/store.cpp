#include "cluster/state/store.h"

#include <openssl/rand.h>

namespace gantry::cluster {

namespace {

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) std::abort();  // no entropy: no tokens
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) out += d[c >> 4], out += d[c & 15];
  return out;
}

}  // namespace

Cluster next_version(Cluster c, const Cluster* old) {
  if (old) {
    Cluster same = c;
    same.metadata = old->metadata;
    c.metadata.id = old->metadata.id;
    c.metadata.created_at = old->metadata.created_at;
    c.metadata.generation = old->metadata.generation + (to_yaml(same) == to_yaml(*old) ? 0 : 1);
  } else {
    c.metadata.generation = 1;
    if (c.metadata.id.empty()) c.metadata.id = random_hex(8);
  }
  return c;
}

Tokens new_tokens() { return {random_hex(32), random_hex(32)}; }

core::Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& dir) {
  if (!url.empty()) return open_pg_store(url);
  return open_dir_store(dir);
}

}  // namespace gantry::cluster
