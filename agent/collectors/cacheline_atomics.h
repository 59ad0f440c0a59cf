// Atomic operations that are real calls, and the uprobes that count them in
// bounded windows.
//
// Most atomics are single instructions the compiler inlines: nothing to
// probe, and a watchpoint is the only way to see them. Three kinds are calls:
//   libatomic   the out-of-line __atomic_* functions a compiler emits for
//               atomics it cannot inline (sizes that are not lock-free,
//               -fno-inline-atomics, some 16-byte cases). The sized ones
//               (__atomic_fetch_add_8(ptr, …)) take the address first; the
//               generic ones (__atomic_load(size, ptr, …)) second. The
//               16-byte ones are IFUNCs: the symbol is the resolver, not the
//               code that runs, so they are not probed.
//   Go          sync/atomic functions and methods the compiler did not inline
//               (called through a function value or an interface): Go's
//               ABIInternal passes the address (or the receiver) in RAX.
//               ABI0 assembly bodies (".abi0") and method-value wrappers
//               ("-fm") are skipped.
//   user-named  `cachelines.atomics: [{exe, symbol, addr_arg}]`: any function
//               the user knows takes the hot address in argument `addr_arg`
//               (C calling convention, or Go's when the exe is a Go binary).
// A uprobe costs microseconds per call, so these are attached only for the
// length of a window, under the same duty cycle as the watchpoints.
#pragma once

#include <bpf/libbpf.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"
#include "agent/loader/probe_report.h"

namespace syncscope::collectors {

struct AtomicFunction {
  std::string path;     // the file the uprobe attaches to, as the agent opens it
  std::string display;  // "libatomic.so.1:__atomic_load", "/usr/bin/api:sync/atomic.AddInt64"
  std::string symbol;
  uint64_t file_offset = 0;
  uint8_t abi = 0;       // CL_ABI_*
  uint8_t addr_arg = 0;  // which argument holds the address
};

// libatomic's probe-able functions in `elf_path` (pure given the file).
Result<std::vector<AtomicFunction>> libatomic_functions(const std::string& elf_path, const std::string& display_path);
// A Go binary's sync/atomic functions that exist as calls; empty for other files.
std::vector<AtomicFunction> go_atomic_functions(const std::string& path, const std::string& display_path);
// One user-named function.
Result<AtomicFunction> user_atomic_function(const config::AtomicFunction& named);

// What a process calls out of line: the libatomic functions its modules
// import (names in their .dynstr; libatomic exports ~80, a program uses a
// few, and every uprobe costs an unregister when the window ends) and its
// own Go sync/atomic functions (if it is a Go binary).
std::vector<AtomicFunction> process_atomic_functions(pid_t pid);
// The __atomic_* / atomic_flag_* names in a module's dynamic string table.
std::vector<std::string> imported_atomic_names(const std::string& elf_path);

// Uprobes on a set of functions for one window; the destructor detaches them.
class AtomicProbes {
 public:
  ~AtomicProbes();
  // Detaches every uprobe. Unregistering one takes ~0.1 s here (it waits
  // for an SRCU grace period) but removes the breakpoints from the target's
  // code first, so the target stops paying at once; the caller may run this
  // on another thread and not wait.
  void detach();
  // `pid` -1: every process that maps the files. Functions that fail to
  // attach are listed in rows with the reason; the rest stay attached.
  static std::unique_ptr<AtomicProbes> attach(bpf_program* program, const std::vector<AtomicFunction>& functions,
                                              pid_t pid, uint32_t first_index);
  size_t attached() const { return links_.size(); }
  const std::vector<loader::ProbeStatus>& rows() const { return rows_; }

 private:
  std::vector<loader::Link> links_;
  std::vector<loader::ProbeStatus> rows_;
};

}  // namespace syncscope::collectors
