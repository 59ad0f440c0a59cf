// Hardware watchpoints on another process's threads, owned like any other
// handle: whoever holds a WatchSession holds the debug registers, and its
// destructor gives every one of them back.
//
// A watchpoint is a perf event of type PERF_TYPE_BREAKPOINT opened for one
// thread (pid = tid, cpu = -1) with sample_period 1, so every matching access
// overflows it and runs bpf/cacheline.bpf.c's cacheline_watch_hit. x86 has
// four debug registers per thread (DR0-3), so a thread carries at most four;
// a thread whose registers a debugger already holds answers ENOSPC and is
// skipped for the window, never treated as an error. Within a window the
// watchpoints are re-aimed between phases with PERF_EVENT_IOC_MODIFY_ATTRIBUTES
// (the kernel accepts a change of bp_addr/bp_len/bp_type and nothing else: the
// attr passed must equal the one the event was opened with in every other
// field). At the end of the window every event is closed: a disabled
// breakpoint still reserves its slot, and a debugger attaching between two
// windows must find the registers free. Threads created during a window are
// covered by cover_new_threads() (a rescan of /proc/PID/task).
#pragma once

#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "agent/collectors/cacheline_model.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"

namespace syncscope::collectors {

struct WatchTarget {
  uint64_t addr = 0;  // run-time address in the target, aligned to len
  uint8_t len = 8;    // 1, 2, 4 or 8
  WatchType type = WatchType::write;
};

// The threads of a process, from /proc/PID/task (behind a function so tests
// can add threads of their own).
std::vector<pid_t> list_threads(pid_t pid);

// Up to four breakpoints on one thread, all re-aimed together.
class ThreadWatch {
 public:
  // Opens (disabled) and attaches `program`. ENOSPC from any slot closes
  // the ones already opened and returns the error (errno ENOSPC).
  static Result<std::unique_ptr<ThreadWatch>> open(bpf_program* program, pid_t tid,
                                                   std::span<const WatchTarget> targets);
  ~ThreadWatch();
  ThreadWatch(const ThreadWatch&) = delete;
  ThreadWatch& operator=(const ThreadWatch&) = delete;

  pid_t tid() const { return tid_; }
  size_t size() const { return slots_.size(); }
  Result<void> enable();
  void disable();
  // New addresses (same number of targets), enabled on return.
  Result<void> reaim(std::span<const WatchTarget> targets);

 private:
  ThreadWatch() = default;
  struct Slot {
    perf_event_attr attr{};  // as opened: MODIFY_ATTRIBUTES compares against it
    int fd = -1;             // owned by `link` (bpf_link__destroy closes it)
    loader::Link link;
  };
  pid_t tid_ = 0;
  std::vector<Slot> slots_;
};

// One window on one process: the same targets on every thread.
class WatchSession {
 public:
  struct Stats {
    size_t threads_armed = 0;   // threads that got every watchpoint of the phase
    size_t threads_busy = 0;    // ENOSPC: a debugger (or another tool) holds the registers
    size_t threads_gone = 0;    // exited before they could be armed
    size_t threads_failed = 0;  // any other error
    size_t threads_capped = 0;  // beyond kMaxThreads: not watched in this window
    std::string last_error;
  };
  using ThreadLister = std::function<std::vector<pid_t>(pid_t)>;
  // Each watched thread costs up to eight fds (four perf events, four
  // links); a process with more threads is watched on its first kMaxThreads.
  static constexpr size_t kMaxThreads = 1024;

  // Arms every thread of `pid` (disabled until start()).
  static Result<std::unique_ptr<WatchSession>> open(bpf_program* program, pid_t pid,
                                                    std::span<const WatchTarget> targets,
                                                    ThreadLister lister = list_threads);
  ~WatchSession();

  // Enables every watchpoint.
  void start();
  // Arms threads that appeared since the last scan, enabled at once.
  void cover_new_threads();
  // Disables everything, runs `between` (the generation bump: hits after it
  // belong to the new phase), then re-aims and re-enables every thread. A
  // thread that refuses is dropped from the session.
  void reaim(std::span<const WatchTarget> targets, const std::function<void()>& between);
  void disable_all();

  pid_t pid() const { return pid_; }
  size_t armed_threads() const { return threads_.size(); }
  const Stats& stats() const { return stats_; }
  // Breakpoint perf events currently open (tests check none outlive a window).
  size_t open_events() const;

 private:
  WatchSession() = default;
  void arm(pid_t tid, bool enable_now);

  bpf_program* program_ = nullptr;
  pid_t pid_ = 0;
  ThreadLister lister_;
  std::vector<WatchTarget> targets_;
  std::vector<std::unique_ptr<ThreadWatch>> threads_;
  std::set<pid_t> seen_;  // armed, busy, gone or failed: not retried within the window
  Stats stats_;
};

}  // namespace syncscope::collectors
