// What the running binary was built from. Defined by a source generated at build time
// (cmake/build_info.cmake), so the commit is the checkout's at the last build, not at configure.
#pragma once

#include <string_view>

namespace gantry::core::build {

// The release version, from CMakeLists.txt's project() ("0.1.0").
std::string_view version();
// The git commit, 12 hex digits; with "-dirty" when tracked files differed from it; "unknown"
// when built outside a git checkout without -DGANTRY_COMMIT.
std::string_view commit();

}  // namespace gantry::core::build
