// The alternative to OpenSSH that the ssh provider did not take, measured: libssh running
// commands as channels of one connection in this process, against OpenSSH clients riding one
// multiplexed master (what the provider does). Prints the per-command wall time and this
// process's CPU per command; bench/cluster.sh measures the OpenSSH side and prints both.
//
//   gantry_bench_ssh_exec HOST PORT USER KEY KNOWN_HOSTS N
#include <libssh/libssh.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

int fail(ssh_session s, const char* what) {
  std::fprintf(stderr, "ssh_exec: %s: %s\n", what, s ? ssh_get_error(s) : "");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s HOST PORT USER KEY KNOWN_HOSTS N\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[2]), n = std::atoi(argv[6]);
  ssh_session s = ssh_new();
  ssh_options_set(s, SSH_OPTIONS_HOST, argv[1]);
  ssh_options_set(s, SSH_OPTIONS_PORT, &port);
  ssh_options_set(s, SSH_OPTIONS_USER, argv[3]);
  ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, argv[5]);
  auto t0 = std::chrono::steady_clock::now();
  if (ssh_connect(s) != SSH_OK) return fail(s, "connect");
  if (ssh_session_is_known_server(s) != SSH_KNOWN_HOSTS_OK) return fail(s, "host key not in known_hosts");
  ssh_key key = nullptr;
  if (ssh_pki_import_privkey_file(argv[4], nullptr, nullptr, nullptr, &key) != SSH_OK) return fail(s, "key");
  if (ssh_userauth_publickey(s, nullptr, key) != SSH_AUTH_SUCCESS) return fail(s, "auth");
  double connect_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  double c0 = cpu_ms();
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    ssh_channel ch = ssh_channel_new(s);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK) return fail(s, "channel");
    if (ssh_channel_request_exec(ch, "true") != SSH_OK) return fail(s, "exec");
    char buf[256];
    while (ssh_channel_read(ch, buf, sizeof buf, 0) > 0) {
    }
    ssh_channel_send_eof(ch);
    if (ssh_channel_get_exit_status(ch) != 0) return fail(s, "exit status");
    ssh_channel_close(ch);
    ssh_channel_free(ch);
  }
  double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
  double cpu = (cpu_ms() - c0) / n;
  std::printf("{\"bench\":\"cluster\",\"metric\":\"libssh_connect_ms\",\"value\":%.1f}\n", connect_ms);
  std::printf("{\"bench\":\"cluster\",\"metric\":\"libssh_exec_ms\",\"value\":%.2f}\n", wall);
  std::printf("{\"bench\":\"cluster\",\"metric\":\"libssh_exec_client_cpu_ms\",\"value\":%.2f}\n", cpu);
  ssh_key_free(key);
  ssh_disconnect(s);
  ssh_free(s);
  return 0;
}
