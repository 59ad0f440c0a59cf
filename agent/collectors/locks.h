// The lock-contention collector: bpf/futex.bpf.c and bpf/ulock.bpf.c in the
// kernel, this in user space.
//
// The futex tracepoints report every futex wait that slept and every wake
// that woke somebody, for every process or for the targets in
// `locks.targets`; glibc's contended-only functions (uprobes, one attachment
// per glibc file) classify them. This side drains the ring buffer (its fd
// is watched by the pipeline's event loop), classifies (locks_model.h),
// aggregates (locks_aggregate.h), names locks and stacks (probes/symbolizer.h),
// follows processes (exec/exit records from the kernel, locks_targets.h) and
// exports:
//   syncscope_lock_wait_seconds{cgroup,kind}            histogram
//   syncscope_lock_contentions_total{cgroup,kind}       counter
//   syncscope_lock_top_wait_seconds_total{cgroup,process,lock,symbol}  top-K + "other"
// The trace CLI runs the same collector with `pid` set and asks for report().
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "agent/collectors/collector.h"
#include "agent/collectors/go_locks.h"
#include "agent/collectors/locks_aggregate.h"
#include "agent/collectors/locks_model.h"
#include "agent/collectors/locks_report.h"
#include "agent/collectors/locks_targets.h"
#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"
#include "agent/loader/bpf_stats.h"
#include "agent/loader/features.h"
#include "agent/loader/probe_report.h"
#include "probes/cgroup.h"
#include "probes/libc.h"
#include "probes/symbolizer.h"

struct futex_bpf;
struct ulock_bpf;
struct ring_buffer;
struct bpf_object;

namespace syncscope::collectors {

struct LocksOptions {
  std::vector<config::TargetSelector> targets;  // empty (and no pid): every process
  // `trace locks -p`: this process only; the glibc uprobes are attached for
  // it alone, so no other process traps on them.
  std::optional<uint32_t> pid;
  uint32_t top_k = 50;
  bool stacks = true;
  bool glibc_uprobes = true;
  // Also trap __lll_lock_wake(_private). Off by default: the FUTEX_WAKE
  // tracepoint already gives the releasing thread, its stack and the word
  // (which is the mutex), while the trap sits on the lock hand-off path —
  // between the release and the wake of the next owner (see README).
  bool wake_uprobes = false;
  // Also trap Go's unlockSlow / rUnlockSlow for Go holder stacks. Only a
  // report (`trace locks --stacks` or `--json`) shows holder stacks, and
  // the trap sits on the hand-off path (unlockSlow wakes the next waiter),
  // so the agent, whose metrics carry no stacks, leaves it off.
  bool go_holder_stacks = false;
  uint32_t max_cgroups = 200;
  // Keep condvar/semaphore/join waits and futex_other too (trace --all, tests).
  bool keep_non_contention = false;
  // Keep the rows of processes that exit (the CLI reports them at the end).
  bool keep_exited = false;
  // Symbolize each new stack and lock at first sight, while the process
  // still exists (the CLI); the agent symbolizes only its top K, once a second.
  bool symbolize_eagerly = false;
  uint32_t ringbuf_bytes = 4 << 20;
  // Wake user space only when a quarter of the ring buffer is used (the
  // agent, which drains it every second anyway); off, records are delivered
  // at once (the CLI symbolizes them while the process still exists).
  bool lazy_wakeup = true;
  std::string debug_root = std::string(probes::kDefaultDebugRoot);
  // Go sync.Mutex / RWMutex contention in the followed Go processes
  // (go_locks.h; config golang.enabled): kinds go_mutex, go_rwmutex.
  bool golang = true;
};

// One probed glibc file.
struct ProbedLibc {
  uint16_t id = 0;
  dev_t dev = 0;
  ino_t inode = 0;
  std::string path;         // as the agent opened it (uprobes attach to this)
  std::optional<probes::LibcInfo> info;  // nullopt when resolution failed
  std::string error;
  std::vector<loader::Link> links;
  std::vector<loader::ProbeStatus> rows;
};

class LocksCollector final : public Collector, private CallerClassifier, private GoLockSink {
 public:
  static Result<std::unique_ptr<LocksCollector>> start(const LocksOptions& options, const loader::Features& features,
                                                       probes::CgroupResolver& cgroups,
                                                       loader::BpfSelfMetrics* self_metrics,
                                                       loader::ProbeReport* report);
  ~LocksCollector() override;

  std::string_view name() const override { return "locks"; }
  void refresh(std::chrono::steady_clock::time_point now) override;
  Result<void> add_to(ingest::EventLoop& loop) override;
  void collect(std::vector<metrics::Family>& out) const override;

  // Waits up to `timeout` for a wakeup (a quarter-full ring buffer, or an
  // exec/exit record), then drains the ring buffer.
  void poll(std::chrono::milliseconds timeout);
  // The heaviest `top_n` locks with resolved symbols and stacks (the CLI).
  std::vector<LockReport> report(size_t top_n);
  // One line on what classifies the waits (the CLI prints it, /debug/probes has it).
  std::string sources() const;
  uint64_t events_lost() const;
  // Futex calls the kernel side counted instead of reporting, by reason
  // (LOCK_SKIP_*: waits that returned EAGAIN and never slept, failed waits,
  // wakes that found nobody).
  std::array<uint64_t, LOCK_SKIP_MAX> futex_skipped() const;
  // The -p target has exited (the CLI stops then).
  bool target_exited() const { return target_exited_; }

  // --- for the SLO engine ---------------------------------------------------
  // Exact per-event counting of contended waits over/under each row's
  // threshold, and their total wait, for each row's target. Replacing the
  // rows resets their counts. Targets outside `locks.targets` see nothing.
  void set_slo_rows(std::vector<LockSloRow> rows);
  LockSloCounts slo_counts(size_t row) const;

  // --- for the cache-line detector ------------------------------------------
  // Locks of `pid` contended within `window` (their addresses and futex
  // words are candidate cache lines), most wait first.
  std::vector<RecentLock> recent_contended(uint32_t pid, std::chrono::steady_clock::duration window) const;
  std::map<uint32_t, std::vector<RecentLock>> recent_contended(std::chrono::steady_clock::duration window) const;

  // --- introspection (tests, /debug/probes) ---------------------------------
  // run_cnt per loaded program (0 unless bpf_stats is on).
  std::map<std::string, uint64_t> program_run_counts() const;
  // Kernel ids of the loaded programs (a test checks they are gone after
  // destruction: nothing leaked a reference).
  std::vector<uint32_t> program_ids() const;
  size_t uprobe_link_count() const;
  const std::vector<std::unique_ptr<ProbedLibc>>& libcs() const { return libcs_; }
  uint64_t records() const { return records_; }
  // The Go lock probes; nullptr when off or unavailable (go_status() says why).
  const GoLocks* golang() const { return go_.get(); }
  const std::string& go_status() const { return go_status_; }

 private:
  LocksCollector();
  CallerClass classify(uint16_t libc_id, uint64_t ret_vaddr) const override;
  static int on_record(void* ctx, void* data, size_t size);
  void handle(const lock_record& record);
  void add_go_wait(const LockWait& wait, std::span<const uint64_t> ips) override;
  void add_go_wake(const LockWake& wake, std::span<const uint64_t> ips) override;
  StackKey intern_go_stack(uint32_t pid, std::span<const uint64_t> ips);
  void start_golang();
  bpf_object* go_object() const;
  void on_exec(uint32_t pid);
  void on_exit(uint32_t pid);
  StackKey intern_stack(uint32_t pid, int32_t stack_id);
  const std::vector<probes::Frame>& frames_of(uint32_t pid, StackKey stack);
  const std::string& data_symbol_of(uint32_t pid, uint64_t lock);
  void check_libc(uint32_t pid);
  void attach_libc(const std::string& path, dev_t dev, ino_t inode);
  void follow_targets_from_proc();
  void set_target(uint32_t pid, std::optional<uint32_t> flags);
  void maintain_stacks();
  void publish_report();
  std::string resolve_top_symbol(const LockKey& key);

  LocksOptions options_;
  loader::Features features_;
  probes::CgroupResolver* cgroups_ = nullptr;
  loader::BpfSelfMetrics* self_metrics_ = nullptr;
  loader::ProbeReport* report_ = nullptr;
  std::unique_ptr<futex_bpf, void (*)(futex_bpf*)> futex_{nullptr, nullptr};
  std::unique_ptr<ulock_bpf, void (*)(ulock_bpf*)> ulock_{nullptr, nullptr};
  std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> ring_{nullptr, nullptr};
  std::vector<loader::Link> links_;
  std::vector<loader::ProbeStatus> tracepoint_rows_;
  std::string ulock_status_;  // why there are no uprobes, when there are none
  std::unique_ptr<GoLocks> go_;
  std::string go_status_;  // why there are no Go lock probes, when there are none
  ingest::EventLoop* loop_ = nullptr;

  // Pipeline thread only.
  TargetSelectors selectors_{{}};
  std::unique_ptr<ProcessSource> processes_;
  std::unique_ptr<CachedProcessMatcher> matcher_;
  std::unique_ptr<probes::LibcResolver> libc_resolver_;
  std::vector<std::unique_ptr<ProbedLibc>> libcs_;
  std::set<std::pair<dev_t, ino_t>> known_libcs_;
  std::vector<std::pair<uint32_t, std::chrono::steady_clock::time_point>> libc_checks_;  // (pid, due)
  std::chrono::steady_clock::time_point next_rescan_{};
  probes::Symbolizer symbolizer_;
  StackTable stack_table_;
  std::map<int32_t, StackKey> kernel_stacks_;  // kernel stack id → interned, until the map is cleared
  std::map<std::pair<uint32_t, StackKey>, std::vector<probes::Frame>> frames_;
  std::map<LockKey, std::string> data_symbols_;
  std::vector<uint32_t> exited_;  // processes whose names go after the next refresh
  uint64_t records_ = 0;
  uint64_t stacks_missing_ = 0;
  uint64_t kernel_stack_clears_ = 0;
  std::array<uint64_t, kLockKinds> ignored_{};  // non-contention waits not kept
  bool target_exited_ = false;

  // The aggregator and the published families: the pipeline thread writes,
  // HTTP threads (collect) and the SLO engine read.
  mutable std::mutex mu_;
  std::unique_ptr<LockAggregator> aggregator_;
  std::vector<metrics::Family> published_;
};

}  // namespace syncscope::collectors
