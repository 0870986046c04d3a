#include "cluster/provider/ssh.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cluster/distribution/distribution.h"
#include "cluster/provider/subprocess.h"

namespace gantry::cluster {

namespace fs = std::filesystem;
using core::Result;
using core::Status;

SshProvider::SshProvider(Inventory inv, std::string control_dir, std::vector<std::string> options)
    : options_(std::move(options)), inv_(std::move(inv)), control_dir_(std::move(control_dir)) {
  std::error_code ec;
  fs::create_directories(control_dir_, ec);
  ::chmod(control_dir_.c_str(), 0700);
}

// The master connections end with their ControlPersist time; ask them to go now.
SshProvider::~SshProvider() {
  for (auto& h : inv_.hosts) {
    auto argv = ssh_argv(h);
    argv.insert(argv.end() - 1, {"-O", "exit"});
    (void)run_program(argv, {}, core::resilience::Deadline::after(core::Clock::real(), std::chrono::seconds(2)));
  }
}

const SshHost* SshProvider::host(const std::string& name) const {
  for (auto& h : inv_.hosts)
    if (h.name == name) return &h;
  return nullptr;
}

std::vector<std::string> SshProvider::ssh_argv(const SshHost& h) const {
  std::vector<std::string> a{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5",
                             "-o", "ControlMaster=auto", "-o", "ControlPath=" + control_dir_ + "/%C", "-o", "ControlPersist=60",
                             "-o", "StrictHostKeyChecking=yes", "-p", std::to_string(h.port)};
  if (!inv_.known_hosts.empty()) a.insert(a.end(), {"-o", "UserKnownHostsFile=" + inv_.known_hosts});
  if (!h.ssh_key.empty()) a.insert(a.end(), {"-o", "IdentitiesOnly=yes", "-i", h.ssh_key});
  for (auto& o : options_) a.insert(a.end(), {"-o", o});
  a.push_back(h.user + "@" + h.address);
  return a;
}

Result<std::string> SshProvider::exec(const SshHost& h, const std::string& remote_cmd, const std::string& stdin_text,
                                      const std::string& stdin_file, const std::string& step,
                                      const core::resilience::Deadline& d) {
  auto argv = ssh_argv(h);
  argv.push_back(remote_cmd);
  auto r = run_program(argv, {stdin_text, stdin_file}, d);
  if (!r.is_ok()) return r.status();
  auto tail = [](const std::string& s) {
    std::string t = s.size() > 600 ? s.substr(s.size() - 600) : s;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  };
  if (r->timed_out) return core::deadline_exceeded(h.name + ": " + step + " did not finish in time");
  if (r->status == 255) return core::unavailable(h.name + " (" + h.address + "): ssh: " + tail(r->err));
  if (r->status != 0)
    return Status(core::Code::kFailedPrecondition, h.name + ": " + step + " exited " + std::to_string(r->status) + ": " + tail(r->err));
  return std::move(r->out);
}

Result<ProviderInstance> SshProvider::create(const InstanceRequest& r, const core::resilience::Deadline&) {
  std::string key = r.cluster + "/" + r.pool + "/" + std::to_string(r.index);
  std::string claims = inv_.path + ".claims";
  std::lock_guard lk(claims_mu_);
  int lock = ::open((claims + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return core::io_error(claims + ".lock: cannot be opened");
  ::flock(lock, LOCK_EX);
  std::map<std::string, std::string> taken;  // host -> key
  {
    std::ifstream in(claims);
    std::string host, k;
    while (in >> host >> k) taken[host] = k;
  }
  const SshHost* chosen = nullptr;
  for (auto& [host_name, k] : taken)
    if (k == key) chosen = host(host_name);
  if (!chosen)
    for (auto& h : inv_.hosts)
      if (!taken.count(h.name)) {
        chosen = &h;
        taken[h.name] = key;
        std::string text;
        for (auto& [hn, k] : taken) text += hn + " " + k + "\n";
        std::string tmp = claims + ".tmp";
        {
          std::ofstream out(tmp, std::ios::trunc);
          out << text;
          out.flush();
          if (!out) {
            ::close(lock);
            return core::io_error(tmp + ": cannot be written");
          }
        }
        ::rename(tmp.c_str(), claims.c_str());
        break;
      }
  ::close(lock);
  if (!chosen)
    return Status(core::Code::kResourceExhausted, "every host of " + inv_.path + " is taken (" + std::to_string(inv_.hosts.size()) +
                                                     " hosts); add hosts or scale down");
  return ProviderInstance{chosen->name, chosen->address, chosen->address};
}

Status SshProvider::destroy(const ProviderInstance& i, const core::resilience::Deadline&) {
  std::string claims = inv_.path + ".claims";
  std::lock_guard lk(claims_mu_);
  int lock = ::open((claims + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return core::io_error(claims + ".lock: cannot be opened");
  ::flock(lock, LOCK_EX);
  std::string text, host, k;
  {
    std::ifstream in(claims);
    while (in >> host >> k)
      if (host != i.id) text += host + " " + k + "\n";
  }
  {
    std::ofstream out(claims + ".tmp", std::ios::trunc);
    out << text;
  }
  ::rename((claims + ".tmp").c_str(), claims.c_str());
  ::close(lock);
  return {};
}

Status SshProvider::check(const ProviderInstance& i, const core::resilience::Deadline& d) {
  const SshHost* h = host(i.id);
  if (!h) return core::not_found("host '" + i.id + "' is not in " + inv_.path);
  static const std::string script =
      "set -eu\n"
      "[ \"$(id -u)\" = 0 ] || { echo 'not root: installing needs root' >&2; exit 1; }\n"
      "case \"$(uname -m)\" in x86_64|aarch64) ;; *) echo \"unsupported architecture $(uname -m)\" >&2; exit 1 ;; esac\n"
      "for c in sh sha256sum curl flock; do command -v \"$c\" >/dev/null || { echo \"$c is missing\" >&2; exit 1; }; done\n"
      "mkdir -p /opt /var/lib\n"
      "for p in /opt /var/lib; do\n"
      "  free=$(df -Pk \"$p\" | awk 'NR==2 {print $4}')\n"
      "  [ \"$free\" -ge 1048576 ] || { echo \"less than 1 GB free under $p\" >&2; exit 1; }\n"
      "done\n";
  auto r = exec(*h, "sh -s", script, "", "check", d);
  return r.status();
}

Result<std::string> SshProvider::run(const ProviderInstance& i, const Script& s, const core::resilience::Deadline& d) {
  const SshHost* h = host(i.id);
  if (!h) return core::not_found("host '" + i.id + "' is not in " + inv_.path);
  return exec(*h, "sh -s", s.text, "", s.step, d);
}

Status SshProvider::put(const ProviderInstance& i, const std::string& local_path, const std::string& remote_path, bool executable,
                        const core::resilience::Deadline& d) {
  const SshHost* h = host(i.id);
  if (!h) return core::not_found("host '" + i.id + "' is not in " + inv_.path);
  std::error_code ec;
  auto size = fs::file_size(local_path, ec);
  if (ec) return core::io_error(local_path + ": " + ec.message());
  // A part file of this put's own ($$, the remote shell's pid): a pass killed mid-copy leaves its
  // remote copy running (the multiplexed connection outlives the client) beside the resumed
  // pass's. A copy cut short (its client died) is not the file: it is removed, not renamed.
  std::string q = shell_quote(remote_path);
  std::string cmd = "mkdir -p " + shell_quote(fs::path(remote_path).parent_path().string()) + " && t=" +
                    shell_quote(remote_path + ".part.") + "$$ && cat > \"$t\" && n=$(wc -c < \"$t\") && if [ $n -eq " +
                    std::to_string(size) + " ]; then " + (executable ? "chmod 755 \"$t\" && " : "") + "mv -f \"$t\" " + q +
                    "; else rm -f \"$t\"; echo \"short copy: $n of " + std::to_string(size) + " bytes\" >&2; exit 1; fi";
  return exec(*h, cmd, "", local_path, "put", d).status();
}

}  // namespace gantry::cluster
