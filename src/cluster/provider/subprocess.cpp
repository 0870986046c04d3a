#include "cluster/provider/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace gantry::cluster {

namespace {
// Keeps its descriptor closed whatever path leaves the scope.
struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};
}  // namespace

core::Result<Exited> run_program(const std::vector<std::string>& argv, const Input& in, const core::resilience::Deadline& d) {
  int out_p[2], err_p[2], in_p[2] = {-1, -1};
  if (::pipe2(out_p, O_CLOEXEC) != 0) return core::io_error(std::string("pipe: ") + std::strerror(errno));
  Fd out_r{out_p[0]}, out_w{out_p[1]};
  if (::pipe2(err_p, O_CLOEXEC) != 0) return core::io_error(std::string("pipe: ") + std::strerror(errno));
  Fd err_r{err_p[0]}, err_w{err_p[1]};
  Fd in_r, in_w, in_file;
  if (!in.file.empty()) {
    in_file.fd = ::open(in.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_file.fd < 0) return core::not_found(in.file + ": " + std::strerror(errno));
  } else {
    if (::pipe2(in_p, O_CLOEXEC) != 0) return core::io_error(std::string("pipe: ") + std::strerror(errno));
    in_r.fd = in_p[0], in_w.fd = in_p[1];
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_file.fd >= 0 ? in_file.fd : in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  // The child must not inherit the blocked SIGINT/SIGTERM mask the runtime set.
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, &at, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) return core::not_found(argv[0] + ": cannot be started: " + std::strerror(rc));
  out_w.reset(), err_w.reset(), in_r.reset(), in_file.reset();
  ::fcntl(out_r.fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.fd, F_SETFL, O_NONBLOCK);
  if (in_w.fd >= 0) ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);

  Exited e;
  size_t written = 0;
  int st = 0;
  bool reaped = false;
  if (in_w.fd >= 0 && in.text.empty()) in_w.reset();
  const auto& clock = core::Clock::real();
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    pollfd p[3];
    int n = 0;
    if (out_r.fd >= 0) p[n++] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) p[n++] = {err_r.fd, POLLIN, 0};
    if (in_w.fd >= 0) p[n++] = {in_w.fd, POLLOUT, 0};
    auto left = d.remaining(clock);
    int wait_ms = d.is_infinite() ? 20 : static_cast<int>(std::min<int64_t>(20, std::chrono::duration_cast<std::chrono::milliseconds>(left).count()));
    if (!d.is_infinite() && left <= core::Duration::zero()) {
      e.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    ::poll(p, static_cast<nfds_t>(n), std::max(wait_ms, 1));
    char buf[16384];
    for (auto* fd : {&out_r, &err_r}) {
      if (fd->fd < 0) continue;
      for (;;) {
        ssize_t k = ::read(fd->fd, buf, sizeof buf);
        if (k > 0) (fd == &out_r ? e.out : e.err).append(buf, static_cast<size_t>(k));
        else if (k == 0) {
          fd->reset();
          break;
        } else break;  // EAGAIN
      }
    }
    if (in_w.fd >= 0) {
      ssize_t k = ::write(in_w.fd, in.text.data() + written, in.text.size() - written);
      if (k > 0) written += static_cast<size_t>(k);
      if ((k < 0 && errno != EAGAIN) || written == in.text.size()) in_w.reset();
    }
    // Done when the program has exited, not at end of file: an ssh that became a
    // ControlPersist master leaves a background process holding the pipes open.
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      reaped = true;
      for (auto* fd : {&out_r, &err_r})
        for (ssize_t k; fd->fd >= 0 && (k = ::read(fd->fd, buf, sizeof buf)) > 0;)
          (fd == &out_r ? e.out : e.err).append(buf, static_cast<size_t>(k));
      break;
    }
  }
  in_w.reset();
  if (!reaped) ::waitpid(pid, &st, 0);
  e.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return e;
}

}  // namespace gantry::cluster
