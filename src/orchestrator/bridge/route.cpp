#include "orchestrator/bridge/route.h"

#include <cctype>

namespace gantry::orchestrator {

using core::invalid_argument;
using core::http::Method;

core::Result<Route> parse_routing_key(std::string_view key, std::string_view service) {
  std::string prefix = "cptm8." + std::string(service) + ".";
  if (key.substr(0, prefix.size()) != prefix)
    return invalid_argument("routing key '" + std::string(key.substr(0, 200)) + "' does not start with " + prefix);
  std::string_view rest = key.substr(prefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot + 1 >= rest.size())
    return invalid_argument("routing key '" + std::string(key.substr(0, 200)) + "' has no path after the method");
  std::string m;
  for (char c : rest.substr(0, dot)) m += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  Route r;
  if (m == "get") r.method = Method::kGet;
  else if (m == "post") r.method = Method::kPost;
  else if (m == "put") r.method = Method::kPut;
  else if (m == "patch") r.method = Method::kPatch;
  else if (m == "delete") r.method = Method::kDelete;
  else return invalid_argument("routing key method '" + m.substr(0, 20) + "' is not get, post, put, patch or delete");
  std::string_view path = rest.substr(dot + 1);
  bool word_start = true;
  for (char c : path) {
    if (c == '.') {
      if (word_start) return invalid_argument("routing key path has an empty word");
      r.path += '/';
      word_start = true;
      continue;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && c != '-' && c != '_' && c != '~')
      return invalid_argument("routing key path may hold letters, digits, '-', '_' and '~' only");
    r.path += c;
    word_start = false;
  }
  if (word_start) return invalid_argument("routing key path has an empty word");
  return r;
}

}  // namespace gantry::orchestrator
