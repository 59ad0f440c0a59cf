// The goroutines collector: live goroutines of every Go process among the
// `golang.targets`, by state and by creation site, read from outside.
//
// Every golang.scan_interval, refresh() lists /proc, recognises Go
// executables by /proc/PID/exe (each executable is opened once, cached by
// device and inode and shared by build ID), and reads each Go process's
// runtime.allgs with process_vm_readv (probes/go/runtime_reader.h). Nothing
// is attached to the target: no BPF program, no uprobe, no ptrace stop.
//
// Counting, as the Go runtime does:
//   live      user goroutines, the number runtime.NumGoroutine() returns:
//             gs that are not dead or idle, minus the runtime's own
//             (start function in package runtime other than runtime.main)
//   created   the highest goroutine id handed out. Ids are allocated in
//             order, in per-P batches of 16, so this runs ahead of the true
//             count by less than 16 x GOMAXPROCS ids reserved but not used
//             yet; it counts the runtime's own goroutines too. Never
//             decreases for a process.
//   by creator  live user goroutines grouped by the function holding their
//             gopc (the `go` statement), top golang.top_k per process plus
//             "other".
// Labels stay bounded: the first max_cgroups Go processes keep their own
// process label ("comm[pid]") for life, later ones are summed under
// process="other" (whose created counter also keeps what exited "other"
// processes had created, so it never decreases). A process that exits
// between listing and reading is dropped quietly.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/collectors/collector.h"
#include "agent/collectors/locks_targets.h"
#include "agent/config/config.h"
#include "agent/loader/probe_report.h"
#include "probes/go/runtime_reader.h"

namespace syncscope::collectors {

struct GoroutinesOptions {
  std::vector<config::TargetSelector> targets;  // empty: every Go process
  uint32_t top_k = 20;                          // creation sites per process
  std::chrono::nanoseconds scan_interval = std::chrono::seconds(5);
  uint32_t max_processes = 200;                 // own process labels; the rest is "other"
};

// One process read once (or `scans` times, for a mean scan time): what
// `syncscope trace goroutines` prints.
struct GoProcessReport {
  std::string exe;
  std::string go_version;
  std::string allgs_origin;
  probes::go::GoroutineSummary summary;
  uint64_t allglen = 0;
  double scan_seconds = 0;  // mean wall time of one scan (read + summarize)
  uint32_t scans = 0;
};
// Errors name the process: "process 42 has exited", "process 42 (/bin/cat)
// is not a Go program", "… unsupported Go version …". ESRCH in sys_errno()
// when the process is gone.
Result<GoProcessReport> inspect_go_process(uint32_t pid, uint32_t scans = 1);

// Executables → their Go runtime images, opened once. Keyed by the device and
// inode of /proc/PID/exe; images of files with equal build IDs are shared.
class GoImageCache {
 public:
  // The image of pid's executable; an error (also cached) when it is not a
  // Go program or cannot be read. `exe` receives the path the process sees.
  Result<std::shared_ptr<probes::go::GoRuntimeImage>> for_pid(uint32_t pid, std::string* exe = nullptr);
  size_t size() const { return by_inode_.size(); }

 private:
  struct Entry {
    std::shared_ptr<probes::go::GoRuntimeImage> image;
    std::optional<Error> error;
  };
  std::map<std::pair<uint64_t, uint64_t>, Entry> by_inode_;
  std::unordered_map<std::string, std::weak_ptr<probes::go::GoRuntimeImage>> by_build_id_;
};

// One Go process's last scan.
struct GoProcessSample {
  ProcessIdentity identity;
  std::string process_label;  // "comm[pid]" or "other"
  probes::go::GoroutineSummary summary;
};

// The exported families for a set of samples (pure: unit-tested).
// `created` is the created counter per process label (cgroup, process).
void goroutine_families(const std::vector<GoProcessSample>& samples,
                        const std::map<std::pair<std::string, std::string>, uint64_t>& created, size_t top_k,
                        std::vector<metrics::Family>& out);

class GoroutinesCollector final : public Collector {
 public:
  // `processes` is where /proc is read (tests pass a fake); nullptr: /proc.
  static Result<std::unique_ptr<GoroutinesCollector>> start(const GoroutinesOptions& options,
                                                            loader::ProbeReport* report,
                                                            std::unique_ptr<ProcessSource> processes = nullptr);

  std::string_view name() const override { return "goroutines"; }
  void refresh(std::chrono::steady_clock::time_point now) override;
  void collect(std::vector<metrics::Family>& out) const override;

  // Scans now, whatever the interval (tests, the first refresh).
  void scan_now();

  // Live user goroutines, summed over the Go processes of the last scan that
  // `selector` matches; nullopt when it matches none (not scanned yet, not a
  // Go process, gone). For the SLO engine's `goroutines` SLI. Thread-safe.
  std::optional<uint64_t> live_goroutines(const config::TargetSelector& selector) const;
  // Per process, from the last scan (tests, debugging). Thread-safe.
  std::vector<GoProcessSample> samples() const;

 private:
  GoroutinesCollector() = default;
  std::string label_for(const ProcessIdentity& identity);

  GoroutinesOptions options_;
  loader::ProbeReport* report_ = nullptr;
  std::unique_ptr<ProcessSource> processes_;
  std::unique_ptr<TargetSelectors> selectors_;
  GoImageCache images_;
  std::chrono::steady_clock::time_point next_scan_{};

  // Pipeline thread only.
  struct Tracked {
    const probes::go::GoRuntimeImage* image = nullptr;  // a new one means the pid was reused
    std::string label;
    int64_t max_goid = 0;
    bool validated = false;
  };
  std::unordered_map<uint32_t, Tracked> tracked_;  // by pid
  std::set<uint32_t> labelled_;                     // pids holding their own label
  uint64_t retired_other_created_ = 0;              // created by exited "other" processes

  // Published by refresh(), read by collect() and the accessors.
  mutable std::mutex mu_;
  std::vector<GoProcessSample> samples_;
  std::map<std::pair<std::string, std::string>, uint64_t> created_;
  std::map<std::string, uint64_t> scans_;  // result → count
  double scan_seconds_total_ = 0;
};

}  // namespace syncscope::collectors
