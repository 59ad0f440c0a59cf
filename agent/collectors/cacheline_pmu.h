// Which perf events sample memory accesses with data addresses on this host,
// and which count cache references and misses — or why there are none.
//
// Memory-access sampling is vendor specific. The kernel describes each PMU
// under /sys/bus/event_source/devices/NAME: `type` (the perf_event_attr.type
// to use), `events/ALIAS` ("event=0xcd,umask=0x1,ldlat=3") and `format/TERM`
// ("config:0-7", "config1:0-15"), which is how perf itself turns an alias
// into attr bits. In order of preference:
//   Intel   cpu (or cpu_core on hybrid parts): mem-loads with a load-latency
//           threshold (ldlat) plus mem-stores, precise (PEBS), with
//           PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC — data_src carries
//           load/store and HITM
//   AMD     ibs_op: every sampled micro-op with its data linear address
//           (data_src from IBS OP_DATA2 on 6.1+)
// With none of them, memory sampling is off and false sharing is found with
// hardware watchpoints alone. The page-fault software event carries an
// address too (the faulting one) and stands in for the PMU event in tests:
// the BPF program and everything after it are the same.
#pragma once

#include <linux/perf_event.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"

namespace syncscope::collectors {

struct PerfEventChoice {
  std::string name;  // "cpu/mem-loads,ldlat=30/P", "ibs_op", "page-faults"
  perf_event_attr attr{};
};

struct MemorySamplingPlan {
  std::vector<PerfEventChoice> events;  // empty: no memory sampling here
  std::string reason;                   // why none, or what was chosen
  bool available() const { return !events.empty(); }
};

struct MemorySamplingOptions {
  uint64_t period = 20011;            // samples every N events (prime: no lockstep with loops)
  uint32_t load_latency_cycles = 30;  // Intel ldlat: loads slower than an L1/L2 hit
};

// "event=0xcd,umask=0x1,ldlat=3" with the PMU's format terms → attr bits.
// `overrides` replace alias terms (ldlat=30). Unknown terms are errors.
Result<perf_event_attr> encode_pmu_event(std::string_view alias, const std::map<std::string, std::string>& formats,
                                         uint32_t pmu_type, const std::map<std::string, uint64_t>& overrides = {});

// Looks under `sysfs_root` (a directory of PMUs) for the events above.
MemorySamplingPlan choose_memory_sampling(const std::string& sysfs_root = "/sys/bus/event_source/devices",
                                          const MemorySamplingOptions& options = {});

// The stand-in: page faults of user memory, with the faulting address.
PerfEventChoice page_fault_sampling(uint64_t period = 1);

// Hardware cache counters (generic PERF_TYPE_HARDWARE events), sampled so
// each overflow adds `period` to the running task's cgroup.
PerfEventChoice cache_references_event(uint64_t period = 100003);
PerfEventChoice cache_misses_event(uint64_t period = 10007);

}  // namespace syncscope::collectors
