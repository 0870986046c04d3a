// The directory store. Leases are flock(2) locks on <name>/lock: the kernel drops one when its
// holder dies, so a killed reconciler never leaves a cluster locked, and no TTL is needed; the
// file holds the holder's name for whoever waits.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cluster/state/store.h"

namespace gantry::cluster {

namespace {

namespace fs = std::filesystem;
using core::Result;
using core::Status;

Status errno_status(const std::string& what) { return core::io_error(what + ": " + std::strerror(errno)); }

Result<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return core::not_found(p.string() + ": not found");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Written beside, fsync'd, renamed over, the directory fsync'd: the old file or the new one.
Status write_file(const fs::path& p, std::string_view data, mode_t mode) {
  fs::path tmp = p;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno_status("open " + tmp.string());
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = errno_status("write " + tmp.string());
      ::close(fd);
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    Status s = errno_status("sync " + tmp.string());
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), p.c_str()) != 0) return errno_status("rename " + p.string());
  int dfd = ::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

class FileLease final : public Lease {
 public:
  explicit FileLease(int fd) : fd_(fd) {}
  ~FileLease() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  Status renew() override { return {}; }  // held until released or the process dies

 private:
  int fd_;
};

class DirStore final : public Store {
 public:
  explicit DirStore(fs::path root) : root_(std::move(root)) {}
  std::string describe() const override { return root_.string(); }

  Result<std::vector<std::string>> list() override {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(root_, ec))
      if (e.is_directory() && fs::exists(e.path() / "cluster.yaml")) out.push_back(e.path().filename().string());
    if (ec) return core::io_error(root_.string() + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<Cluster> get(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    auto text = read_file(dir(name) / "cluster.yaml");
    if (!text.is_ok()) return core::not_found("no cluster named '" + name + "' in " + root_.string());
    auto c = parse_cluster(*text, (dir(name) / "cluster.yaml").string());
    if (!c.is_ok()) return c.status();
    return c;
  }

  Result<Cluster> put(Cluster c, bool update) override {
    const std::string& name = c.metadata.name;
    GANTRY_RETURN_IF_ERROR(check_name(name));
    auto old = get(name);
    if (old.is_ok() && !update) return Status(core::Code::kAlreadyExists, "cluster '" + name + "' already exists");
    if (!old.is_ok() && update) return old.status();
    std::error_code ec;
    fs::create_directories(dir(name), ec);
    if (ec) return core::io_error(dir(name).string() + ": " + ec.message());
    ::chmod(dir(name).c_str(), 0700);
    c = next_version(std::move(c), old.is_ok() ? &*old : nullptr);
    GANTRY_RETURN_IF_ERROR(write_file(dir(name) / "cluster.yaml", to_yaml(c), 0644));
    return c;
  }

  Result<ClusterStatus> status(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    auto text = read_file(dir(name) / "status.yaml");
    if (!text.is_ok()) return ClusterStatus{};
    return parse_status(*text);
  }

  Status put_status(const std::string& name, const ClusterStatus& s) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    return write_file(dir(name) / "status.yaml", to_yaml(s), 0644);
  }

  Result<Tokens> tokens(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    fs::path p = dir(name) / "tokens";
    auto text = read_file(p);
    Tokens t;
    if (text.is_ok()) {
      std::istringstream in(*text);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("server=", 0) == 0) t.server = line.substr(7);
        if (line.rfind("agent=", 0) == 0) t.agent = line.substr(6);
      }
      if (!t.server.empty() && !t.agent.empty()) return t;
    }
    t = new_tokens();
    GANTRY_RETURN_IF_ERROR(write_file(p, "server=" + t.server + "\nagent=" + t.agent + "\n", 0600));
    return t;
  }

  Status remove(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    std::error_code ec;
    fs::remove_all(dir(name), ec);
    if (ec) return core::io_error(dir(name).string() + ": " + ec.message());
    return {};
  }

  Result<std::unique_ptr<Lease>> acquire(const std::string& name, const std::string& holder, std::chrono::milliseconds,
                                         std::chrono::milliseconds wait) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    std::error_code ec;
    fs::create_directories(dir(name), ec);
    fs::path p = dir(name) / "lock";
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errno_status("open " + p.string());
    auto until = std::chrono::steady_clock::now() + wait;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        Status s = errno_status("lock " + p.string());
        ::close(fd);
        return s;
      }
      if (std::chrono::steady_clock::now() >= until) {
        auto who = read_file(p);
        ::close(fd);
        return core::deadline_exceeded("cluster '" + name + "' is being reconciled by " +
                                       (who.is_ok() && !who->empty() ? *who : std::string("another process")) +
                                       " (lease not acquired within " + std::to_string(wait.count()) + " ms)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, holder.data(), holder.size(), 0);
    return std::unique_ptr<Lease>(std::make_unique<FileLease>(fd));
  }

 private:
  fs::path dir(const std::string& name) const { return root_ / name; }
  fs::path root_;
};

}  // namespace

std::string default_state_dir() {
  if (const char* d = std::getenv("GANTRY_STATE_DIR"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.gantry/clusters";
}

Result<std::unique_ptr<Store>> open_dir_store(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return core::io_error("state directory " + root + ": " + ec.message());
  ::chmod(root.c_str(), 0700);
  return std::unique_ptr<Store>(std::make_unique<DirStore>(root));
}

}  // namespace gantry::cluster
