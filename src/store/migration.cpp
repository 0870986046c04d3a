#include "store/migration.h"

namespace gantry::store {

using core::Code;
using core::Status;

Status apply_migrations(std::span<const Migration> migrations, int current,
                        const std::function<core::Result<std::optional<std::string>>(int)>& applied_description,
                        const std::function<Status(const Migration&)>& apply, std::string_view where) {
  int last = 0;
  for (const Migration& m : migrations) {
    if (m.version <= last)
      return Status(Code::kInternal, "migration versions must increase (" + std::to_string(m.version) + ")", where);
    last = m.version;
    if (m.version > current) {
      Status s = apply(m);
      if (!s.is_ok()) return s.within(std::string(where) + " " + std::to_string(m.version));
      continue;
    }
    auto applied = applied_description(m.version);
    if (!applied.is_ok()) return applied.status();
    if (*applied && **applied != m.description)
      return Status(Code::kFailedPrecondition,
                    "migration " + std::to_string(m.version) + " was applied as '" + **applied + "' but is now '" +
                        std::string(m.description) + "'",
                    where);
  }
  return {};
}

}  // namespace gantry::store
