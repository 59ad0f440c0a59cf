// What `syncscope trace falseshare` prints and tests read: per line the
// symbol, the offsets touched, the threads per offset, the writes, the
// verdict and the fix — as a table or as JSON. Pure functions over plain
// structs, golden-tested.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <vector>

#include "agent/collectors/cacheline_model.h"

namespace syncscope::collectors {

struct OffsetReport {
  uint32_t offset = 0;  // from the start of the line
  uint32_t len = 8;     // bytes the watchpoint (or the sample) covered
  std::vector<uint32_t> threads;
  uint64_t writes = 0;    // write-only watchpoint hits (or store samples)
  uint64_t accesses = 0;  // read-write watchpoint hits (or load / unknown samples)
  std::string symbol;     // "g_counters+0x8", "heap", "stack"
  std::string field;      // "g_counters.hits[1]" when DWARF names the member; else empty
};

struct SiteReport {
  uint64_t ip = 0;
  uint64_t hits = 0;
  std::string where;  // "worker+0x1a (falseshare)"
};

struct LineReport {
  uint32_t pid = 0;
  std::string comm;
  std::string cgroup;
  uint64_t line = 0;
  std::string symbol;  // the objects touched: "g_counters", "g_a, g_b", "heap"
  std::string origin;  // why it was watched (CandidateOrigin)
  Verdict verdict = Verdict::none;
  double accesses_per_second = 0;
  uint64_t hits = 0;
  double watched_ms = 0;
  std::vector<OffsetReport> offsets;
  std::vector<uint32_t> threads;
  std::vector<uint32_t> cpus;
  std::vector<SiteReport> sites;
  double age_s = 0;  // since the verdict
};

struct SampledLineReport {
  uint32_t pid = 0;
  uint64_t line = 0;
  std::string symbol;
  Verdict verdict = Verdict::none;
  uint64_t samples = 0;
  uint64_t loads = 0;
  uint64_t stores = 0;
  uint64_t hitm = 0;
  std::vector<OffsetReport> offsets;
  std::vector<uint32_t> threads;
  std::vector<uint32_t> cpus;
};

struct AtomicReport {
  uint32_t pid = 0;
  uint64_t address = 0;
  std::string symbol;           // data symbol of the address
  std::string functions;        // "__atomic_load, __atomic_compare_exchange"
  uint64_t calls = 0;           // counted inside probe windows
  double calls_per_second = 0;  // while probed
  std::vector<uint32_t> threads;
};

struct FalseshareInfo {
  uint32_t pid = 0;
  double duration_s = 0;
  std::string path;  // which path found the lines: "hardware watchpoints", "PMU sampling + hardware watchpoints"
  bool pmu_available = false;
  double window_ms = 0;
  double duty_cycle = 0;
  double watched_fraction = 0;  // measured: watched time / wall time over whole cycles
  uint64_t windows = 0;
  uint64_t threads_busy = 0;  // threads skipped because their debug registers were taken
  uint64_t events_lost = 0;
  bool target_exited = false;
};

// "0x7f12a4c0" — the line address as JSON and the metric label show it.
std::string hex_address(uint64_t addr);
// Distinct object names of the touched offsets without "+0x…": "g_a, g_b".
std::string line_symbol(std::span<const OffsetReport> offsets);

nlohmann::json falseshare_json(std::span<const LineReport> lines, std::span<const SampledLineReport> sampled,
                               std::span<const AtomicReport> atomics, const FalseshareInfo& info);
std::string render_falseshare_table(std::span<const LineReport> lines, std::span<const SampledLineReport> sampled,
                                    std::span<const AtomicReport> atomics, const FalseshareInfo& info);

}  // namespace syncscope::collectors
