// Runs a program (ssh) with its standard input from a string or a file, collecting its output,
// killed when the deadline passes. Blocking; the reconciler calls it from its node threads.
#pragma once

#include <string>
#include <vector>

#include "core/resilience/deadline.h"
#include "core/status.h"

namespace gantry::cluster {

struct Exited {
  int status = -1;  // exit status, 128 + signal when killed
  bool timed_out = false;
  std::string out, err;
};

struct Input {
  std::string text;  // written to stdin, or
  std::string file;  // stdin opened from this file
};

// kNotFound when the program cannot be started; otherwise how it ended.
core::Result<Exited> run_program(const std::vector<std::string>& argv, const Input& in, const core::resilience::Deadline& d);

}  // namespace gantry::cluster
