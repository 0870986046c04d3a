// A versioned schema change, shared by every store (SQLite, PostgreSQL). Each store applies
// the migrations newer than its schema_migrations table says, in order, each in its own
// transaction, and reports an applied version whose description has since changed instead of
// silently running something else.
#pragma once

#include <string_view>

namespace gantry::store {

struct Migration {
  int version;
  std::string_view description;
  std::string_view sql;  // one or more statements
};

}  // namespace gantry::store
