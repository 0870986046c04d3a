// Basic and Bearer authentication helpers. Secrets are compared in constant time, so the
// time an answer takes does not tell an attacker how much of a guess was right.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/http/message.h"

namespace gantry::core::http {

// Equal contents, in time that depends only on the length of `expected`.
bool constant_time_equal(std::string_view given, std::string_view expected) noexcept;

struct BasicCredentials {
  std::string user;
  std::string password;
};
// Decodes an `Authorization: Basic <base64(user:password)>` header value.
std::optional<BasicCredentials> parse_basic(std::string_view authorization);
// True when the request carries exactly these Basic credentials.
bool check_basic(const Request& req, std::string_view user, std::string_view password);
// Fills a 401 with `WWW-Authenticate: Basic realm="<realm>"` and the given JSON body.
void basic_challenge(Response& resp, std::string_view realm, std::string body);

enum class BearerError { kNone, kMissing, kMalformed, kEmpty };
struct Bearer {
  std::string_view token;  // valid when error == kNone; points into the request
  BearerError error = BearerError::kNone;
};
// Reads `Authorization: Bearer <token>`.
Bearer parse_bearer(const Request& req);
// "missing authorization header", "malformed authorization header", "empty bearer token".
std::string_view describe(BearerError e);

std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace gantry::core::http
