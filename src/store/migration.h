// A versioned schema change, shared by every store (SQLite, PostgreSQL). Each store applies
// the migrations newer than its schema_migrations table says, in order, each in its own
// transaction, and reports an applied version whose description has since changed instead of
// silently running something else.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gantry::store {

struct Migration {
  int version;
  std::string_view description;
  std::string_view sql;  // one or more statements
};

// The rules every store follows; the store supplies how to read back an applied migration's
// description (nullopt when that version is absent) and how to apply one (in a transaction,
// recording it). `current` is the highest applied version; `where` names the store in errors.
core::Status apply_migrations(std::span<const Migration> migrations, int current,
                              const std::function<core::Result<std::optional<std::string>>(int)>& applied_description,
                              const std::function<core::Status(const Migration&)>& apply, std::string_view where);

}  // namespace gantry::store
