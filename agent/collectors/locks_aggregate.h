// User-space aggregation of classified lock waits and wakes: pure data
// structures, fed by the locks collector (or by unit tests with synthetic
// events and a fake clock).
//
//   per (cgroup, kind)  a wait histogram (log-linear, bpf/lib/histogram.h) and count
//   per (pid, lock)     count / total / max per kind, the waiter stacks, the futex
//                       words the lock's waits used (a rwlock has several)
//   per (pid, word)     the wakes that woke somebody (holder stacks and tids)
//   per SLO row         exact counts over/under a threshold and total wait, per event
//
// Bounded everywhere: stacks per lock, locks in the table, holder rows,
// cgroup labels (max_cgroups, then "other", vanished cgroups folded into
// "other" like the sched collector). Top-K per lock keeps every exported
// counter monotonic: a lock's own series counts what it waited while it was
// in the top K; everything else (including what it waited before) is summed
// in the "other" row, which therefore never goes backwards either.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/collectors/locks_model.h"
#include "agent/collectors/sched.h"
#include "agent/config/config.h"
#include "agent/core/clock.h"

namespace syncscope::collectors {

// The run-queue histogram is a generic log-linear nanosecond histogram with
// a sum; lock waits use the same buckets so dashboards line up.
using WaitHistogram = RunqHistogram;

struct WaitStats {
  uint64_t count = 0;
  uint64_t total_ns = 0;
  uint64_t max_ns = 0;
  void add(uint64_t ns);
  void merge(const WaitStats& other);
};

// An interned user stack (StackTable); 0 = no stack (not collected, lost, or
// merged because a lock had too many distinct stacks).
using StackKey = uint32_t;

struct StackStats {
  WaitStats waits;              // for holder stacks: count = wakes, total = 0
  std::vector<uint32_t> tids;  // distinct threads, at most kMaxTidsPerStack
  static constexpr size_t kMaxTidsPerStack = 8;
  void add(uint64_t ns, uint32_t tid);
};

struct LockKey {
  uint32_t pid = 0;
  uint64_t lock = 0;
  auto operator<=>(const LockKey&) const = default;
};

struct LockEntry {
  std::string comm;
  uint64_t cgroup_id = 0;
  std::array<WaitStats, kLockKinds> by_kind{};
  WaitStats contention;  // the contention kinds only: what metrics, top-K and SLOs see
  WaitStats all;         // every kind kept
  std::map<StackKey, StackStats> waiter_stacks;
  std::vector<uint64_t> futex_words;  // at most kMaxWordsPerLock
  std::chrono::steady_clock::time_point last_seen{};
  std::string symbol;  // set by the collector once, for top-K members
  std::string glibc_caller;  // the pthread function that waited, when a uprobe classified it
  // Top-K bookkeeping.
  uint64_t accounted_ns = 0;  // contention ns already given to a series
  uint64_t own_ns = 0;        // contention ns counted in this lock's own series
  bool member = false;

  static constexpr size_t kMaxWordsPerLock = 4;
  LockKind dominant_kind() const;  // the kind with the most wait time
};

struct HolderKey {
  uint32_t pid = 0;
  uint64_t futex = 0;
  auto operator<=>(const HolderKey&) const = default;
};

struct HolderEntry {
  uint64_t wakes = 0;   // releases that woke somebody
  uint64_t woken = 0;   // threads they woke
  std::optional<LockKind> kind;
  std::map<StackKey, StackStats> stacks;
  std::chrono::steady_clock::time_point last_seen{};
};

struct LockSloRow {
  config::TargetSelector target;
  uint64_t threshold_ns = 0;
};
struct LockSloCounts {
  uint64_t total = 0;    // contended waits of the target
  uint64_t over = 0;     // of which longer than the threshold (total - over are under)
  uint64_t wait_ns = 0;  // their summed wait
};

// For the cache-line detector: a lock some thread recently waited on.
struct RecentLock {
  uint64_t lock = 0;
  std::vector<uint64_t> futex_words;
  LockKind kind = LockKind::futex;
  uint64_t contentions = 0;
  uint64_t wait_ns = 0;
  std::chrono::steady_clock::time_point last_seen{};
};

// Does a process match a target selector? Behind an interface so unit tests
// need no /proc.
class ProcessMatcher {
 public:
  virtual ~ProcessMatcher() = default;
  virtual bool matches(const config::TargetSelector& selector, uint32_t pid, uint64_t cgroup_id,
                       std::string_view comm) = 0;
};

struct TopLock {
  LockKey key;
  std::string cgroup;  // label
  std::string comm;
  std::string symbol;
  uint64_t own_ns = 0;
};
struct TopLocks {
  std::vector<TopLock> rows;  // by own_ns, largest first
  uint64_t other_ns = 0;
};

class LockAggregator {
 public:
  struct Options {
    size_t max_locks = 20000;
    size_t max_holders = 20000;
    size_t max_stacks_per_lock = 16;
    uint32_t max_cgroups = 200;
    // Keep per-lock rows of processes that exited (the trace CLI reports them).
    bool keep_exited = false;
  };
  using CgroupPath = std::function<std::optional<std::string>(uint64_t)>;

  LockAggregator(Options options, CgroupPath cgroup_path, const Clock& clock = SystemClock::instance());

  // `stack` is the interned waiter (or waker) stack.
  void add_wait(const LockWait& wait, StackKey stack);
  void add_wake(const LockWake& wake, StackKey stack);
  // The process exited: unless keep_exited, its rows are dropped at the next
  // trim(), after one more top_k() has moved their wait to their series.
  void process_exited(uint32_t pid);
  // The process exec'd: SLO matches are re-evaluated at its next event.
  void process_changed(uint32_t pid);

  // Per (cgroup label, kind) histograms for syncscope_lock_wait_seconds and
  // syncscope_lock_contentions_total; labels as in the sched collector.
  std::map<std::pair<std::string, LockKind>, WaitHistogram> by_cgroup_kind();
  // Chooses the top K locks by contended wait and moves each lock's new wait
  // to its own series or to "other". Call once per refresh.
  TopLocks top_k(size_t k);
  // Drops the rows of exited processes, excess rows (lowest totals first,
  // never top-K members) and holder rows no lock refers to. Call once per
  // refresh, after top_k().
  void trim();

  // Exact SLO counting. Replacing the rows resets their counts.
  void set_slo_rows(std::vector<LockSloRow> rows, ProcessMatcher* matcher);
  LockSloCounts slo_counts(size_t row) const;

  std::vector<RecentLock> recent_contended(uint32_t pid, std::chrono::steady_clock::duration window) const;
  // The same for every process with one, by pid.
  std::map<uint32_t, std::vector<RecentLock>> recent_contended(std::chrono::steady_clock::duration window) const;

  const std::map<LockKey, LockEntry>& locks() const { return locks_; }
  LockEntry* find(const LockKey& key);
  // Wakes on any of the lock's futex words, merged.
  HolderEntry holders_of(const LockKey& key) const;
  // Every stack a row refers to, for StackTable::retain_only.
  std::unordered_set<StackKey> live_stacks() const;
  uint64_t untracked_ns() const { return untracked_.total_ns; }
  std::string cgroup_label(uint64_t cgroup_id);

 private:
  void account(LockEntry& entry);
  const std::vector<bool>& slo_matches(const LockWait& wait);
  void add_stack(std::map<StackKey, StackStats>& stacks, StackKey stack, uint64_t ns, uint32_t tid);

  Options options_;
  CgroupPath cgroup_path_;
  const Clock& clock_;

  std::map<LockKey, LockEntry> locks_;
  std::map<HolderKey, HolderEntry> holders_;
  std::map<std::pair<uint64_t, LockKind>, WaitHistogram> by_cgroup_id_;
  std::array<WaitHistogram, kLockKinds> retired_{};  // cgroups that disappeared
  WaitStats untracked_;                              // waits of locks the full table could not hold
  uint64_t other_ns_ = 0;

  // Cgroup labels: id → label, label → ids using it.
  std::unordered_map<uint64_t, std::string> labels_;
  std::map<std::string, size_t> own_labels_;

  std::vector<LockSloRow> slo_rows_;
  std::vector<LockSloCounts> slo_counts_;
  ProcessMatcher* matcher_ = nullptr;
  std::unordered_map<uint32_t, std::vector<bool>> slo_match_cache_;
  std::set<uint32_t> exited_;  // dropped at the next trim()
};

// Interned user stacks: equal stacks share one key across events, locks and
// processes, so per-lock tables hold 4-byte keys and the kernel stack map can
// be cleared without invalidating them.
class StackTable {
 public:
  explicit StackTable(size_t max_stacks = 65536) : max_stacks_(max_stacks) {}
  // 0 when `ips` is empty or the table is full.
  StackKey intern(std::span<const uint64_t> ips);
  std::span<const uint64_t> ips(StackKey key) const;
  // Frees every stack not in `live`.
  void retain_only(const std::unordered_set<StackKey>& live);
  size_t size() const { return by_ips_.size(); }
  size_t capacity() const { return max_stacks_; }

 private:
  struct Hash {
    size_t operator()(const std::vector<uint64_t>& v) const;
  };
  size_t max_stacks_;
  std::unordered_map<std::vector<uint64_t>, StackKey, Hash> by_ips_;
  std::vector<std::vector<uint64_t>> by_key_{{}};  // index 0 unused
  std::vector<StackKey> free_;
};

}  // namespace syncscope::collectors
