// Runs the gantry binary (or any program) as a child process for tests: its exit status,
// stdout and stderr, signals, and reading its output as it comes.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gantry::testing {

class Child {
 public:
  // env: variables set (or, with an empty value, removed) on top of this process's environment.
  Child(std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      close(out[0]);
      close(err[0]);
      // The test runner blocks SIGINT/SIGTERM for nobody, but be sure the child starts clean.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      for (auto& [k, v] : env) {
        if (v.empty()) unsetenv(k.c_str());
        else setenv(k.c_str(), v.c_str(), 1);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
    fcntl(out_, F_SETFL, O_NONBLOCK);
    fcntl(err_, F_SETFL, O_NONBLOCK);
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(err_);
  }

  // Waits until stdout contains `needle`; returns stdout so far (or "" on timeout).
  std::string wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pump(50);
      if (out_text_.find(needle) != std::string::npos) return out_text_;
      if (exited_) break;
    }
    return {};
  }

  void signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }

  // SIGSTOP, returning once every thread of the process has stopped (or after 2 s): kill()
  // only queues the signal, and a thread running on the other core could still answer what a
  // test sends right after (a frozen NATS server acked a publish that way).
  void freeze() {
    kill(pid_, SIGSTOP);
    auto stopped = [this] {
      std::error_code ec;
      for (auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
        std::ifstream f(task.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        size_t paren = stat.rfind(')');
        if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
        char state = stat[paren + 2];
        if (state != 'T' && state != 't') return false;
      }
      return !ec;
    };
    for (int i = 0; i < 1000 && !stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  // Exit status (128+signal when killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exited_ && std::chrono::steady_clock::now() < deadline) pump(20);
    pump(0);
    return exited_ ? status_ : -1;
  }

  const std::string& out() const { return out_text_; }
  const std::string& err() const { return err_text_; }

 private:
  void pump(int ms) {
    pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    ::poll(p, 2, ms);
    char buf[4096];
    ssize_t n;
    while ((n = read(out_, buf, sizeof buf)) > 0) out_text_.append(buf, n);
    while ((n = read(err_, buf, sizeof buf)) > 0) err_text_.append(buf, n);
    if (!exited_) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exited_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
    }
  }

  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string out_text_, err_text_;
};

struct Ran {
  int status;
  std::string out, err;
};

inline Ran run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  Child c(std::move(argv), std::move(env));
  int st = c.wait(timeout);
  return {st, c.out(), c.err()};
}

}  // namespace gantry::testing
