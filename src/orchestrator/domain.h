// The domains to scan (table cptm8domain) as the administration API reads and writes them.
//
// Bodies are JSON objects: POST needs name and companyname (enabled defaults to true); PUT
// changes the fields it gives (at least one). Limits are the table's: name 1..200 characters,
// companyname 1..50 (characters, not bytes, as varchar counts them). Any other field, a wrong
// type, or text that is not UTF-8 is refused with a message naming the field.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gantry::orchestrator {

struct Domain {
  std::string id, name, companyname;
  bool enabled = true;
};

struct DomainChange {
  std::optional<std::string> name, companyname;
  std::optional<bool> enabled;
};

enum class BodyRule { kCreate, kUpdate };
core::Result<DomainChange> parse_domain_body(std::string_view body, BodyRule rule);

// {"id":…,"name":…,"companyname":…,"enabled":…}
std::string to_json(const Domain& d);

// A trigger notification's payload (see schema.h).
struct DomainNotice {
  std::string id;
  std::string op;  // INSERT, UPDATE or DELETE
  bool enabled = false;
  int64_t ts_us = 0;  // 0 when absent
  std::string schema;  // "" when absent
};
core::Result<DomainNotice> parse_notice(std::string_view payload);

}  // namespace gantry::orchestrator
