// scripts/hosts makes one bridge and fixed namespace names: tests that bring hosts up take this
// lock so ctest -j never runs two of them at once.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace gantry::testing {

class HostsLock {
 public:
  HostsLock() : fd_(::open("/tmp/gantry-hosts-test.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~HostsLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  HostsLock(const HostsLock&) = delete;
  HostsLock& operator=(const HostsLock&) = delete;

 private:
  int fd_;
};

}  // namespace gantry::testing
