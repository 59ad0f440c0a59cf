// The cache-line collector: bpf/cacheline.bpf.c in the kernel, this in user
// space. It finds lines that several threads write at once and tells false
// sharing (different words on one line) from true sharing (the same word).
//
//   candidates   hints from other collectors (CandidateSource: contended
//                locks, Go mutexes), hot addresses of out-of-line atomics
//                (uprobes in bounded windows), lines the PMU sampler saw
//                several threads touch (hosts with a PMU), and — for explicit
//                targets — the writable globals of the process, hottest first
//                (cacheline_globals.h); `watch_symbols` narrows all of it
//   confirmation hardware watchpoints on the words of one line at a time, on
//                every thread of the process (cacheline_watch.h), in windows
//                of `window` under `duty_cycle` (cacheline_model.h DutyCycle)
//   verdict      per line (cacheline_model.h classify), named through the
//                symbolizer (symbol+offset, "heap" plus the code that touched it)
//   counters     per-cgroup cache references and misses (PMU hosts)
//
// A worker thread owns the kernel side (watch windows, the sample ring
// buffer, atomic windows) so a window never stalls the pipeline loop;
// refresh() on the pipeline thread hands it hints and publishes metrics:
//   syncscope_cacheline_contention{cgroup,process,line,symbol,verdict}  gauge, top-K + other
//   syncscope_false_sharing_lines{cgroup}                               gauge
//   syncscope_atomic_ops_total{cgroup,process,address,symbol}           counter, top-K + other
//   syncscope_pmu_available                                             gauge
//   syncscope_cache_references_total{cgroup}, syncscope_cache_misses_total{cgroup}  (PMU hosts)
//   syncscope_cacheline_watch_windows_total, syncscope_cacheline_watched_seconds_total,
//   syncscope_cacheline_threads_skipped_total{reason}
// `syncscope trace falseshare` runs the same collector for one pid.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agent/collectors/cacheline_atomics.h"
#include "agent/collectors/cacheline_candidates.h"
#include "agent/collectors/cacheline_dwarf.h"
#include "agent/collectors/cacheline_globals.h"
#include "agent/collectors/cacheline_model.h"
#include "agent/collectors/cacheline_pmu.h"
#include "agent/collectors/cacheline_report.h"
#include "agent/collectors/collector.h"
#include "agent/collectors/locks_targets.h"
#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"
#include "agent/loader/bpf_stats.h"
#include "agent/loader/features.h"
#include "agent/loader/probe_report.h"
#include "probes/cgroup.h"
#include "probes/symbolizer.h"

struct cacheline_bpf;
struct ring_buffer;
struct cacheline_event;

namespace syncscope::collectors {

class WatchSession;

struct CachelinesOptions {
  std::vector<config::TargetSelector> targets;  // the agent: cachelines.targets (empty: hinted lines of any process)
  std::optional<uint32_t> pid;                  // the CLI: this process only
  config::CachelinesConfig::Pmu pmu = config::CachelinesConfig::Pmu::auto_detect;
  Nanoseconds window = std::chrono::milliseconds(20);
  double duty_cycle = 0.02;
  std::vector<std::string> watch_symbols;
  std::vector<config::AtomicFunction> atomics;
  uint32_t top_k = 20;
  uint32_t max_cgroups = 200;
  // Rotate through the targets' globals when no hint is pending (explicit
  // targets only: watching every process's globals is not a default).
  bool globals = true;
  // Confirm candidates with hardware watchpoints (tests of the other paths
  // turn it off).
  bool watchpoints = true;
  // Count out-of-line atomic calls in windows (libatomic, Go, user-named).
  bool atomic_windows = true;
  Nanoseconds atomics_every = std::chrono::seconds(10);
  // A verdict is re-checked after this long.
  Nanoseconds recheck = std::chrono::seconds(60);
  Nanoseconds globals_rescan = std::chrono::seconds(30);
  VerdictOptions verdict;
  HeatOptions heat;
  // Memory sampling: the PMU plan, unless a stand-in event is given (tests,
  // and hosts without a PMU where someone wants page-fault addresses).
  std::optional<PerfEventChoice> sampling_event;
  // Cache counters: hardware events, unless stand-ins are given (tests).
  std::optional<PerfEventChoice> cache_references_event;
  std::optional<PerfEventChoice> cache_misses_event;
  // Promote a sampled line to a watch candidate once it has this many
  // samples from at least two threads.
  uint64_t sampled_line_min_samples = 8;
  uint32_t ringbuf_bytes = 2 << 20;
};

struct CachelinesStatus {
  std::string path;  // the active path, in words
  bool pmu = false;
  bool memory_sampling = false;
  bool watchpoints = false;
  uint64_t windows = 0;
  uint64_t atomic_windows = 0;
  double watched_seconds = 0;
  double watched_fraction = 0;  // over whole cycles
  uint64_t threads_armed = 0;
  uint64_t threads_busy = 0;
  uint64_t threads_gone = 0;
  uint64_t threads_failed = 0;
  uint64_t threads_capped = 0;
  uint64_t lines_confirmed = 0;
  uint64_t samples = 0;
  uint64_t events_lost = 0;
  std::string last_error;
};

class CachelinesCollector final : public Collector {
 public:
  static Result<std::unique_ptr<CachelinesCollector>> start(const CachelinesOptions& options,
                                                            const loader::Features& features,
                                                            probes::CgroupResolver& cgroups,
                                                            loader::BpfSelfMetrics* self_metrics,
                                                            loader::ProbeReport* report);
  ~CachelinesCollector() override;

  std::string_view name() const override { return "cachelines"; }
  void refresh(std::chrono::steady_clock::time_point now) override;
  void collect(std::vector<metrics::Family>& out) const override;

  // Hint sources (not owned; remove before destroying them).
  void add_source(CandidateSource* source);
  void remove_source(CandidateSource* source);
  // A hint from anywhere (tests, the CLI).
  void hint(const CandidateHint& hint);

  // Lines with a verdict, most contended first; none-verdict lines only when asked.
  std::vector<LineReport> report(size_t top_n, bool include_unshared = false);
  std::vector<SampledLineReport> sampled_report(size_t top_n);
  std::vector<AtomicReport> atomic_report(size_t top_n);
  CachelinesStatus status() const;
  // The target of -p exited (the CLI stops).
  bool target_exited() const { return target_exited_.load(); }

 private:
  CachelinesCollector() = default;
  void run();
  void run_loop();
  void trim(std::chrono::steady_clock::time_point now);
  void forget_atomics_of(uint32_t pid);
  std::set<uint32_t> atomic_pids();  // processes with their own atomic series
  void maintain_targets(std::chrono::steady_clock::time_point now);
  void rebuild_rotation(uint32_t pid);
  void take_inbox();
  void promote_sampled_lines();
  bool run_watch_window(const LinePick& pick);
  void run_atomic_window();
  void on_event(const cacheline_event& event);
  static int on_ring_event(void* ctx, void* data, size_t size);
  void publish_line(const LineKey& key, const LineState& state);
  std::string cgroup_label(uint32_t pid);
  std::string comm_of(uint32_t pid);
  const DataFields* fields_for(uint32_t pid, const probes::Mapping& module);
  void update_probe_rows();
  void sleep_polling(std::chrono::steady_clock::duration d);

  CachelinesOptions options_;
  loader::Features features_;
  probes::CgroupResolver* cgroups_ = nullptr;
  loader::BpfSelfMetrics* self_metrics_ = nullptr;
  loader::ProbeReport* report_ = nullptr;
  std::unique_ptr<cacheline_bpf, void (*)(cacheline_bpf*)> skel_{nullptr, nullptr};
  std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> ring_{nullptr, nullptr};
  std::vector<std::unique_ptr<loader::PerCpuPerfEvents>> sampling_events_;
  std::unique_ptr<loader::PerCpuPerfEvents> references_events_;
  std::unique_ptr<loader::PerCpuPerfEvents> misses_events_;
  MemorySamplingPlan sampling_plan_;
  std::string sampling_reason_;
  std::string counters_reason_;
  std::string watch_reason_;
  std::string atomics_reason_;
  bool watchpoints_ = false;
  bool atomics_ = false;

  // --- worker thread only ----------------------------------------------------
  std::thread worker_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<LineQueue> queue_;
  std::unique_ptr<DutyCycle> duty_;
  SampleAggregator samples_;
  TargetSelectors selectors_{{}};
  ProcfsProcessSource processes_;
  ProcessVmReader memory_;
  probes::Symbolizer symbolizer_;
  std::set<uint32_t> target_pids_;
  std::map<uint32_t, std::chrono::steady_clock::time_point> rotation_built_;
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> watch_ranges_;
  std::chrono::steady_clock::time_point next_target_scan_{};
  std::chrono::steady_clock::time_point next_atomics_{};
  std::chrono::steady_clock::time_point next_promotion_{};
  std::chrono::steady_clock::time_point last_atomics_end_{};
  // The window under way: generation → the phase's slots.
  std::optional<LineKey> window_key_;
  std::map<uint32_t, std::vector<WatchSlot>> generation_slots_;
  uint32_t generation_ = 0;
  bool atomics_window_open_ = false;
  std::vector<AtomicFunction> atomic_functions_;               // indexed by the cookie's function index
  std::map<std::string, std::unique_ptr<DataFields>> fields_;  // DWARF per module file (dev:inode); null: none

  // --- shared: worker and pipeline/HTTP threads --------------------------------
  mutable std::mutex mu_;
  std::vector<CandidateSource*> sources_;
  std::vector<CandidateHint> inbox_;
  std::set<uint32_t> known_pids_;                                       // targets, for the sources
  std::map<LineKey, LineReport> results_;                               // last verdict per line
  std::map<std::pair<uint32_t, uint64_t>, AtomicReport> atomics_seen_;  // (pid, address)
  // Monotonic top-K for the atomic counter: own series once a member.
  std::map<std::pair<uint32_t, uint64_t>, double> atomic_estimates_;
  std::set<std::pair<uint32_t, uint64_t>> atomic_members_;
  double atomic_other_ = 0;
  std::map<std::pair<uint32_t, uint64_t>, std::pair<std::string, std::string>> atomic_labels_;  // cgroup, process
  std::set<std::string> line_cgroups_;  // cgroup labels given to lines and atomics (max_cgroups)
  CachelinesStatus status_;
  std::atomic<bool> target_exited_{false};
  std::vector<metrics::Family> published_;

  // Cache counters, pipeline thread.
  std::unordered_map<uint64_t, std::string> cgroup_labels_;
  std::map<std::string, size_t> own_cgroup_labels_;
  std::array<double, 2> retired_counts_{};
  std::map<std::string, std::array<double, 2>> cache_counts_;
};

// The source the pipeline wires to the locks collector: see cacheline_candidates.h.
}  // namespace syncscope::collectors
