// Lock-wait aggregation with synthetic events and a fake clock: histograms
// per (cgroup, kind), per-lock rows, top-K with a monotonic "other", exact SLO
// counts, recently contended locks, bounded tables, interned stacks.
#include "agent/collectors/locks_aggregate.h"

#include <gtest/gtest.h>

#include <map>

namespace syncscope::collectors {
namespace {

LockWait wait_on(uint32_t pid, uint64_t lock, uint64_t ns, LockKind kind = LockKind::pthread_mutex,
                 uint64_t cgroup = 1, uint32_t tid = 0) {
  LockWait w;
  w.pid = pid;
  w.tid = tid ? tid : pid + 1;
  w.comm = "app";
  w.cgroup_id = cgroup;
  w.kind = kind;
  w.lock = lock;
  w.futex = lock;
  w.wait_ns = ns;
  return w;
}

class LocksAggregateTest : public ::testing::Test {
 protected:
  LockAggregator make(LockAggregator::Options options = {}) {
    return LockAggregator(
        options,
        [this](uint64_t id) -> std::optional<std::string> {
          auto it = paths_.find(id);
          return it == paths_.end() ? std::nullopt : std::optional(it->second);
        },
        clock_);
  }
  std::map<uint64_t, std::string> paths_{{1, "/"}, {2, "/a.service"}, {3, "/b.service"}};
  FakeClock clock_;
};

TEST_F(LocksAggregateTest, HistogramsPerCgroupAndKindCountOnlyContention) {
  LockAggregator agg = make();
  agg.add_wait(wait_on(10, 0x100, 2'000), 0);
  agg.add_wait(wait_on(10, 0x100, 3'000'000), 0);
  agg.add_wait(wait_on(11, 0x200, 5'000, LockKind::pthread_rwlock, 2), 0);
  agg.add_wait(wait_on(11, 0x300, 9'000, LockKind::cond_wait, 2), 0);  // not contention
  auto by = agg.by_cgroup_kind();
  ASSERT_EQ(by.size(), 2u);
  const WaitHistogram& mutex = by.at({"/", LockKind::pthread_mutex});
  EXPECT_EQ(mutex.count(), 2u);
  EXPECT_EQ(mutex.sum_ns, 3'002'000u);
  // 2 µs and 3 ms land in their log-linear slots.
  EXPECT_EQ(mutex.slots[ll_slot(2'000, LL_MIN_SHIFT)], 1u);
  EXPECT_EQ(mutex.slots[ll_slot(3'000'000, LL_MIN_SHIFT)], 1u);
  EXPECT_EQ(by.at({"/a.service", LockKind::pthread_rwlock}).count(), 1u);
  metrics::Histogram h = mutex.to_metric();
  EXPECT_EQ(h.count, 2u);
  EXPECT_DOUBLE_EQ(h.sum, 3.002e-3);
}

TEST_F(LocksAggregateTest, PerLockRowsKeepKindsWordsAndStacks) {
  LockAggregator::Options options;
  options.max_stacks_per_lock = 2;
  LockAggregator agg = make(options);
  LockWait reacquire = wait_on(10, 0x100, 700, LockKind::pthread_cond);
  agg.add_wait(wait_on(10, 0x100, 100), 1);
  agg.add_wait(wait_on(10, 0x100, 300), 2);
  agg.add_wait(reacquire, 3);  // a third stack: merged under 0
  LockWait other_word = wait_on(10, 0x100, 50);
  other_word.futex = 0x108;
  agg.add_wait(other_word, 1);

  const LockEntry& e = agg.locks().at({10, 0x100});
  EXPECT_EQ(e.all.count, 4u);
  EXPECT_EQ(e.contention.total_ns, 1150u);
  EXPECT_EQ(e.contention.max_ns, 700u);
  EXPECT_EQ(e.by_kind[static_cast<size_t>(LockKind::pthread_mutex)].count, 3u);
  EXPECT_EQ(e.by_kind[static_cast<size_t>(LockKind::pthread_cond)].total_ns, 700u);
  EXPECT_EQ(e.dominant_kind(), LockKind::pthread_cond);
  EXPECT_EQ(e.futex_words, (std::vector<uint64_t>{0x100, 0x108}));
  ASSERT_EQ(e.waiter_stacks.size(), 3u);  // 1, 2 and the merged 0
  EXPECT_EQ(e.waiter_stacks.at(0).waits.total_ns, 700u);
  EXPECT_EQ(e.waiter_stacks.at(1).waits.count, 2u);
}

TEST_F(LocksAggregateTest, TopKKeepsEverySeriesAndOtherMonotonic) {
  LockAggregator agg = make();
  agg.add_wait(wait_on(1, 0xa, 1000), 0);
  agg.add_wait(wait_on(1, 0xb, 500), 0);
  agg.add_wait(wait_on(1, 0xc, 100), 0);
  TopLocks top = agg.top_k(2);
  ASSERT_EQ(top.rows.size(), 2u);
  EXPECT_EQ(top.rows[0].key.lock, 0xau);
  EXPECT_EQ(top.rows[0].own_ns, 1000u);
  EXPECT_EQ(top.rows[1].key.lock, 0xbu);
  EXPECT_EQ(top.rows[1].own_ns, 500u);
  EXPECT_EQ(top.other_ns, 100u);
  EXPECT_EQ(top.rows[0].cgroup, "/");
  EXPECT_EQ(top.rows[0].comm, "app");

  // c overtakes b: c's series starts with what it waited since, b's new wait
  // goes to other, and nothing already exported goes down.
  agg.add_wait(wait_on(1, 0xc, 2000), 0);
  agg.add_wait(wait_on(1, 0xb, 10), 0);
  TopLocks next = agg.top_k(2);
  std::map<uint64_t, uint64_t> own;
  for (const TopLock& row : next.rows) own[row.key.lock] = row.own_ns;
  EXPECT_EQ(own.size(), 2u);
  EXPECT_EQ(own.at(0xa), 1000u);
  EXPECT_EQ(own.at(0xc), 2000u);
  EXPECT_EQ(next.other_ns, 110u);
  EXPECT_GE(next.other_ns, top.other_ns);
  // Every nanosecond is in exactly one series; b's own series stopped at
  // 500 when it left the top K (and is no longer exported).
  EXPECT_EQ(agg.locks().at({1, 0xb}).own_ns, 500u);
  EXPECT_EQ(own.at(0xa) + own.at(0xc) + 500u + next.other_ns, 1000u + 510u + 2100u);
  // Rows come largest first.
  EXPECT_EQ(next.rows[0].key.lock, 0xcu);
}

TEST_F(LocksAggregateTest, NonContentionWaitsNeverReachTopK) {
  LockAggregator agg = make();
  agg.add_wait(wait_on(1, 0xa, 9'000'000, LockKind::cond_wait), 0);
  agg.add_wait(wait_on(1, 0xb, 10), 0);
  TopLocks top = agg.top_k(5);
  ASSERT_EQ(top.rows.size(), 1u);
  EXPECT_EQ(top.rows[0].key.lock, 0xbu);
  EXPECT_EQ(top.other_ns, 0u);
}

TEST_F(LocksAggregateTest, ExitedProcessesGetOneLastRankingThenGo) {
  LockAggregator agg = make();
  agg.add_wait(wait_on(1, 0xa, 1000), 0);
  agg.add_wait(wait_on(2, 0xb, 300), 0);
  agg.top_k(1);  // a is the member, b's 300 go to other
  agg.add_wait(wait_on(2, 0xb, 2000), 0);
  agg.process_exited(2);
  EXPECT_TRUE(agg.locks().contains({2, 0xb}));  // until the next trim
  TopLocks top = agg.top_k(1);
  ASSERT_EQ(top.rows.size(), 1u);
  EXPECT_EQ(top.rows[0].key, (LockKey{2, 0xb}));  // the short-lived process made the top K
  EXPECT_EQ(top.rows[0].own_ns, 2000u);
  agg.trim();
  EXPECT_FALSE(agg.locks().contains({2, 0xb}));
  TopLocks after = agg.top_k(1);
  EXPECT_EQ(after.rows[0].key, (LockKey{1, 0xa}));
  EXPECT_EQ(after.other_ns, 300u);  // nothing went backwards
  EXPECT_EQ(agg.locks().at({1, 0xa}).own_ns + 2000u + after.other_ns, 3300u);

  LockAggregator::Options keep;
  keep.keep_exited = true;
  LockAggregator cli = make(keep);
  cli.add_wait(wait_on(3, 0xc, 1), 0);
  cli.process_exited(3);
  cli.trim();
  EXPECT_TRUE(cli.locks().contains({3, 0xc}));
}

TEST_F(LocksAggregateTest, CgroupLabelsAreCappedAndVanishedOnesFoldIntoOther) {
  LockAggregator::Options options;
  options.max_cgroups = 2;
  LockAggregator agg = make(options);
  agg.add_wait(wait_on(1, 0xa, 100, LockKind::pthread_mutex, 1), 0);
  agg.add_wait(wait_on(2, 0xb, 200, LockKind::pthread_mutex, 2), 0);
  agg.add_wait(wait_on(3, 0xc, 400, LockKind::pthread_mutex, 3), 0);  // over the cap
  auto by = agg.by_cgroup_kind();
  EXPECT_EQ(by.at({"/", LockKind::pthread_mutex}).sum_ns, 100u);
  EXPECT_EQ(by.at({"/a.service", LockKind::pthread_mutex}).sum_ns, 200u);
  EXPECT_EQ(by.at({"other", LockKind::pthread_mutex}).sum_ns, 400u);
  EXPECT_FALSE(by.contains({"/b.service", LockKind::pthread_mutex}));

  paths_.erase(2);  // /a.service is removed
  by = agg.by_cgroup_kind();
  EXPECT_FALSE(by.contains({"/a.service", LockKind::pthread_mutex}));
  EXPECT_EQ(by.at({"other", LockKind::pthread_mutex}).sum_ns, 600u);
  EXPECT_EQ(by.at({"other", LockKind::pthread_mutex}).count(), 2u);
  // Its label slot is free again for a new cgroup.
  paths_[4] = "/c.service";
  agg.add_wait(wait_on(4, 0xd, 800, LockKind::pthread_mutex, 4), 0);
  by = agg.by_cgroup_kind();
  EXPECT_EQ(by.at({"/c.service", LockKind::pthread_mutex}).sum_ns, 800u);
}

class FakeMatcher final : public ProcessMatcher {
 public:
  bool matches(const config::TargetSelector& selector, uint32_t pid, uint64_t, std::string_view comm) override {
    ++calls;
    if (selector.kind == config::TargetSelector::Kind::pid) return std::to_string(pid) == selector.value;
    return selector.kind == config::TargetSelector::Kind::comm && comm == selector.value;
  }
  int calls = 0;
};

TEST_F(LocksAggregateTest, SloRowsCountExactlyPerEvent) {
  LockAggregator agg = make();
  FakeMatcher matcher;
  config::TargetSelector by_pid{config::TargetSelector::Kind::pid, "7"};
  config::TargetSelector by_comm{config::TargetSelector::Kind::comm, "app"};
  agg.set_slo_rows({{by_pid, 1'000}, {by_comm, 5'000}}, &matcher);
  agg.add_wait(wait_on(7, 0xa, 1'000), 0);   // at the threshold: not over
  agg.add_wait(wait_on(7, 0xa, 1'001), 0);   // over
  agg.add_wait(wait_on(8, 0xb, 9'000), 0);   // other pid, same comm
  agg.add_wait(wait_on(7, 0xc, 50'000, LockKind::cond_wait), 0);  // not contention
  LockSloCounts by_pid_counts = agg.slo_counts(0);
  EXPECT_EQ(by_pid_counts.total, 2u);
  EXPECT_EQ(by_pid_counts.over, 1u);
  EXPECT_EQ(by_pid_counts.wait_ns, 2'001u);
  LockSloCounts by_comm_counts = agg.slo_counts(1);
  EXPECT_EQ(by_comm_counts.total, 3u);
  EXPECT_EQ(by_comm_counts.over, 1u);
  EXPECT_EQ(by_comm_counts.wait_ns, 11'001u);
  EXPECT_EQ(matcher.calls, 4);  // two pids × two rows, cached after that
  EXPECT_EQ(agg.slo_counts(9).total, 0u);

  agg.set_slo_rows({{by_pid, 0}}, &matcher);  // replacing resets
  EXPECT_EQ(agg.slo_counts(0).total, 0u);
  agg.add_wait(wait_on(7, 0xa, 1), 0);
  EXPECT_EQ(agg.slo_counts(0).over, 1u);
}

TEST_F(LocksAggregateTest, RecentlyContendedLocksPerPid) {
  LockAggregator agg = make();
  agg.add_wait(wait_on(7, 0xa, 100), 0);
  clock_.advance(std::chrono::seconds(30));
  LockWait w = wait_on(7, 0xb, 900);
  w.futex = 0xb8;
  agg.add_wait(w, 0);
  agg.add_wait(wait_on(8, 0xc, 100), 0);
  auto recent = agg.recent_contended(7, std::chrono::seconds(10));
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].lock, 0xbu);
  EXPECT_EQ(recent[0].futex_words, (std::vector<uint64_t>{0xb8}));
  EXPECT_EQ(recent[0].contentions, 1u);
  EXPECT_EQ(agg.recent_contended(7, std::chrono::minutes(1)).size(), 2u);
  EXPECT_TRUE(agg.recent_contended(9, std::chrono::minutes(1)).empty());
  auto all = agg.recent_contended(std::chrono::seconds(10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at(7).size(), 1u);
  EXPECT_EQ(all.at(8)[0].lock, 0xcu);
  // Non-contention waits are not candidates.
  agg.add_wait(wait_on(9, 0xd, 100, LockKind::cond_wait), 0);
  EXPECT_FALSE(agg.recent_contended(std::chrono::seconds(10)).contains(9));
}

TEST_F(LocksAggregateTest, HoldersJoinTheLockThroughItsFutexWords) {
  LockAggregator agg = make();
  LockWait w = wait_on(7, 0x1000, 100, LockKind::pthread_rwlock);
  w.futex = 0x100c;
  agg.add_wait(w, 0);
  LockWake wake;
  wake.pid = 7;
  wake.tid = 9;
  wake.futex = 0x100c;
  wake.woken = 2;
  agg.add_wake(wake, 5);
  agg.add_wake(wake, 5);
  wake.futex = 0x2000;  // some other word
  agg.add_wake(wake, 6);
  HolderEntry h = agg.holders_of({7, 0x1000});
  EXPECT_EQ(h.wakes, 2u);
  EXPECT_EQ(h.woken, 4u);
  ASSERT_EQ(h.stacks.size(), 1u);
  EXPECT_EQ(h.stacks.at(5).waits.count, 2u);
  EXPECT_EQ(h.stacks.at(5).tids, std::vector<uint32_t>{9});
  EXPECT_EQ(agg.live_stacks(), (std::unordered_set<StackKey>{0, 5, 6}));
}

TEST_F(LocksAggregateTest, TablesStayBounded) {
  LockAggregator::Options options;
  options.max_locks = 10;
  LockAggregator agg = make(options);
  for (uint64_t i = 1; i <= 30; ++i) agg.add_wait(wait_on(1, i, i), 0);
  EXPECT_EQ(agg.locks().size(), 20u);  // twice the cap between trims
  EXPECT_EQ(agg.untracked_ns(), 10u * 21 + 45);  // locks 21..30 only summed
  TopLocks top = agg.top_k(3);
  agg.trim();
  EXPECT_LE(agg.locks().size(), 10u);
  for (const TopLock& row : top.rows) EXPECT_TRUE(agg.locks().contains(row.key)) << row.key.lock;
  // What was dropped stays in other.
  uint64_t total = 0;
  for (uint64_t i = 1; i <= 30; ++i) total += i;
  TopLocks after = agg.top_k(3);
  uint64_t own = 0;
  for (const TopLock& row : after.rows) own += row.own_ns;
  EXPECT_EQ(own + after.other_ns, total);
}

TEST(StackTable, InternsDedupesAndRecycles) {
  StackTable table(2);
  std::vector<uint64_t> a{1, 2, 3}, b{4, 5}, c{6};
  StackKey ka = table.intern(a);
  StackKey kb = table.intern(b);
  EXPECT_NE(ka, 0u);
  EXPECT_NE(kb, 0u);
  EXPECT_NE(ka, kb);
  EXPECT_EQ(table.intern(a), ka);
  EXPECT_EQ(table.intern(c), 0u);  // full
  EXPECT_EQ(table.intern({}), 0u);
  EXPECT_EQ(std::vector<uint64_t>(table.ips(kb).begin(), table.ips(kb).end()), b);
  table.retain_only({kb});
  EXPECT_EQ(table.size(), 1u);
  EXPECT_TRUE(table.ips(ka).empty());
  StackKey kc = table.intern(c);
  EXPECT_EQ(kc, ka);  // the freed key is reused
  EXPECT_EQ(table.ips(kc).size(), 1u);
  EXPECT_TRUE(table.ips(0).empty());
}

}  // namespace
}  // namespace syncscope::collectors
