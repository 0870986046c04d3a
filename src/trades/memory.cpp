#include "trades/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <sys/types.h>
#include <string>

// jemalloc's control interface, weak: present when the binary links jemalloc, null otherwise.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen) __attribute__((weak));

namespace gantry::trades {

namespace {
uint64_t stat(const char* name) {
  size_t v = 0, len = sizeof v;
  return mallctl(name, &v, &len, nullptr, 0) == 0 ? v : 0;
}
}  // namespace

uint64_t resident_set_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, rss = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &rss);
  std::fclose(f);
  return n == 2 ? static_cast<uint64_t>(rss) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

MemoryStats read_memory() {
  MemoryStats m;
  if (mallctl) {
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    // Statistics are a snapshot taken when the epoch advances.
    if (mallctl("epoch", &epoch, &len, &epoch, len) == 0) {
      m.jemalloc = true;
      m.allocated = stat("stats.allocated");
      m.active = stat("stats.active");
      m.resident = stat("stats.resident");
      m.retained = stat("stats.retained");
      return m;
    }
  }
  m.resident = resident_set_bytes();
  m.allocated = m.active = m.resident;
  return m;
}

bool purge_memory() {
  // 4096 is MALLCTL_ARENAS_ALL: every arena.
  if (mallctl) return mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0) == 0;
  malloc_trim(0);  // glibc's allocator (builds without jemalloc) has its own
  return true;
}

bool set_decay_ms(int64_t ms) {
  if (!mallctl) return false;
  ssize_t v = static_cast<ssize_t>(ms);
  // The default for arenas made later, then each existing arena.
  if (mallctl("arenas.dirty_decay_ms", nullptr, nullptr, &v, sizeof v) != 0) return false;
  unsigned n = 0;
  size_t len = sizeof n;
  if (mallctl("arenas.narenas", &n, &len, nullptr, 0) != 0) return false;
  for (unsigned i = 0; i < n; ++i) {
    std::string name = "arena." + std::to_string(i) + ".dirty_decay_ms";
    (void)mallctl(name.c_str(), nullptr, nullptr, &v, sizeof v);  // an arena not yet in use has none to set
  }
  return true;
}

}  // namespace gantry::trades
