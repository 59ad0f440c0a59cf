#include "agent/collectors/locks_aggregate.h"

#include <algorithm>

namespace syncscope::collectors {

void WaitStats::add(uint64_t ns) {
  ++count;
  total_ns += ns;
  max_ns = std::max(max_ns, ns);
}

void WaitStats::merge(const WaitStats& other) {
  count += other.count;
  total_ns += other.total_ns;
  max_ns = std::max(max_ns, other.max_ns);
}

void StackStats::add(uint64_t ns, uint32_t tid) {
  waits.add(ns);
  if (tids.size() < kMaxTidsPerStack && std::ranges::find(tids, tid) == tids.end()) tids.push_back(tid);
}

LockKind LockEntry::dominant_kind() const {
  size_t best = static_cast<size_t>(LockKind::futex_other);
  uint64_t best_ns = 0;
  bool found = false;
  for (size_t i = 0; i < by_kind.size(); ++i) {
    if (by_kind[i].count == 0) continue;
    if (!found || by_kind[i].total_ns > best_ns) best = i, best_ns = by_kind[i].total_ns, found = true;
  }
  return static_cast<LockKind>(best);
}

LockAggregator::LockAggregator(Options options, CgroupPath cgroup_path, const Clock& clock)
    : options_(options), cgroup_path_(std::move(cgroup_path)), clock_(clock) {}

void LockAggregator::add_stack(std::map<StackKey, StackStats>& stacks, StackKey stack, uint64_t ns, uint32_t tid) {
  // Past the cap, new stacks are merged under key 0 ("other stacks").
  if (stack != 0 && !stacks.contains(stack) && stacks.size() >= options_.max_stacks_per_lock) stack = 0;
  stacks[stack].add(ns, tid);
}

void LockAggregator::add_wait(const LockWait& wait, StackKey stack) {
  const bool contention = is_contention(wait.kind);
  if (contention) {
    WaitHistogram& h = by_cgroup_id_[{wait.cgroup_id, wait.kind}];
    uint32_t slot = ll_slot(wait.wait_ns, LL_MIN_SHIFT);
    h.slots[std::min<uint32_t>(slot, LL_SLOTS - 1)]++;
    h.sum_ns += wait.wait_ns;
    if (!slo_rows_.empty()) {
      const std::vector<bool>& matched = slo_matches(wait);
      for (size_t i = 0; i < slo_rows_.size(); ++i) {
        if (!matched[i]) continue;
        ++slo_counts_[i].total;
        if (wait.wait_ns > slo_rows_[i].threshold_ns) ++slo_counts_[i].over;
        slo_counts_[i].wait_ns += wait.wait_ns;
      }
    }
  }

  LockKey key{wait.pid, wait.lock};
  auto it = locks_.find(key);
  if (it == locks_.end()) {
    // trim() brings the table back under max_locks once per refresh; between
    // refreshes it may grow to twice that, then new locks are only summed.
    if (locks_.size() >= 2 * options_.max_locks) {
      if (contention) {
        untracked_.add(wait.wait_ns);
        other_ns_ += wait.wait_ns;
      }
      return;
    }
    it = locks_.emplace(key, LockEntry{}).first;
  }
  LockEntry& entry = it->second;
  if (entry.comm != wait.comm) entry.comm = wait.comm;
  entry.cgroup_id = wait.cgroup_id;
  if (!wait.caller_function.empty() && entry.glibc_caller != wait.caller_function)
    entry.glibc_caller = wait.caller_function;
  entry.last_seen = clock_.steady_now();
  entry.by_kind[static_cast<size_t>(wait.kind)].add(wait.wait_ns);
  entry.all.add(wait.wait_ns);
  if (contention) entry.contention.add(wait.wait_ns);
  add_stack(entry.waiter_stacks, stack, wait.wait_ns, wait.tid);
  if (std::ranges::find(entry.futex_words, wait.futex) == entry.futex_words.end() &&
      entry.futex_words.size() < LockEntry::kMaxWordsPerLock)
    entry.futex_words.push_back(wait.futex);
}

void LockAggregator::add_wake(const LockWake& wake, StackKey stack) {
  HolderKey key{wake.pid, wake.futex};
  auto it = holders_.find(key);
  if (it == holders_.end()) {
    if (holders_.size() >= 2 * options_.max_holders) return;
    it = holders_.emplace(key, HolderEntry{}).first;
  }
  HolderEntry& entry = it->second;
  ++entry.wakes;
  entry.woken += wake.woken;
  if (wake.kind) entry.kind = wake.kind;
  entry.last_seen = clock_.steady_now();
  add_stack(entry.stacks, stack, 0, wake.tid);
}

void LockAggregator::account(LockEntry& entry) {
  uint64_t delta = entry.contention.total_ns - entry.accounted_ns;
  if (entry.member) entry.own_ns += delta;
  else other_ns_ += delta;
  entry.accounted_ns = entry.contention.total_ns;
}

void LockAggregator::process_exited(uint32_t pid) {
  slo_match_cache_.erase(pid);
  // Dropped at the next trim(), after one more top_k(): a short-lived
  // process's locks still get their chance at a series of their own.
  if (!options_.keep_exited) exited_.insert(pid);
}

void LockAggregator::process_changed(uint32_t pid) { slo_match_cache_.erase(pid); }

std::string LockAggregator::cgroup_label(uint64_t cgroup_id) {
  auto it = labels_.find(cgroup_id);
  if (it != labels_.end()) return it->second;
  std::optional<std::string> path = cgroup_path_ ? cgroup_path_(cgroup_id) : std::nullopt;
  if (!path) return "other";
  // Sticky: a path keeps its own label once it has one; new paths get one
  // while there is room.
  std::string label = "other";
  if (own_labels_.contains(*path) || own_labels_.size() < options_.max_cgroups) {
    label = *path;
    ++own_labels_[label];
  }
  labels_[cgroup_id] = label;
  return label;
}

std::map<std::pair<std::string, LockKind>, WaitHistogram> LockAggregator::by_cgroup_kind() {
  std::map<std::pair<std::string, LockKind>, WaitHistogram> out;
  std::unordered_map<uint64_t, bool> gone;  // per id, asked once per call
  for (auto it = by_cgroup_id_.begin(); it != by_cgroup_id_.end();) {
    const auto [id, kind] = it->first;
    auto known = gone.find(id);
    if (known == gone.end()) known = gone.emplace(id, !cgroup_path_ || !cgroup_path_(id)).first;
    if (known->second) {
      // The cgroup is gone: fold it into "other" so counters stay monotonic;
      // a late event for it starts a fresh row that is folded the same way.
      retired_[static_cast<size_t>(kind)].add(it->second);
      it = by_cgroup_id_.erase(it);
      continue;
    }
    out[{cgroup_label(id), kind}].add(it->second);
    ++it;
  }
  for (const auto& [id, is_gone] : gone) {
    if (!is_gone) continue;
    auto label = labels_.find(id);
    if (label == labels_.end()) continue;
    if (auto own = own_labels_.find(label->second); own != own_labels_.end() && --own->second == 0) own_labels_.erase(own);
    labels_.erase(label);
  }
  for (size_t kind = 0; kind < retired_.size(); ++kind)
    if (retired_[kind].count() > 0) out[{"other", static_cast<LockKind>(kind)}].add(retired_[kind]);
  return out;
}

TopLocks LockAggregator::top_k(size_t k) {
  std::vector<std::pair<const LockKey*, LockEntry*>> ranked;
  for (auto& [key, entry] : locks_) {
    entry.member = false;
    if (entry.contention.total_ns > 0) ranked.emplace_back(&key, &entry);
  }
  size_t members = std::min(k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(members), ranked.end(),
                    [](const auto& a, const auto& b) {
                      if (a.second->contention.total_ns != b.second->contention.total_ns)
                        return a.second->contention.total_ns > b.second->contention.total_ns;
                      return *a.first < *b.first;
                    });
  for (size_t i = 0; i < members; ++i) ranked[i].second->member = true;
  for (auto& [key, entry] : locks_) account(entry);

  TopLocks out;
  for (size_t i = 0; i < members; ++i) {
    const LockEntry& entry = *ranked[i].second;
    out.rows.push_back({*ranked[i].first, cgroup_label(entry.cgroup_id), entry.comm, entry.symbol, entry.own_ns});
  }
  std::ranges::stable_sort(out.rows, [](const TopLock& a, const TopLock& b) { return a.own_ns > b.own_ns; });
  out.other_ns = other_ns_;
  return out;
}

void LockAggregator::trim() {
  for (uint32_t pid : exited_) {
    auto first = locks_.lower_bound({pid, 0});
    auto last = first;
    for (; last != locks_.end() && last->first.pid == pid; ++last) account(last->second);
    locks_.erase(first, last);
    holders_.erase(holders_.lower_bound({pid, 0}), holders_.lower_bound({pid + 1, 0}));
  }
  exited_.clear();
  if (locks_.size() > options_.max_locks) {
    std::vector<std::map<LockKey, LockEntry>::iterator> candidates;
    for (auto it = locks_.begin(); it != locks_.end(); ++it)
      if (!it->second.member) candidates.push_back(it);
    std::ranges::sort(candidates, [](const auto& a, const auto& b) {
      if (a->second.contention.total_ns != b->second.contention.total_ns)
        return a->second.contention.total_ns < b->second.contention.total_ns;
      return a->second.last_seen < b->second.last_seen;
    });
    size_t target = options_.max_locks - options_.max_locks / 10;
    for (auto it : candidates) {
      if (locks_.size() <= target) break;
      account(it->second);
      locks_.erase(it);
    }
  }
  // Holder rows that no lock refers to: dropped once stale, or at once when
  // the table is over its cap.
  std::set<HolderKey> referenced;
  for (const auto& [key, entry] : locks_) {
    referenced.insert({key.pid, key.lock});
    for (uint64_t word : entry.futex_words) referenced.insert({key.pid, word});
  }
  auto stale_before = clock_.steady_now() - std::chrono::seconds(60);
  bool over = holders_.size() > options_.max_holders;
  for (auto it = holders_.begin(); it != holders_.end();) {
    if (!referenced.contains(it->first) && (over || it->second.last_seen < stale_before)) it = holders_.erase(it);
    else ++it;
  }
}

void LockAggregator::set_slo_rows(std::vector<LockSloRow> rows, ProcessMatcher* matcher) {
  slo_rows_ = std::move(rows);
  slo_counts_.assign(slo_rows_.size(), LockSloCounts{});
  matcher_ = matcher;
  slo_match_cache_.clear();
}

LockSloCounts LockAggregator::slo_counts(size_t row) const {
  return row < slo_counts_.size() ? slo_counts_[row] : LockSloCounts{};
}

const std::vector<bool>& LockAggregator::slo_matches(const LockWait& wait) {
  auto it = slo_match_cache_.find(wait.pid);
  if (it != slo_match_cache_.end()) return it->second;
  std::vector<bool> matched(slo_rows_.size(), false);
  if (matcher_)
    for (size_t i = 0; i < slo_rows_.size(); ++i)
      matched[i] = matcher_->matches(slo_rows_[i].target, wait.pid, wait.cgroup_id, wait.comm);
  return slo_match_cache_.emplace(wait.pid, std::move(matched)).first->second;
}

std::vector<RecentLock> LockAggregator::recent_contended(uint32_t pid,
                                                         std::chrono::steady_clock::duration window) const {
  std::vector<RecentLock> out;
  auto since = clock_.steady_now() - window;
  for (auto it = locks_.lower_bound({pid, 0}); it != locks_.end() && it->first.pid == pid; ++it) {
    const LockEntry& entry = it->second;
    if (entry.contention.count == 0 || entry.last_seen < since) continue;
    out.push_back({it->first.lock, entry.futex_words, entry.dominant_kind(), entry.contention.count,
                   entry.contention.total_ns, entry.last_seen});
  }
  std::ranges::sort(out, [](const RecentLock& a, const RecentLock& b) { return a.wait_ns > b.wait_ns; });
  return out;
}

std::map<uint32_t, std::vector<RecentLock>> LockAggregator::recent_contended(
    std::chrono::steady_clock::duration window) const {
  std::map<uint32_t, std::vector<RecentLock>> out;
  auto since = clock_.steady_now() - window;
  for (const auto& [key, entry] : locks_) {
    if (entry.contention.count == 0 || entry.last_seen < since) continue;
    out[key.pid].push_back({key.lock, entry.futex_words, entry.dominant_kind(), entry.contention.count,
                            entry.contention.total_ns, entry.last_seen});
  }
  for (auto& [pid, locks] : out)
    std::ranges::sort(locks, [](const RecentLock& a, const RecentLock& b) { return a.wait_ns > b.wait_ns; });
  return out;
}

LockEntry* LockAggregator::find(const LockKey& key) {
  auto it = locks_.find(key);
  return it == locks_.end() ? nullptr : &it->second;
}

HolderEntry LockAggregator::holders_of(const LockKey& key) const {
  HolderEntry out;
  auto lock = locks_.find(key);
  std::vector<uint64_t> words{key.lock};
  if (lock != locks_.end())
    for (uint64_t w : lock->second.futex_words)
      if (std::ranges::find(words, w) == words.end()) words.push_back(w);
  for (uint64_t word : words) {
    auto it = holders_.find({key.pid, word});
    if (it == holders_.end()) continue;
    const HolderEntry& h = it->second;
    out.wakes += h.wakes;
    out.woken += h.woken;
    if (h.kind) out.kind = h.kind;
    out.last_seen = std::max(out.last_seen, h.last_seen);
    for (const auto& [stack, stats] : h.stacks) {
      StackStats& merged = out.stacks[stack];
      merged.waits.merge(stats.waits);
      for (uint32_t tid : stats.tids)
        if (merged.tids.size() < StackStats::kMaxTidsPerStack && std::ranges::find(merged.tids, tid) == merged.tids.end())
          merged.tids.push_back(tid);
    }
  }
  return out;
}

std::unordered_set<StackKey> LockAggregator::live_stacks() const {
  std::unordered_set<StackKey> live;
  for (const auto& [key, entry] : locks_)
    for (const auto& [stack, stats] : entry.waiter_stacks) live.insert(stack);
  for (const auto& [key, entry] : holders_)
    for (const auto& [stack, stats] : entry.stacks) live.insert(stack);
  return live;
}

// --- StackTable ----------------------------------------------------------------

size_t StackTable::Hash::operator()(const std::vector<uint64_t>& v) const {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the addresses
  for (uint64_t ip : v) {
    h ^= ip;
    h *= 1099511628211ULL;
  }
  return static_cast<size_t>(h);
}

StackKey StackTable::intern(std::span<const uint64_t> ips) {
  if (ips.empty()) return 0;
  std::vector<uint64_t> stack(ips.begin(), ips.end());
  if (auto it = by_ips_.find(stack); it != by_ips_.end()) return it->second;
  if (by_ips_.size() >= max_stacks_) return 0;
  StackKey key;
  if (!free_.empty()) {
    key = free_.back();
    free_.pop_back();
    by_key_[key] = stack;
  } else {
    key = static_cast<StackKey>(by_key_.size());
    by_key_.push_back(stack);
  }
  by_ips_.emplace(std::move(stack), key);
  return key;
}

std::span<const uint64_t> StackTable::ips(StackKey key) const {
  if (key == 0 || key >= by_key_.size()) return {};
  return by_key_[key];
}

void StackTable::retain_only(const std::unordered_set<StackKey>& live) {
  for (auto it = by_ips_.begin(); it != by_ips_.end();) {
    if (live.contains(it->second)) {
      ++it;
      continue;
    }
    by_key_[it->second].clear();
    free_.push_back(it->second);
    it = by_ips_.erase(it);
  }
}

}  // namespace syncscope::collectors
