#include "cluster/distribution/distribution.h"

#include <openssl/evp.h>

#include <fstream>

#include "cluster/distribution/gantry_node.h"
#include "cluster/distribution/k3s.h"

namespace gantry::cluster {

core::Result<std::string> sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::not_found(path + ": cannot be read");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += d[md[i] >> 4], out += d[md[i] & 15];
  return out;
}

const char* const kShellAlive =
    "alive() { [ -r \"/proc/$1/stat\" ] || return 1; read -r st < \"/proc/$1/stat\" 2>/dev/null || return 1; "
    "st=${st##*) }; [ \"${st%% *}\" != Z ]; }\n";

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

core::Result<std::unique_ptr<Distribution>> make_distribution(const std::string& name, const DistributionOptions& o) {
  if (name == "gantry-node") return make_gantry_node(o);
  if (name == "k3s") return make_k3s(o);
  return core::invalid_argument("unknown distribution '" + name + "' (known: gantry-node, k3s)");
}

}  // namespace gantry::cluster
