// Where the Go runtime keeps goroutine state, so the agent can read it from
// outside the process (process_vm_readv) and from BPF (current g is in R14 on
// amd64 with the register ABI, Go >= 1.17).
//
// Offsets come from the binary's DWARF when it has any (read_dwarf_runtime),
// else from a per-version table (offsets_for_version) computed by hand from
// the runtime.g / runtime.m / runtime.gobuf definitions in
// src/runtime/runtime2.go of each release; the comment on each row in
// offsets.cpp says which layout change it reflects and how it was checked
// (the 1.19 row against DWARF in test_go_offsets, most others against the
// machine code of release binaries). Only 64-bit targets (amd64, arm64:
// same layout) are covered by the table.
//
// Also here: goroutine status values and the waitReason → class mapping.
// waitReason numbers are re-ordered between releases, so the names are best
// read from the binary's own runtime.waitReasonStrings (go_binary.cpp does);
// the per-version name tables here are the fallback.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "probes/go/buildinfo.h"

namespace syncscope::probes::go {

enum class OffsetSource { dwarf, version_table };

struct RuntimeOffsets {
  // runtime.g
  uint32_t g_stack_lo = 0;      // g.stack.lo
  uint32_t g_stack_hi = 0;      // g.stack.hi
  uint32_t g_m = 0;             // g.m (*m)
  uint32_t g_sched = 0;         // g.sched (gobuf)
  uint32_t g_sched_sp = 0;      // g.sched.sp
  uint32_t g_sched_pc = 0;      // g.sched.pc
  uint32_t g_sched_bp = 0;      // g.sched.bp (frame pointer: unwinding parked goroutines)
  uint32_t g_atomicstatus = 0;  // uint32 status, see GStatus
  uint32_t g_goid = 0;          // int64/uint64
  uint32_t g_waitreason = 0;    // uint8, valid when status is _Gwaiting
  uint32_t g_gopc = 0;          // pc of the go statement that created it
  uint32_t g_startpc = 0;       // pc of the goroutine function
  // runtime.m
  uint32_t m_curg = 0;          // the goroutine running on this m
  OffsetSource source = OffsetSource::version_table;
  std::string origin;           // "DWARF" or the table row's description

  friend bool operator==(const RuntimeOffsets& a, const RuntimeOffsets& b) {
    return a.g_stack_lo == b.g_stack_lo && a.g_stack_hi == b.g_stack_hi && a.g_m == b.g_m && a.g_sched == b.g_sched &&
           a.g_sched_sp == b.g_sched_sp && a.g_sched_pc == b.g_sched_pc && a.g_sched_bp == b.g_sched_bp &&
           a.g_atomicstatus == b.g_atomicstatus && a.g_goid == b.g_goid && a.g_waitreason == b.g_waitreason &&
           a.g_gopc == b.g_gopc && a.g_startpc == b.g_startpc && a.m_curg == b.m_curg;
  }
};

// The hand-computed table for Go 1.16 … 1.26 (64-bit). An error for other
// versions: a newer runtime may have moved fields, and guessing a goid
// offset would produce plausible but wrong data.
Result<RuntimeOffsets> offsets_for_version(const GoVersion& version);

// What the DWARF of a Go binary says. Addresses are absent when the variable
// is (DWARF has them whenever it has the types).
struct DwarfRuntimeInfo {
  RuntimeOffsets offsets;
  std::optional<uint64_t> allgs;     // runtime.allgs: []*g (ptr, len, cap)
  std::optional<uint64_t> allglen;   // runtime.allglen: uintptr
  std::optional<uint64_t> sched;     // runtime.sched: schedt
};

// Reads the runtime.g, runtime.m, runtime.gobuf and runtime.stack types and
// the allgs/allglen/sched variables from the DWARF of the ELF file `path`
// (through libdw, which also decompresses Go's compressed debug sections).
// An error when the file has no DWARF or lacks one of the fields.
Result<DwarfRuntimeInfo> read_dwarf_runtime(const std::string& path);

// Goroutine status (g.atomicstatus). The _Gscan bit is or-ed into a status
// while the GC scans the goroutine's stack.
enum GStatus : uint32_t {
  kGidle = 0,
  kGrunnable = 1,
  kGrunning = 2,
  kGsyscall = 3,
  kGwaiting = 4,
  kGdead = 6,
  kGcopystack = 8,
  kGpreempted = 9,
  kGscan = 0x1000,
};
// "idle", "runnable", "running", "syscall", "waiting", "dead", "copystack",
// "preempted"; the _Gscan bit is ignored. "unknown" otherwise.
std::string_view g_status_name(uint32_t status);

// The few kinds of waiting an SRE asks about, as a bounded label.
enum class WaitClass { none, chan, select, mutex, sleep, io, gc, other };
std::string_view wait_class_name(WaitClass wait_class);
// From a waitReasonStrings entry: "chan receive" → chan, "select" → select,
// "sync.Mutex.Lock" / "sync.RWMutex.RLock" / "semacquire" → mutex (before Go
// 1.20 a sync.Mutex waiter shows as "semacquire"), "sleep" → sleep,
// "IO wait" → io, the GC's own waits → gc, "" → none, anything else → other.
WaitClass classify_wait_reason(std::string_view reason);

// Names of waitReason values for a Go version, indexed by value; an empty
// string for a value this version's table does not pin down. Read from
// runtime.waitReasonStrings of release binaries (go1.16, 1.17, 1.19, 1.20,
// 1.22, 1.23, 1.25, 1.26; the versions between are pinned only as far as
// their neighbours agree); empty when the version is not covered.
std::vector<std::string> wait_reason_names_for_version(const GoVersion& version);

// Whether `reason` is a waitReasonStrings entry of any Go version 1.16–1.26:
// tells where the array ends when it is found by scanning a stripped binary.
bool is_known_wait_reason(std::string_view reason);

}  // namespace syncscope::probes::go
