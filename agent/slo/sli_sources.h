// The collectors as the SLO engine's SliSource and EvidenceSource.
//
//   runq_latency     sched collector: one in-kernel row per distinct
//                    (cgroup, threshold) pair — exact counts, never buckets.
//                    Run queues are counted per cgroup in the kernel, so the
//                    target must be a cgroup or a unit (config validation
//                    refuses the others). At most SCHED_MAX_SLOS (64) rows;
//                    SLOs past that are reported as unmeasured.
//   lock_wait        locks collector: one row per distinct (target, threshold);
//                    every contended wait is compared with the threshold as
//                    it is aggregated.
//   lock_wait_ratio  locks collector: the summed wait of the target's threads
//                    over (elapsed time × the target's threads now).
//   goroutines       goroutines collector: live user goroutines of the
//                    target's Go processes at the last scan.
//
// Rows are re-derived every refresh (a cgroup created after the agent
// started, a unit restarted under a new cgroup id) and when collectors are
// replaced at a reload. Replacing rows resets their counters in the
// collector, so the last reading of each SLO is folded into an offset first:
// the counters the engine sees stay monotonic across those changes.
//
// Threading: everything here runs on the pipeline thread except status(),
// which the HTTP threads call (it takes the mutex).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/collectors/locks_aggregate.h"
#include "agent/collectors/sched.h"
#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/slo/sli.h"

namespace syncscope::collectors {
class LocksCollector;
class GoroutinesCollector;
}
namespace syncscope::probes {
class CgroupResolver;
}

namespace syncscope::slo {

struct CgroupRef {
  uint64_t id = 0;
  uint32_t level = 0;
  std::string path;
  friend bool operator==(const CgroupRef&, const CgroupRef&) = default;
};

// What the SLI source needs from the host: the collectors' SLO counters, the
// cgroup hierarchy and /proc. Real: CollectorSliHost; unit tests fake it.
class SliHost {
 public:
  virtual ~SliHost() = default;
  // Empty when the collector runs; otherwise why it does not ("sched
  // collector disabled in config").
  virtual std::string runq_unavailable() const = 0;
  virtual std::string locks_unavailable() const = 0;
  virtual std::string goroutines_unavailable() const = 0;

  virtual Result<void> set_runq_rows(const std::vector<collectors::RunqSloRow>& rows) = 0;
  virtual collectors::RunqSloCounts runq_counts(size_t row) const = 0;
  virtual void set_lock_rows(const std::vector<collectors::LockSloRow>& rows) = 0;
  virtual collectors::LockSloCounts lock_counts(size_t row) const = 0;
  virtual std::optional<uint64_t> live_goroutines(const config::TargetSelector& target) const = 0;

  // A cgroup or unit selector → the cgroup v2 group; an error says why not
  // (does not exist yet, not a cgroup selector).
  virtual Result<CgroupRef> resolve_cgroup(const config::TargetSelector& target) = 0;
  // Threads alive in the target now; nullopt when it matches nothing.
  virtual std::optional<uint64_t> threads_of(const config::TargetSelector& target) = 0;
};

// The real host: the pipeline's collectors (any may be null) and cgroups.
class CollectorSliHost final : public SliHost {
 public:
  explicit CollectorSliHost(probes::CgroupResolver& cgroups) : cgroups_(cgroups) {}
  // Called at start and whenever the pipeline replaces a collector.
  void connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks,
               const collectors::GoroutinesCollector* goroutines);

  std::string runq_unavailable() const override;
  std::string locks_unavailable() const override;
  std::string goroutines_unavailable() const override;
  Result<void> set_runq_rows(const std::vector<collectors::RunqSloRow>& rows) override;
  collectors::RunqSloCounts runq_counts(size_t row) const override;
  void set_lock_rows(const std::vector<collectors::LockSloRow>& rows) override;
  collectors::LockSloCounts lock_counts(size_t row) const override;
  std::optional<uint64_t> live_goroutines(const config::TargetSelector& target) const override;
  Result<CgroupRef> resolve_cgroup(const config::TargetSelector& target) override;
  std::optional<uint64_t> threads_of(const config::TargetSelector& target) override;

 private:
  probes::CgroupResolver& cgroups_;
  collectors::SchedCollector* sched_ = nullptr;
  collectors::LocksCollector* locks_ = nullptr;
  const collectors::GoroutinesCollector* goroutines_ = nullptr;
  // exe and comm targets need a /proc walk to count threads: done at most
  // every few seconds, per target.
  struct CachedThreads {
    std::optional<uint64_t> threads;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, CachedThreads> process_threads_;
};

class CollectorSliSource final : public SliSource {
 public:
  CollectorSliSource(const std::vector<config::SloConfig>& slos, SliHost& host);

  // Pipeline thread, once per evaluation, before SloEngine::evaluate():
  // re-derives the rows when targets moved, and snapshots every row's counts.
  void refresh(std::chrono::steady_clock::time_point now);
  // The host's collectors were replaced: fold the last readings into the
  // offsets and install the rows in the new collectors.
  void collectors_changed();

  std::optional<SliReading> read(const config::SloConfig& slo) const override;

  // Per SLO: {"measured": bool, "source": "sched (kernel row 3)", "problem": "…"}.
  nlohmann::json status() const;

 private:
  struct Binding {
    config::SloConfig slo;
    std::optional<size_t> runq_row;
    std::optional<size_t> lock_row;
    std::optional<CgroupRef> cgroup;  // runq_latency: the resolved target
    std::string problem;              // why there is no reading, empty when there is one
    // Counts from rows that were replaced since (monotonic across resets).
    EventCounters offset;
    uint64_t wait_offset_ns = 0;
    // The latest snapshot (refresh()).
    EventCounters current;
    uint64_t wait_total_ns = 0;
    std::optional<uint64_t> threads;        // lock_wait_ratio: the target's threads now
    std::optional<uint64_t> goroutines;     // goroutines: live in the target at the last scan
    // lock_wait_ratio: the previous read().
    std::optional<uint64_t> last_wait_ns;
    std::optional<std::chrono::steady_clock::time_point> last_read_at;
  };

  void rebuild_rows(bool force);
  void snapshot();
  void fold_into_offsets();

  SliHost& host_;
  // read() moves the lock_wait_ratio interval forward, hence mutable; it is
  // only called on the pipeline thread, like everything that writes here.
  mutable std::vector<Binding> bindings_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::vector<collectors::RunqSloRow> runq_rows_;
  std::vector<collectors::LockSloRow> lock_rows_;
  std::chrono::steady_clock::time_point now_{};
  std::string logged_problems_;  // the last set of problems logged, to log only changes

  mutable std::mutex status_mu_;  // guards status_
  nlohmann::json status_ = nlohmann::json::object();
};

// Evidence for a circuit event: the cgroups with the slowest run-queue
// latency over the last 10–20 s (a diff of the kernel's per-cgroup
// histograms) and the most contended locks (host-wide, top 5).
class CollectorEvidence final : public EvidenceSource {
 public:
  explicit CollectorEvidence(probes::CgroupResolver& cgroups) : cgroups_(cgroups) {}
  void connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks);
  // Pipeline thread, once a second: takes a histogram baseline every 10 s.
  void refresh(std::chrono::steady_clock::time_point now);
  nlohmann::json evidence(const config::SloConfig& slo) const override;

  static constexpr size_t kTopCgroups = 5;
  static constexpr size_t kTopLocks = 5;

 private:
  probes::CgroupResolver& cgroups_;
  collectors::SchedCollector* sched_ = nullptr;
  collectors::LocksCollector* locks_ = nullptr;
  std::map<uint64_t, collectors::CgroupSchedStats> older_, newer_;
  std::chrono::steady_clock::time_point next_baseline_{};
};

// The slowest cgroups between two cumulative snapshots (pure: unit-tested).
// Cgroups with fewer than `min_wakeups` wakeups in between are skipped.
struct SlowCgroup {
  uint64_t cgroup_id = 0;
  uint64_t wakeups = 0;
  double p99_us = 0;   // upper bound of the log-linear bucket holding the 99th percentile
  double mean_us = 0;
};
std::vector<SlowCgroup> slowest_cgroups(const std::map<uint64_t, collectors::CgroupSchedStats>& before,
                                        const std::map<uint64_t, collectors::CgroupSchedStats>& after, size_t top_n,
                                        uint64_t min_wakeups = 20);

}  // namespace syncscope::slo
