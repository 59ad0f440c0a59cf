// Self-observability of the BPF side: run count and run time per loaded
// program (kernel bpf_stats) and events lost per source (the `events_lost`
// per-CPU counters that bpf/lib/events_lost.h increments where a ring-buffer
// reserve fails). Collectors register their objects after loading them and
// unregister before destroying them.
#pragma once

#include <bpf/libbpf.h>

#include <mutex>
#include <string>
#include <vector>

#include "agent/core/fd.h"
#include "agent/metrics/metric.h"

namespace syncscope::loader {

class BpfSelfMetrics final : public metrics::MetricSource {
 public:
  // Turns on BPF_ENABLE_STATS for as long as this object lives (the kernel
  // turns it off again when the returned fd closes). Returns false if the
  // kernel refused (no CAP_SYS_ADMIN): run counters then stay 0.
  bool enable_run_time_stats();
  bool run_time_stats_enabled() const { return stats_fd_.valid(); }

  // `lost_sources[i]` names index i of the object's events_lost map, if any.
  void add_object(const bpf_object* object, std::vector<std::string> lost_sources = {});
  void remove_object(const bpf_object* object);

  // Sum over CPUs of events_lost[index] of one object (for tests and the CLI).
  static uint64_t events_lost(const bpf_object* object, uint32_t index);

  void collect(std::vector<metrics::Family>& out) const override;

 private:
  struct Registered {
    const bpf_object* object;
    std::vector<std::string> lost_sources;
  };
  mutable std::mutex mu_;
  std::vector<Registered> objects_;
  Fd stats_fd_;
};

}  // namespace syncscope::loader
