// Per-lock reports for `syncscope trace locks`: resolved rows (symbols,
// stacks) and their pure renderings — a table like `perf lock contention`
// and a JSON object — golden-tested in tests/unit/test_locks_format.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/collectors/locks_aggregate.h"
#include "agent/collectors/locks_model.h"
#include "probes/symbolizer.h"

namespace syncscope::collectors {

struct StackReport {
  uint64_t count = 0;    // waits (waiter stacks) or wakes (holder stacks)
  uint64_t wait_ns = 0;  // waiter stacks only
  std::vector<uint32_t> tids;
  std::vector<probes::Frame> frames;
  bool truncated = false;  // probes::stack_looks_truncated: frame pointers missing
  bool missing = false;    // no stack recorded (stacks off, lost, or past the per-lock cap)
};

struct LockReport {
  uint32_t pid = 0;
  std::string comm;
  uint64_t lock = 0;
  LockKind kind = LockKind::futex;  // the kind with the most wait time
  std::vector<std::pair<LockKind, WaitStats>> kinds;  // every kind seen on this lock
  std::string data_symbol;  // "g_lock", "table+0x40", "heap", "stack"; empty when unknown
  std::string caller;       // the top user frame of the heaviest waiter stack
  std::string symbol;       // data_symbol for a global, else caller (the metric label's rule)
  WaitStats waits;          // summed over `kinds`
  std::vector<uint64_t> futex_words;
  uint64_t wakes = 0;       // releases that had to wake a waiter
  std::vector<StackReport> waiter_stacks;  // most wait first
  std::vector<StackReport> holder_stacks;  // most wakes first
};

struct TraceInfo {
  double duration_s = 0;
  std::optional<uint32_t> pid;
  bool target_exited = false;
  uint64_t events_lost = 0;
  uint64_t waits_not_slept = 0;  // futex waits that returned EAGAIN: not contention
  std::string sources;  // "futex tracepoints + glibc uprobes (…)" — what classified the waits
};

// "987 ns", "12.35 us", "1.23 ms", "2.50 s" (perf lock contention's units).
std::string format_duration(uint64_t ns);
// The first frame that is not lock machinery: frames in libc, libpthread and
// libstdc++, and wrappers that survive without inlining (pthread_*,
// std::mutex::lock, …) are skipped. "worker+0x55", or "prog+0x1234" without a
// symbol; empty when every frame is lock machinery (a stack cut short inside
// glibc, which is built without frame pointers).
std::string top_user_frame(std::span<const probes::Frame> frames);
// The caller column and the metric's symbol when the lock is not a global:
// the top user frame, else the glibc function that waited with
// " [stack truncated]", else the first frame.
std::string caller_of(std::span<const probes::Frame> frames, std::string_view glibc_caller);
// "g_lock+0x0" → "g_lock"; "heap" and "stack" are not globals (empty result).
std::string global_data_symbol(std::string_view data_symbol);

std::string render_lock_table(std::span<const LockReport> locks, bool stacks);
nlohmann::json lock_report_json(std::span<const LockReport> locks, const TraceInfo& info);

}  // namespace syncscope::collectors
