// glibc discovery and its contended-only lock functions.
//
// Cost must scale with contention, so the lock uprobes go on glibc functions
// that run only when a thread is about to block or wake a blocked one, never on
// pthread_mutex_lock itself. In Debian 12's glibc 2.36 those are LOCAL symbols
// (absent from .dynsym), so each is resolved in order from the library's own
// .symtab/.dynsym, the separate debug file found by build-id (libc6-dbg), and,
// for __lll_lock_wait only, the one direct call target of pthread_mutex_lock
// that is neither a PLT stub nor an exported function and issues a syscall.
// The rwlock and condvar slow paths are inlined into their public functions;
// they block through two generic helpers, __futex_abstimed_wait64 (rwlocks,
// timed and robust/PI mutexes) and __futex_abstimed_wait_cancelable64
// (condvars, semaphores, pthread_join). A uprobe on their entry reads the
// return address at *(u64 *)sp; classify_return_address() maps its vaddr to the
// primitive (rwlock read/write, condvar, …) through the address ranges of the
// callers. Results are cached per build-id: every container running the same
// libc shares one resolution. glibc before 2.34 keeps these in libpthread.so.0
// and is reported as unsupported.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "probes/elf_file.h"

namespace syncscope::probes {

enum class ResolveMethod : uint8_t {
  symtab,       // the library's own .symtab
  dynsym,       // the library's .dynsym (exported, e.g. GLIBC_PRIVATE)
  debug_file,   // .symtab of the debug file found by build-id / .gnu_debuglink
  call_target,  // decoded from pthread_mutex_lock (no symbol anywhere)
};
std::string_view to_string(ResolveMethod method);

enum class WaitKind : uint8_t {
  unknown,
  mutex,          // pthread_mutex_* (including a condvar re-acquiring its mutex)
  internal_lock,  // glibc-internal lll locks: stdio FILE locks, malloc arenas, dl
  rwlock_read,
  rwlock_write,
  condvar,
  semaphore,
  thread_join,
};
std::string_view to_string(WaitKind kind);

// One row of the probe catalog: what to attach to in libc and what it means.
struct LibcProbeTarget {
  std::string_view function;
  WaitKind kind;              // unknown: classify by the caller's return address
  bool wake;                  // true: the waker side (unlock with waiters)
  bool call_target_fallback;  // may be found by decoding pthread_mutex_lock
  std::string_view arguments;
};
std::span<const LibcProbeTarget> libc_probe_targets();

struct ResolvedFunction {
  std::string name;
  uint64_t vaddr = 0;
  uint64_t file_offset = 0;  // what bpf_program__attach_uprobe_opts wants
  uint64_t size = 0;         // 0 when unknown (call_target)
  ResolveMethod method = ResolveMethod::symtab;
  std::string source;        // the file whose symbols or code gave the answer
};

struct LibcFunction {
  const LibcProbeTarget* target = nullptr;
  Result<ResolvedFunction> resolved;
};

// [start, end) of a function that calls one of the generic futex waits.
struct WaitCaller {
  uint64_t start = 0;
  uint64_t end = 0;
  std::string function;
  WaitKind kind = WaitKind::unknown;
};

struct LibcInfo {
  std::string path;        // the file that was opened (attach uprobes to it)
  std::string build_id;
  std::string version;     // "2.36", from the library's banner; may be empty
  std::string debug_file;  // empty when none was found
  std::string debug_error; // why there is no debug file
  std::vector<LibcFunction> functions;  // in libc_probe_targets() order
  std::vector<WaitCaller> wait_callers; // sorted by start

  const LibcFunction* function(std::string_view name) const;
  // What kind of wait a return address (a libc vaddr) belongs to.
  WaitKind classify_return_address(uint64_t vaddr) const;
};

// Where a process has glibc mapped.
struct LibcLocation {
  std::string mapped_path;  // as /proc/PID/maps shows it
  std::string open_path;    // openable from the agent (/proc/PID/root/…)
  uint64_t inode = 0;
};

// "libc.so.6" or "libc-2.NN.so" (a basename or full path); not libcap, libcrypt…
bool is_libc_path(std::string_view path);
Result<LibcLocation> find_libc(int pid, std::string_view proc_root = "/proc");
// The host's own libc.so.6.
Result<std::string> system_libc_path();

class LibcResolver {
 public:
  explicit LibcResolver(std::string debug_root = std::string(kDefaultDebugRoot));

  Result<LibcInfo> resolve(const std::string& path);
  Result<LibcInfo> resolve_pid(int pid);
  Result<LibcInfo> resolve_system();
  size_t cache_size() const;

 private:
  Result<LibcInfo> resolve_uncached(const ElfFile& lib);

  std::string debug_root_;
  mutable std::mutex mu_;
  std::map<std::string, LibcInfo> by_build_id_;
};

}  // namespace syncscope::probes
