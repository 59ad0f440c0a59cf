// The pure half of the cache-line detector: what a line's watchpoint hits and
// memory samples mean, which words to watch next, when the next window may
// start, and which line goes next. No kernel, no /proc: unit tests drive all
// of it with synthetic hits and a fake clock.
//
//   LineObservation   hits per watched unit (offset, length) per thread, from
//                     write-only (W) and read-write (RW) phases
//   classify()        the verdict: false sharing when two threads touch
//                     different units of the line and one of those accesses
//                     is a write; true sharing when they write the same unit
//   plan_phases()     the next watch phases for a line: W on every word, then
//                     halves of words several threads hit (so two int fields
//                     in one 8-byte word are told apart), then RW where the
//                     line has a writer (readers of other words count too)
//   SampleAggregator  memory-access samples (PMU or stand-in) per line
//   DutyCycle         when the next window may start so that watched time /
//                     wall time stays at or under the configured fraction
//   LineQueue         which line to watch next: unfinished rounds, hinted
//                     lines, rechecks of old verdicts, then the rotation
//                     through a target's globals
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/collectors/cacheline_candidates.h"
#include "agent/core/clock.h"
#include "agent/core/duration.h"

namespace syncscope::collectors {

inline constexpr uint64_t kLineBytes = 64;
inline constexpr size_t kWatchpointsPerThread = 4;  // x86 DR0-3
constexpr uint64_t line_of(uint64_t addr) { return addr & ~(kLineBytes - 1); }

enum class Verdict : uint8_t { none, true_sharing, false_sharing };
std::string_view to_string(Verdict verdict);
// "pad to 64 bytes / alignas(64)" and friends; empty for none.
std::string_view fix_for(Verdict verdict);

enum class WatchType : uint8_t { write, read_write };

// A naturally aligned piece of a line: what one watchpoint covers.
struct WatchUnit {
  uint8_t offset = 0;  // from the start of the line
  uint8_t len = 8;     // 1, 2, 4 or 8
  auto operator<=>(const WatchUnit&) const = default;
  bool overlaps(const WatchUnit& other) const {
    return offset < other.offset + other.len && other.offset < offset + len;
  }
};

struct WatchSlot {
  WatchUnit unit;
  WatchType type = WatchType::write;
  auto operator<=>(const WatchSlot&) const = default;
};

// One phase: the same slots (at most four) armed on every thread of the target.
struct WatchPhase {
  std::vector<WatchSlot> slots;
};

// What one thread did to one unit.
struct ThreadAccess {
  uint64_t writes = 0;    // hits of write-only watchpoints: certainly writes
  uint64_t accesses = 0;  // hits of read-write watchpoints (or samples of unknown kind)
  uint64_t loads = 0;     // samples that say load
  uint64_t total() const { return writes + accesses + loads; }
};

// The input of classify(): per unit, per thread.
struct UnitThreads {
  WatchUnit unit;
  std::map<uint32_t, ThreadAccess> threads;
};

struct VerdictOptions {
  // A thread counts as touching a unit with at least this many hits: one
  // stray access (initialisation, a one-off read) is not sharing.
  uint64_t min_hits = 2;
};

// Pairs of threads decide: two threads that touch different units, at least
// one of them writing its unit, and that do not share a written unit between
// them, false-share the line; two threads that write the same unit (or one
// writes what the other reads) truly share it. Any falsely sharing pair makes
// the line false sharing (padding would remove that traffic even if other
// pairs share real data); else any truly sharing pair makes it true sharing.
Verdict classify(std::span<const UnitThreads> units, const VerdictOptions& options = {});

// Everything the watchpoints saw of one line during one round.
class LineObservation {
 public:
  LineObservation();

  // A phase ran for `duration` with `slots` armed on `threads` threads.
  void add_phase(std::span<const WatchSlot> slots, Nanoseconds duration, size_t threads);
  // One watchpoint hit. `slot` is the phase's slot whose address fired.
  void add_hit(const WatchSlot& slot, uint32_t tid, uint32_t cpu, uint64_t ip);

  // The units that are not split into halves: what the verdict looks at.
  std::vector<WatchUnit> leaves() const;
  std::vector<UnitThreads> unit_threads() const;  // leaves with hits
  Verdict verdict(const VerdictOptions& options = {}) const;
  // Hits per watched second summed over leaves (a unit counts its W or its
  // RW rate, whichever is larger). Watchpoint traps slow the watched
  // threads, so this saturates near 1 / trap cost per thread.
  double accesses_per_second() const;
  uint64_t hits() const { return hits_; }
  uint64_t write_hits() const;
  bool has_writes() const { return write_hits() > 0; }
  Nanoseconds watched() const { return watched_; }
  size_t phases() const { return phases_; }
  const std::set<uint32_t>& threads() const { return threads_; }
  const std::set<uint32_t>& cpus() const { return cpus_; }
  // Instruction pointers that hit, most hits first (at most kMaxSites).
  std::vector<std::pair<uint64_t, uint64_t>> sites() const;
  static constexpr size_t kMaxSites = 16;

  // Planning state.
  struct UnitState {
    std::map<uint32_t, ThreadAccess> threads;
    Nanoseconds watched_w{0};
    Nanoseconds watched_rw{0};
    uint64_t hits_w = 0;
    uint64_t hits_rw = 0;
  };
  const std::map<WatchUnit, UnitState>& units() const { return units_; }
  bool is_split(const WatchUnit& unit) const { return split_.contains(unit); }
  bool may_split(const WatchUnit& unit) const { return unit.len > 1 && !no_split_.contains(unit); }
  void split(const WatchUnit& unit);
  void forbid_split(const WatchUnit& unit) { no_split_.insert(unit); }

 private:
  std::map<WatchUnit, UnitState> units_;
  std::set<WatchUnit> split_;
  std::set<WatchUnit> no_split_;
  std::map<uint64_t, uint64_t> sites_;
  std::set<uint32_t> threads_;
  std::set<uint32_t> cpus_;
  Nanoseconds watched_{0};
  size_t phases_ = 0;
  uint64_t hits_ = 0;
};

// The next phases for a line, at most `max_phases`; empty when the round is
// complete. Mutates `obs` only to record splits it decides on.
std::vector<WatchPhase> plan_phases(LineObservation& obs, size_t max_phases, const VerdictOptions& options = {});

// --- memory-access samples ----------------------------------------------------

enum class SampleAccess : uint8_t { unknown, load, store };

struct MemorySample {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t cpu = 0;
  uint64_t addr = 0;
  uint64_t ip = 0;
  uint64_t cgroup_id = 0;
  SampleAccess access = SampleAccess::unknown;
  bool hitm = false;
};

struct SampledOffset {
  std::map<uint32_t, ThreadAccess> threads;  // stores count as writes, unknown kinds as accesses
  uint64_t loads = 0;
  uint64_t stores = 0;
  uint64_t unknown = 0;
  uint64_t hitm = 0;
  uint64_t samples() const { return loads + stores + unknown; }
};

struct SampledLine {
  uint32_t pid = 0;
  uint64_t line = 0;
  uint64_t cgroup_id = 0;
  std::map<uint8_t, SampledOffset> offsets;  // byte offset in the line
  std::set<uint32_t> threads;
  std::set<uint32_t> cpus;
  uint64_t loads = 0;
  uint64_t stores = 0;
  uint64_t unknown = 0;
  uint64_t hitm = 0;
  std::map<uint64_t, uint64_t> sites;  // ip → samples (bounded)
  uint64_t samples() const { return loads + stores + unknown; }
  // The same verdict rule on sampled offsets (each distinct byte offset is a
  // unit: the access width is not in the sample). Samples are sparse, so one
  // sample of a thread at an offset counts by default.
  Verdict verdict(const VerdictOptions& options = {.min_hits = 1}) const;
  std::vector<UnitThreads> unit_threads() const;
};

// Per (pid, line), bounded: when full, the line with the fewest samples goes
// (and is counted in dropped()).
class SampleAggregator {
 public:
  explicit SampleAggregator(size_t max_lines = 65536) : max_lines_(max_lines) {}
  void add(const MemorySample& sample);
  // Lines by samples, most first.
  std::vector<SampledLine> top(size_t n) const;
  const SampledLine* find(uint32_t pid, uint64_t line) const;
  size_t size() const { return lines_.size(); }
  uint64_t samples() const { return samples_; }
  uint64_t dropped() const { return dropped_; }
  void clear();

 private:
  size_t max_lines_;
  std::map<std::pair<uint32_t, uint64_t>, SampledLine> lines_;
  uint64_t samples_ = 0;
  uint64_t dropped_ = 0;
};

// --- scheduling ---------------------------------------------------------------

// Duty-cycle accounting: after a window that lasted d, the next may start
// d * (1 - duty) / duty later, so watched time / wall time stays at or under
// `duty` over any stretch of whole cycles, and an idle stretch never buys a
// burst of windows later.
class DutyCycle {
 public:
  DutyCycle(Nanoseconds window, double duty, const Clock& clock);

  Nanoseconds window() const { return window_; }
  double duty() const { return duty_; }
  bool may_start(std::chrono::steady_clock::time_point now) const { return now >= next_start_; }
  std::chrono::steady_clock::time_point next_start() const { return next_start_; }
  // Record a window that ran from `start` to `end` (measured, not planned).
  void record(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point end);
  Nanoseconds watched() const { return watched_; }
  // watched / wall time since the first window started (0 before any).
  double fraction(std::chrono::steady_clock::time_point now) const;
  // watched / wall time over whole cycles (each window plus the pause it
  // buys): what the duty cycle bounds, whatever the moment of asking.
  double cycle_fraction() const;
  uint64_t windows() const { return windows_; }

 private:
  Nanoseconds window_;
  double duty_;
  const Clock& clock_;
  std::chrono::steady_clock::time_point first_start_{};
  std::chrono::steady_clock::time_point next_start_{};
  Nanoseconds watched_{0};
  uint64_t windows_ = 0;
};

struct LineKey {
  uint32_t pid = 0;
  uint64_t line = 0;
  auto operator<=>(const LineKey&) const = default;
};

// The last complete round's outcome for one line.
struct LineResult {
  Verdict verdict = Verdict::none;
  double accesses_per_second = 0;
  std::vector<UnitThreads> units;  // leaves with hits
  std::set<uint32_t> threads;
  std::set<uint32_t> cpus;
  std::vector<std::pair<uint64_t, uint64_t>> sites;
  uint64_t hits = 0;
  Nanoseconds watched{0};
  std::chrono::steady_clock::time_point at{};
};

struct LineState {
  LineKey key;
  CandidateOrigin origin = CandidateOrigin::global;  // most urgent origin seen
  double weight = 0;
  std::string label;
  std::chrono::steady_clock::time_point last_hint{};
  std::chrono::steady_clock::time_point last_watched{};
  std::optional<LineObservation> round;  // in progress
  std::optional<LineResult> result;      // last complete round
  uint64_t rounds = 0;
};

struct LinePick {
  LineKey key;
  std::vector<WatchPhase> phases;
};

class LineQueue {
 public:
  struct Options {
    size_t max_lines = 4096;
    // A line with a verdict is watched again after this long (the verdict
    // and its rate go stale as the program's behaviour changes).
    Nanoseconds recheck = std::chrono::seconds(60);
    // Lines neither hinted nor watched for this long are forgotten.
    Nanoseconds forget_after = std::chrono::minutes(10);
    size_t max_phases_per_window = 2;
    VerdictOptions verdict;
  };
  LineQueue(Options options, const Clock& clock);

  void hint(const CandidateHint& hint);
  // The rotation for `pid`: lines to visit when nothing more urgent waits,
  // hottest first. Replaces the previous rotation; the position restarts.
  void set_rotation(uint32_t pid, std::vector<uint64_t> lines);
  // With a filter, hints for `pid` outside [start, end) ranges are ignored
  // (--watch SYMBOL).
  void set_filter(uint32_t pid, std::vector<std::pair<uint64_t, uint64_t>> ranges);
  bool rotation_exhausted(uint32_t pid) const;

  // The next line to watch and its phases; nullopt when there is nothing.
  std::optional<LinePick> pick();
  // Feed a watched phase's outcome: `obs_update` is applied to the line's
  // round by the caller through round_of(); then complete() closes the round
  // when plan_phases() has nothing more.
  LineObservation* round_of(const LineKey& key);
  // Ends the round if no phase remains; returns the result when it did.
  std::optional<LineResult> finish_if_done(const LineKey& key);
  // The round could not run (process gone, no thread could be watched).
  void abandon(const LineKey& key);
  void forget_pid(uint32_t pid);
  void expire();

  const std::map<LineKey, LineState>& lines() const { return lines_; }
  size_t size() const { return lines_.size(); }

 private:
  LineState& state_for(const LineKey& key);
  bool filtered_out(uint32_t pid, uint64_t addr) const;

  struct Rotation {
    std::vector<uint64_t> lines;
    size_t next = 0;
  };
  Options options_;
  const Clock& clock_;
  std::map<LineKey, LineState> lines_;
  std::map<uint32_t, Rotation> rotations_;
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> filters_;
  uint32_t last_rotation_pid_ = 0;
};

}  // namespace syncscope::collectors
