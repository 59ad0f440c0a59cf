// The boundary between the collectors and the SLO engine.
//
// A collector that can measure an SLI implements SliSource; the engine calls
// read() once per SLO per evaluation (once a second, on the pipeline thread)
// and turns each reading into good and bad events. What a reading means
// depends on the SLI kind:
//
//   runq_latency     EventCounters. good_total = wakeups of the target's tasks
//                    that waited in the run queue at most `threshold`,
//                    bad_total = those that waited longer. Counted exactly
//                    against the threshold in the kernel, never interpolated
//                    from histogram buckets.
//   lock_wait        EventCounters. Contended lock waits (futex, glibc, Go)
//                    of at most / longer than `threshold`.
//   lock_wait_ratio  WaitRatio: waiting time over available time since the
//                    previous read(). Each elapsed evaluation second becomes
//                    one event, bad when waiting_ns / wall_ns > max_ratio.
//   goroutines       GoroutineCount: goroutines alive now. Each elapsed
//                    second becomes one event, bad when the count is above
//                    max_goroutines, or grows faster than max_growth_per_min
//                    (measured over the last minute once 15 s of history
//                    exist).
//
// Counters are cumulative and monotonic: the engine takes the increase since
// the previous reading, uses the first reading as a baseline only, and treats
// a decrease (collector restarted, target recreated) as a reset from zero,
// the way Prometheus' increase() does. std::nullopt means "nothing measurable
// now" (target not found yet, process gone): no events this second, the
// baseline is kept.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>

#include "agent/config/config.h"

namespace syncscope::slo {

// runq_latency, lock_wait: cumulative counts since the collector started
// watching the target.
struct EventCounters {
  uint64_t good_total = 0;
  uint64_t bad_total = 0;
};

// lock_wait_ratio: both over the interval since the previous read() of the
// same SLO. waiting_ns is summed over the target's threads; wall_ns is the
// time they could have waited in: elapsed wall time × threads alive, so the
// ratio is the mean fraction of its time a thread spent waiting, in [0, 1].
// wall_ns == 0 means the interval was empty: no events.
struct WaitRatio {
  uint64_t waiting_ns = 0;
  uint64_t wall_ns = 0;
};

// goroutines: a gauge sampled now.
struct GoroutineCount {
  uint64_t goroutines = 0;
};

using SliReading = std::variant<EventCounters, WaitRatio, GoroutineCount>;

// Implemented by the collectors. read() is called on the pipeline thread, once
// per SLO per evaluation; it must be cheap (read an aggregate, not a kernel
// map walk) because 1000 SLOs are evaluated every second.
class SliSource {
 public:
  virtual ~SliSource() = default;
  virtual std::optional<SliReading> read(const config::SloConfig& slo) const = 0;
};

// Context captured when a circuit changes state (and at lease renewals), sent
// in the webhook body as "evidence": a JSON object such as
//   {"slowest_cgroups": [{"cgroup": "/crowded", "p99_us": 8400}],
//    "top_locks": [{"lock": "0x7f..", "symbol": "pool_mutex", "wait_ns": 123}]}
// Called on the pipeline thread, rarely (transitions only); a few ms is fine.
class EvidenceSource {
 public:
  virtual ~EvidenceSource() = default;
  virtual nlohmann::json evidence(const config::SloConfig& slo) const = 0;
};

}  // namespace syncscope::slo
