// The repository's own shell scripts (scripts/, bench/, .ci/): what users run first (make demo,
// make test, bench/run), so each passes Debian's shellcheck at warning level, following the
// files it sources.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;

// A script: a *.sh file, or an executable-looking file whose first line runs a shell.
bool is_shell_script(const fs::path& p) {
  if (!fs::is_regular_file(p)) return false;
  if (p.extension() == ".sh") return true;
  std::ifstream in(p);
  std::string first;
  std::getline(in, first);
  return first.rfind("#!", 0) == 0 && (first.find("bash") != std::string::npos || first.find("/sh") != std::string::npos);
}

TEST(Scripts, EveryShellScriptPassesShellcheck) {
  const fs::path src = GANTRY_SOURCE_DIR;
  std::vector<std::string> files;
  for (const char* dir : {"scripts", "bench", ".ci"})
    for (const auto& e : fs::directory_iterator(src / dir))
      if (is_shell_script(e.path())) files.push_back(fs::relative(e.path(), src).string());
  // The ones users start from; finding fewer means the walk above missed them.
  for (const char* must : {"scripts/demo", "scripts/servers", "scripts/fuzz", "bench/run", "bench/telemetry.sh", ".ci/run"})
    EXPECT_NE(std::find(files.begin(), files.end(), must), files.end()) << must;
  std::string cmd = "cd '" + src.string() + "' && shellcheck -x -S warning";
  for (auto& f : files) cmd += " '" + f + "'";
  Ran r = run({"bash", "-c", cmd}, {}, std::chrono::seconds(120));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

}  // namespace
}  // namespace gantry::testing
