// How a command shows a reconcile's progress: on a terminal one line per phase redrawn in place
// (done/total, elapsed, ETA); piped, plain lines as nodes finish; with --json, one JSON object
// per event. A simulated provider is named on every line.
#pragma once

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "cluster/reconciler/reconciler.h"

namespace gantry::cluster {

enum class OutputMode { kTerminal, kPlain, kJson };
OutputMode output_mode(bool json);

class ProgressDisplay {
 public:
  explicit ProgressDisplay(OutputMode m, std::FILE* out = stdout) : mode_(m), out_(out) {}
  void operator()(const ProgressEvent& e);

 private:
  OutputMode mode_;
  std::FILE* out_;
  std::mutex mu_;
  bool open_line_ = false;
};

}  // namespace gantry::cluster
