// The run-queue collector: bpf/sched.bpf.c in the kernel, this in user space.
//
// The kernel aggregates run-queue latency histograms and context-switch counts
// per cgroup v2 id, and a run-queue length histogram per CPU. Once per second
// refresh() reads those maps, names the cgroups, and keeps the label set
// bounded: the first `max_cgroups` cgroups seen keep their own label for as
// long as they exist; later ones, and the counts of cgroups that disappeared,
// are summed under cgroup="other", so every exported counter stays monotonic.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/collectors/collector.h"
#include "agent/core/fd.h"
#include "agent/core/result.h"
#include "agent/loader/attachment.h"
#include "agent/loader/bpf_stats.h"
#include "agent/loader/features.h"
#include "agent/loader/probe_report.h"
#include "bpf/sched.h"
#include "probes/cgroup.h"

struct sched_bpf;

namespace syncscope::collectors {

struct SchedOptions {
  uint32_t runq_length_sample_hz = 99;
  uint32_t max_cgroups = 200;
  // Filters for `syncscope trace runqlat`: only the woken task's process or
  // cgroup (and its descendants) is measured.
  uint32_t filter_tgid = 0;
  std::optional<std::string> filter_cgroup;
  bool runq_length = true;
  bool force_raw_tp = false;  // tests: exercise the fallback twin
  // Histogram unit and first octave (see bpf/lib/histogram.h). The agent's
  // metrics need the defaults; the CLI uses 1000/0 (µs) or 1000000/0 (ms).
  uint64_t hist_unit_ns = 1;
  uint32_t hist_min_shift = LL_MIN_SHIFT;
};

// Bounds of a log-linear slot (bpf/lib/histogram.h) in the unit the kernel
// binned: [lower, upper). The overflow slot's upper bound is +Inf.
struct SlotBounds {
  double lower;
  double upper;
};
SlotBounds ll_slot_bounds(uint32_t slot, uint32_t min_shift);

struct RunqHistogram {
  std::array<uint64_t, LL_SLOTS> slots{};
  uint64_t sum_ns = 0;

  uint64_t count() const;
  void add(const RunqHistogram& other);
  // Seconds, cumulative buckets; only meaningful with the default unit.
  metrics::Histogram to_metric() const;
};

struct CgroupSchedStats {
  RunqHistogram runq;
  uint64_t switches_voluntary = 0;
  uint64_t switches_involuntary = 0;
  void add(const CgroupSchedStats& other);
};

struct RunqLengthHistogram {
  std::array<uint64_t, RUNQLEN_SLOTS> slots{};
  uint64_t sum = 0;
  uint64_t count() const;
};

// One exact SLO counter row: wakeups of tasks in `cgroup_id` (or below it)
// that waited, and those that waited longer than `threshold_ns`.
struct RunqSloRow {
  uint64_t cgroup_id = 0;
  uint32_t level = 0;
  uint64_t threshold_ns = 0;
};
struct RunqSloCounts {
  uint64_t total = 0;
  uint64_t over = 0;
};

class SchedCollector final : public Collector {
 public:
  static Result<std::unique_ptr<SchedCollector>> start(const SchedOptions& options, const loader::Features& features,
                                                       probes::CgroupResolver& cgroups,
                                                       loader::BpfSelfMetrics* self_metrics,
                                                       loader::ProbeReport* report);
  ~SchedCollector() override;

  std::string_view name() const override { return "sched"; }
  void refresh(std::chrono::steady_clock::time_point now) override;
  void collect(std::vector<metrics::Family>& out) const override;

  // Which tracepoint twin is attached: "tp_btf" or "raw_tp".
  std::string_view attach_mode() const { return attach_mode_; }

  // The kernel's view, by cgroup id, read now (the CLI and tests use it).
  std::map<uint64_t, CgroupSchedStats> read_cgroups() const;
  // Per CPU, read now; empty when run-queue length sampling is off.
  std::map<int, RunqLengthHistogram> read_runq_length() const;

  // Exact SLO counting in the kernel (at most SCHED_MAX_SLOS rows). Replacing
  // the rows resets their counters.
  Result<void> set_slo_rows(const std::vector<RunqSloRow>& rows);
  RunqSloCounts slo_counts(size_t row) const;

 private:
  SchedCollector() = default;
  std::string label_for(uint64_t cgroup_id, bool& gone);

  SchedOptions options_;
  probes::CgroupResolver* cgroups_ = nullptr;
  loader::BpfSelfMetrics* self_metrics_ = nullptr;
  std::unique_ptr<sched_bpf, void (*)(sched_bpf*)> skel_{nullptr, nullptr};
  std::vector<loader::Link> links_;
  std::unique_ptr<loader::PerCpuPerfEvents> runqlen_events_;
  std::string attach_mode_;

  // Label assignment, pipeline thread only.
  std::unordered_map<uint64_t, std::string> labels_;  // cgroup id → label
  std::map<std::string, size_t> own_labels_;          // label → number of ids using it
  CgroupSchedStats retired_;                          // cgroups that disappeared

  // Published by refresh(), read by collect() from HTTP threads.
  mutable std::mutex mu_;
  std::map<std::string, CgroupSchedStats> by_label_;
  std::map<int, RunqLengthHistogram> runq_length_;
  size_t cgroups_tracked_ = 0;
};

}  // namespace syncscope::collectors
