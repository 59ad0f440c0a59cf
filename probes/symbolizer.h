// User-space addresses → names, for lock call stacks and false-shared data.
//
// symbolize() turns the user stack of an event (instruction pointers from
// bpf_get_stack) into frames {address, module, demangled symbol, offset,
// is_guess}; symbolize_data() names a data address: "symbol+0xoff" for globals
// and statics in .data/.bss (including the part of .bss that is an anonymous
// mapping after the file's pages), "stack" for the main stack and for thread
// stacks (an anonymous mapping above a guard page that holds a thread's stack
// pointer), "heap" for [heap] and other anonymous memory. Parsed ELF symbol
// tables are cached by file identity (dev, inode, mtime, size) and shared by
// build-id, so a hundred processes mapping one libc cost one parse; a binary
// without .symtab borrows the .symtab of its debug file. /proc/PID/maps is
// cached per process, refreshed when an address falls outside every cached
// mapping or the copy is older than Options::maps_max_age, and kept after the
// process exits so late events still resolve; forget() drops it. Reading maps
// and opening files go through ProcessSource and ElfSource so tests can fake
// both. Methods may be called from several threads (one lock; ELF parsing
// happens under it).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/result.h"
#include "probes/elf_file.h"
#include "probes/proc_maps.h"

namespace syncscope::probes {

struct Frame {
  uint64_t address = 0;
  std::string module;   // path as the process maps it, "[vdso]", or "" when unmapped
  std::string symbol;   // demangled; empty when no symbol covers the address
  uint64_t offset = 0;  // from the symbol, or the module vaddr when there is no symbol
  bool is_guess = false;  // nearest unsized symbol: may be the wrong function

  // "pthread_mutex_lock+0x1a (libc.so.6)", "libfoo.so+0x1234", "[unknown] 0x7f…".
  std::string to_string() const;
};

// True when a stack is most likely cut short (frame-pointer walk stopped in
// code built without frame pointers) rather than complete: no frames, or
// fewer than three frames, or a last frame that is unmapped — unless the last
// frame is a known thread entry (start_thread, __libc_start_main, clone3,
// runtime.goexit, …). Callers print "stack truncated: no frame pointers".
bool stack_looks_truncated(std::span<const Frame> frames);

// Identity of the file behind a mapping, cheap to get (one stat).
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t inode = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;
  auto operator<=>(const FileIdentity&) const = default;
};

class ProcessSource {
 public:
  virtual ~ProcessSource() = default;
  virtual Result<std::vector<Mapping>> maps(int pid) = 0;
  // Stack pointers of the process's threads that are not running right now
  // (from /proc/PID/task/TID/syscall); may be empty.
  virtual std::vector<uint64_t> thread_stack_pointers(int pid) = 0;
};

class ElfSource {
 public:
  virtual ~ElfSource() = default;
  virtual Result<FileIdentity> identify(int pid, const Mapping& m) = 0;
  virtual Result<std::unique_ptr<ElfFile>> open(int pid, const Mapping& m) = 0;
  virtual Result<std::unique_ptr<ElfFile>> open_debug(const ElfFile& binary) = 0;
};

class ProcfsProcessSource final : public ProcessSource {
 public:
  explicit ProcfsProcessSource(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  Result<std::vector<Mapping>> maps(int pid) override;
  std::vector<uint64_t> thread_stack_pointers(int pid) override;

 private:
  std::string proc_root_;
};

class FilesystemElfSource final : public ElfSource {
 public:
  explicit FilesystemElfSource(std::string proc_root = "/proc", std::string debug_root = std::string(kDefaultDebugRoot))
      : proc_root_(std::move(proc_root)), debug_root_(std::move(debug_root)) {}
  Result<FileIdentity> identify(int pid, const Mapping& m) override;
  Result<std::unique_ptr<ElfFile>> open(int pid, const Mapping& m) override;
  Result<std::unique_ptr<ElfFile>> open_debug(const ElfFile& binary) override;

 private:
  std::string proc_root_;
  std::string debug_root_;
};

class Symbolizer {
 public:
  struct Options {
    // Stack entries after the first are return addresses: look up address-1 so
    // a call at the very end of a function is not blamed on the next one.
    bool return_addresses = true;
    std::chrono::milliseconds maps_max_age{1000};
    size_t max_processes = 4096;
  };

  Symbolizer();  // /proc, /usr/lib/debug, the system clock
  Symbolizer(std::shared_ptr<ProcessSource> processes, std::shared_ptr<ElfSource> files, Options options,
             const Clock& clock = SystemClock::instance());

  Result<std::vector<Frame>> symbolize(int pid, std::span<const uint64_t> user_ips);
  Result<std::string> symbolize_data(int pid, uint64_t addr);
  // Drops the cached maps of a process that exited.
  void forget(int pid);
  // Distinct parsed modules (for tests and self-metrics).
  size_t module_count() const;

 private:
  struct Module {
    std::shared_ptr<const ElfFile> binary;
    std::shared_ptr<const ElfFile> debug;  // only when binary lacks .symtab
  };
  struct ProcessMaps {
    std::vector<Mapping> maps;
    std::chrono::steady_clock::time_point read_at;
    uint64_t last_use = 0;
  };

  Result<const std::vector<Mapping>*> maps_for(int pid, std::span<const uint64_t> addrs);
  std::shared_ptr<const Module> module_for(int pid, const Mapping& m);
  std::optional<SymbolMatch> function_in(const Module& module, uint64_t vaddr) const;
  std::optional<SymbolMatch> object_in(const Module& module, uint64_t vaddr) const;
  bool is_thread_stack(int pid, const std::vector<Mapping>& maps, const Mapping& m);

  std::shared_ptr<ProcessSource> processes_;
  std::shared_ptr<ElfSource> files_;
  Options options_;
  const Clock& clock_;

  mutable std::mutex mu_;
  uint64_t use_counter_ = 0;
  std::unordered_map<int, ProcessMaps> process_maps_;
  std::map<FileIdentity, std::shared_ptr<const Module>> by_identity_;
  std::unordered_map<std::string, std::shared_ptr<const Module>> by_build_id_;
};

// abi::__cxa_demangle for "_Z…" names; anything else unchanged.
std::string demangle(std::string_view name);

}  // namespace syncscope::probes
