// The process's memory as the allocator sees it (jemalloc's statistics when gantry runs on
// jemalloc, as the release binary does), and giving unused memory back to the OS. Without
// jemalloc (sanitizer builds) the figures come from /proc/self/statm and purging is glibc's
// malloc_trim.
#pragma once

#include <cstdint>

namespace gantry::trades {

struct MemoryStats {
  bool jemalloc = false;
  uint64_t allocated = 0;  // bytes the program holds (Go: heap_alloc)
  uint64_t active = 0;     // in pages the program uses (heap_inuse)
  uint64_t resident = 0;   // physically mapped by the allocator (heap_sys counterpart), or RSS
  uint64_t retained = 0;   // mapped, unused, kept for reuse
};

MemoryStats read_memory();
// Returns every arena's unused dirty pages to the OS (jemalloc arena.<all>.purge, else
// malloc_trim).
bool purge_memory();
// Dirty pages go back to the OS after this long unused (jemalloc dirty_decay_ms); false when
// not on jemalloc.
bool set_decay_ms(int64_t ms);
// The process's resident set size (from /proc), whatever the allocator.
uint64_t resident_set_bytes();

}  // namespace gantry::trades
