// Go sync.Mutex / sync.RWMutex contention: bpf/golang.bpf.c in the kernel,
// this in user space, driven by the locks collector (locks.h), whose
// processes it follows and whose aggregation and metric families it feeds:
// kind go_mutex and go_rwmutex in syncscope_lock_wait_seconds,
// syncscope_lock_contentions_total and the top-K per lock, and the same rows
// in `syncscope trace locks`.
//
// For each followed process whose executable is a Go binary (amd64, Go >=
// 1.17: the register ABI), the executable is probed once, however many
// processes run it: a uprobe at the entry and at every RET instruction of
// each contended-only slow path (the catalog in go_locks.cpp), the RETs found
// by decoding the function with capstone (probes/disasm.h); and a uprobe at
// the entry of the contended-only unlock paths (unlockSlow, rUnlockSlow),
// whose records are the holder side: the stack of the goroutine releasing a
// lock somebody waits for, as `trace locks --stacks` shows for futexes (and
// what Go's own mutex profile records). Functions come
// from .symtab or, in stripped binaries, from .gopclntab; the goid offset in
// runtime.g from DWARF or the per-version table (probes/go/). Anything that
// cannot be probed is a row in /debug/probes, never an error of the agent.
//
// Records name the mutex (the receiver of lockSlow, or the RWMutex that owns
// the semaphore word) and carry the goroutine's user stack, which is named
// through the binary's pclntab (name_frames), so stripped binaries get
// function names too.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "agent/collectors/locks_model.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"
#include "agent/loader/probe_report.h"
#include "bpf/golang.h"
#include "probes/elf_file.h"
#include "probes/go/go_binary.h"
#include "probes/symbolizer.h"

struct golang_bpf;
struct ring_buffer;
struct bpf_object;

namespace syncscope::collectors {

// Where a measured Go wait goes: the locks collector.
class GoLockSink {
 public:
  virtual ~GoLockSink() = default;
  // `ips`: the goroutine's user stack, innermost first (run-time addresses).
  virtual void add_go_wait(const LockWait& wait, std::span<const uint64_t> ips) = 0;
  // A release that had waiters (unlockSlow, rUnlockSlow): the holder side.
  virtual void add_go_wake(const LockWake& wake, std::span<const uint64_t> ips) = 0;
};

struct GoLocksOptions {
  // `trace locks -p`: uprobes for this process only.
  std::optional<uint32_t> pid;
  // Follow only the processes in the locks collector's lock_targets map
  // (its fd, shared with golang.bpf.o); -1: every process.
  int lock_targets_fd = -1;
  bool lazy_wakeup = true;
  // Probe unlockSlow / rUnlockSlow for the holder side
  // (LocksOptions::go_holder_stacks).
  bool holder_stacks = false;
  uint32_t ringbuf_bytes = 4 << 20;
  // In-flight waits older than this are dropped (a panic can skip every
  // RET; a process killed mid-wait never reaches one).
  std::chrono::seconds stale_after{600};
};

// One executable looked at: a Go binary that was probed (or could not be),
// or a file that is not Go (kept so it is not opened again).
struct ProbedGoBinary {
  dev_t dev = 0;
  ino_t inode = 0;
  std::string path;
  bool is_go = false;
  std::shared_ptr<const probes::go::GoBinary> binary;  // set when probing got that far
  std::unique_ptr<probes::ElfFile> elf;                // for RET decoding and PIE biases
  std::string error;                                   // why it is not probed
  std::vector<loader::Link> links;
  std::vector<loader::ProbeStatus> rows;
};

class GoLocks {
 public:
  // Loads golang.bpf.o; attaches nothing until check_process finds a Go binary.
  static Result<std::unique_ptr<GoLocks>> start(const GoLocksOptions& options, GoLockSink& sink);
  ~GoLocks();

  // A process to follow (at start, at exec): probes its executable if it is
  // a Go binary not probed yet, and remembers the process for naming frames.
  // True when a Go executable was probed (or failed to be) just now.
  bool check_process(uint32_t pid);
  // Drops the process's in-flight waits now and its naming state at the
  // next refresh (late records still name their frames).
  void process_exited(uint32_t pid);
  // Drains the ring buffer (records go to the sink).
  void consume();
  int ring_epoll_fd() const;
  // Once a second: stale in-flight waits, retired processes.
  void refresh(std::chrono::steady_clock::time_point now);

  // Names the frames of `pid` that fall in its Go executable through the
  // pclntab (stripped binaries included). frames[i].address must be the
  // run-time address; frames after the first are return addresses.
  void name_frames(uint32_t pid, std::vector<probes::Frame>& frames) const;

  std::vector<loader::ProbeStatus> rows() const;
  // "Go mutex uprobes on 1 binary (sync.(*Mutex).lockSlow via .symtab …)".
  std::string summary() const;
  const bpf_object* object() const;
  // Sum over CPUs of go_hits[what] (GO_HIT_*).
  uint64_t hits(uint32_t what) const;
  size_t uprobe_link_count() const;
  uint64_t records() const { return records_; }
  uint64_t events_lost() const;
  // For a parallel detach by the owner (each costs an RCU grace period).
  std::vector<loader::Link> take_links();
  const std::map<std::pair<dev_t, ino_t>, std::unique_ptr<ProbedGoBinary>>& binaries() const { return binaries_; }

 private:
  struct Process {
    ProbedGoBinary* binary = nullptr;
    uint64_t bias = 0;  // run-time address - ELF vaddr (0 unless PIE)
  };

  GoLocks() = default;
  static int on_record(void* ctx, void* data, size_t size);
  void handle(const go_lock_record& record);
  ProbedGoBinary* probe_binary(uint32_t pid, const std::string& path, dev_t dev, ino_t inode);
  void attach(ProbedGoBinary& bin);
  void delete_inflight(const std::set<uint32_t>& tgids, uint64_t older_than_ns);

  GoLocksOptions options_;
  GoLockSink* sink_ = nullptr;
  std::unique_ptr<golang_bpf, void (*)(golang_bpf*)> skel_{nullptr, nullptr};
  std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> ring_{nullptr, nullptr};
  std::map<std::pair<dev_t, ino_t>, std::unique_ptr<ProbedGoBinary>> binaries_;
  std::map<uint32_t, Process> processes_;
  std::vector<uint32_t> exited_;  // forgotten at the next refresh
  std::chrono::steady_clock::time_point next_sweep_{};
  uint64_t records_ = 0;
};

// Pure, for tests: the lock a record is about and its kind. lockSlow: the
// Mutex itself. The RWMutex semaphores: writerSem is at offset 8 and
// readerSem at 12 of sync.RWMutex in every Go version (after the 8-byte w
// Mutex). Before Go 1.20 both go through runtime_SemacquireMutex, told
// apart by the caller: sync.(*RWMutex).Lock is the writer (RLock is inlined).
// The holder side: unlockSlow names its Mutex; rUnlockSlow its RWMutex, and
// the word it releases is the writer's semaphore.
struct GoLockIdentity {
  LockKind kind = LockKind::go_mutex;
  uint64_t lock = 0;
  uint64_t word = 0;  // the word waited on or released (the futex word's analogue)
};
GoLockIdentity identify_go_lock(uint32_t function, uint64_t addr, std::string_view caller_function);

// Pure, for tests: one ring-buffer record as the locks collector takes it,
// a wait or (unlockSlow, rUnlockSlow) a release, with the goroutine's stack,
// innermost first. `caller_function` as for identify_go_lock.
struct GoLockEvent {
  LockWait wait;                 // when !wake
  std::optional<LockWake> wake;  // the holder side
  std::vector<uint64_t> ips;
};
GoLockEvent decode_go_record(const go_lock_record& record, std::string_view caller_function);

}  // namespace syncscope::collectors
