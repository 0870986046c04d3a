// The OpenAPI 3.1 description of each HTTP role, kept in api/<role>.openapi.json and compiled in
// (cmake/openapi.cmake), so what a role serves at /openapi.json is byte for byte the reviewed
// document. tests/openapi_test.cpp holds every running role to its document: the same routes,
// no more, no fewer.
#pragma once

#include <optional>
#include <string_view>

namespace gantry::core::http {

// The document of the role named `role` ("controller"), or nullopt when it has none.
std::optional<std::string_view> openapi_document(std::string_view role);

}  // namespace gantry::core::http
