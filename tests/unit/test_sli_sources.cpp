// The collectors as SLI source, with a fake host: rows shared between SLOs,
// offsets that keep counters monotonic when rows are replaced, the kernel's
// row limit, targets that do not exist yet, the lock-wait ratio, and the
// slowest-cgroups evidence from two histogram snapshots.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "agent/slo/sli_sources.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;
using config::Sli;
using config::SloConfig;
using config::TargetSelector;

class FakeHost final : public SliHost {
 public:
  std::string runq_unavailable() const override { return sched ? "" : "sched off"; }
  std::string locks_unavailable() const override { return locks ? "" : "locks off"; }
  std::string goroutines_unavailable() const override { return goroutines ? "" : "goroutines off"; }

  Result<void> set_runq_rows(const std::vector<collectors::RunqSloRow>& rows) override {
    runq_rows = rows;
    runq_counts_.assign(rows.size(), {});
    ++runq_sets;
    return {};
  }
  collectors::RunqSloCounts runq_counts(size_t row) const override {
    return row < runq_counts_.size() ? runq_counts_[row] : collectors::RunqSloCounts{};
  }
  void set_lock_rows(const std::vector<collectors::LockSloRow>& rows) override {
    lock_rows = rows;
    lock_counts_.assign(rows.size(), {});
  }
  collectors::LockSloCounts lock_counts(size_t row) const override {
    return row < lock_counts_.size() ? lock_counts_[row] : collectors::LockSloCounts{};
  }
  std::optional<uint64_t> live_goroutines(const TargetSelector& target) const override {
    auto it = goroutine_counts.find(target.describe());
    if (it == goroutine_counts.end()) return std::nullopt;
    return it->second;
  }
  Result<CgroupRef> resolve_cgroup(const TargetSelector& target) override {
    auto it = cgroups.find(target.value);
    if (it == cgroups.end()) return fail(fmt::format("cgroup {} does not exist (yet)", target.value));
    return CgroupRef{it->second, 1, target.value};
  }
  std::optional<uint64_t> threads_of(const TargetSelector& target) override {
    auto it = threads.find(target.describe());
    if (it == threads.end()) return std::nullopt;
    return it->second;
  }

  // Wakeups counted by the kernel in the row of `cgroup_id` and `threshold`.
  void wakeups(uint64_t cgroup_id, uint64_t threshold_ns, uint64_t total, uint64_t over) {
    for (size_t i = 0; i < runq_rows.size(); ++i)
      if (runq_rows[i].cgroup_id == cgroup_id && runq_rows[i].threshold_ns == threshold_ns) {
        runq_counts_[i].total += total;
        runq_counts_[i].over += over;
      }
  }
  void lock_waits(const std::string& target, uint64_t threshold_ns, uint64_t total, uint64_t over, uint64_t wait_ns) {
    for (size_t i = 0; i < lock_rows.size(); ++i)
      if (lock_rows[i].target.describe() == target && lock_rows[i].threshold_ns == threshold_ns) {
        lock_counts_[i].total += total;
        lock_counts_[i].over += over;
        lock_counts_[i].wait_ns += wait_ns;
      }
  }

  bool sched = true;
  bool locks = true;
  bool goroutines = true;
  std::map<std::string, uint64_t> cgroups{{"/crowded", 100}, {"/other", 200}};
  std::map<std::string, uint64_t> threads;
  std::map<std::string, uint64_t> goroutine_counts;
  std::vector<collectors::RunqSloRow> runq_rows;
  std::vector<collectors::LockSloRow> lock_rows;
  int runq_sets = 0;

 private:
  std::vector<collectors::RunqSloCounts> runq_counts_;
  std::vector<collectors::LockSloCounts> lock_counts_;
};

SloConfig runq_slo(std::string name, std::string cgroup, std::chrono::nanoseconds threshold) {
  SloConfig slo;
  slo.name = std::move(name);
  slo.target = {TargetSelector::Kind::cgroup, std::move(cgroup)};
  slo.sli.kind = Sli::Kind::runq_latency;
  slo.sli.threshold = threshold;
  return slo;
}

SloConfig lock_slo(std::string name, Sli::Kind kind, TargetSelector target) {
  SloConfig slo;
  slo.name = std::move(name);
  slo.target = std::move(target);
  slo.sli.kind = kind;
  slo.sli.threshold = 1ms;
  slo.sli.max_ratio = 0.1;
  return slo;
}

EventCounters counters(const CollectorSliSource& source, const SloConfig& slo) {
  auto reading = source.read(slo);
  EXPECT_TRUE(reading.has_value()) << slo.name;
  if (!reading) return {};
  EXPECT_TRUE(std::holds_alternative<EventCounters>(*reading));
  return std::get<EventCounters>(*reading);
}

TEST(CollectorSliSource, RunqSlosWithTheSameCgroupAndThresholdShareOneKernelRow) {
  FakeHost host;
  std::vector<SloConfig> slos{runq_slo("a", "/crowded", 1ms), runq_slo("b", "/crowded", 1ms),
                              runq_slo("c", "/crowded", 5ms), runq_slo("d", "/other", 1ms)};
  CollectorSliSource source(slos, host);
  auto t = std::chrono::steady_clock::time_point(1h);
  source.collectors_changed();
  ASSERT_EQ(host.runq_rows.size(), 3u);
  EXPECT_EQ(host.runq_rows[0].cgroup_id, 100u);
  EXPECT_EQ(host.runq_rows[0].threshold_ns, 1'000'000u);
  EXPECT_EQ(host.runq_rows[1].threshold_ns, 5'000'000u);
  EXPECT_EQ(host.runq_rows[2].cgroup_id, 200u);

  host.wakeups(100, 1'000'000, 100, 7);
  host.wakeups(100, 5'000'000, 100, 2);
  source.refresh(t);
  EXPECT_EQ(counters(source, slos[0]).good_total, 93u);
  EXPECT_EQ(counters(source, slos[0]).bad_total, 7u);
  EXPECT_EQ(counters(source, slos[1]).bad_total, 7u);  // the same row
  EXPECT_EQ(counters(source, slos[2]).bad_total, 2u);
  EXPECT_EQ(counters(source, slos[3]).good_total, 0u);
}

TEST(CollectorSliSource, CountersStayMonotonicWhenRowsAreReplaced) {
  FakeHost host;
  host.cgroups.erase("/other");
  std::vector<SloConfig> slos{runq_slo("a", "/crowded", 1ms), runq_slo("late", "/other", 1ms)};
  CollectorSliSource source(slos, host);
  auto t = std::chrono::steady_clock::time_point(1h);
  source.collectors_changed();
  EXPECT_FALSE(source.read(slos[1]).has_value());  // /other does not exist yet
  source.refresh(t);
  EXPECT_EQ(source.status()["late"]["measured"], false);
  EXPECT_EQ(source.status()["late"]["problem"], "cgroup /other does not exist (yet)");

  host.wakeups(100, 1'000'000, 50, 5);
  source.refresh(t += 1s);
  EXPECT_EQ(counters(source, slos[0]).bad_total, 5u);

  // /other appears: the rows change and the kernel's counters are reset;
  // what "a" had counted is kept.
  host.wakeups(100, 1'000'000, 10, 1);  // counted after the last refresh, before the change
  host.cgroups["/other"] = 200;
  const int sets = host.runq_sets;
  source.refresh(t += 1s);
  EXPECT_EQ(host.runq_sets, sets + 1);
  EXPECT_EQ(counters(source, slos[0]).good_total, 54u);
  EXPECT_EQ(counters(source, slos[0]).bad_total, 6u);
  host.wakeups(100, 1'000'000, 4, 4);
  host.wakeups(200, 1'000'000, 3, 0);
  source.refresh(t += 1s);
  EXPECT_EQ(counters(source, slos[0]).bad_total, 10u);
  EXPECT_EQ(counters(source, slos[1]).good_total, 3u);

  // New collectors (a reload): the last snapshot is folded in, rows reinstalled.
  source.collectors_changed();
  EXPECT_EQ(counters(source, slos[0]).bad_total, 10u);
  host.wakeups(100, 1'000'000, 1, 1);
  source.refresh(t += 1s);
  EXPECT_EQ(counters(source, slos[0]).bad_total, 11u);

  // Nothing changed: no row reset.
  const int stable = host.runq_sets;
  source.refresh(t += 1s);
  EXPECT_EQ(host.runq_sets, stable);
}

TEST(CollectorSliSource, MoreRunqRowsThanTheKernelHoldsAreReportedNotMeasured) {
  FakeHost host;
  std::vector<SloConfig> slos;
  for (int i = 0; i < SCHED_MAX_SLOS + 2; ++i)
    slos.push_back(runq_slo(fmt::format("s{}", i), "/crowded", std::chrono::microseconds(100 + i)));
  CollectorSliSource source(slos, host);
  source.refresh(std::chrono::steady_clock::time_point(1h));
  EXPECT_EQ(host.runq_rows.size(), static_cast<size_t>(SCHED_MAX_SLOS));
  EXPECT_TRUE(source.read(slos[SCHED_MAX_SLOS - 1]).has_value());
  EXPECT_FALSE(source.read(slos[SCHED_MAX_SLOS]).has_value());
  EXPECT_NE(source.status()[slos[SCHED_MAX_SLOS].name]["problem"].get<std::string>().find("more than 64"),
            std::string::npos);
}

TEST(CollectorSliSource, MissingCollectorsAreProblemsNotZeros) {
  FakeHost host;
  host.sched = false;
  host.goroutines = false;
  SloConfig go;
  go.name = "go";
  go.target = {TargetSelector::Kind::pid, "7"};
  go.sli.kind = Sli::Kind::goroutines;
  go.sli.max_goroutines = 10;
  std::vector<SloConfig> slos{runq_slo("a", "/crowded", 1ms), go};
  CollectorSliSource source(slos, host);
  source.refresh(std::chrono::steady_clock::time_point(1h));
  EXPECT_FALSE(source.read(slos[0]).has_value());
  EXPECT_FALSE(source.read(slos[1]).has_value());
  EXPECT_EQ(source.status()["a"]["problem"], "sched off");
  EXPECT_TRUE(host.runq_rows.empty());

  host.goroutines = true;
  source.refresh(std::chrono::steady_clock::time_point(1h + 1s));
  EXPECT_FALSE(source.read(slos[1]).has_value());
  EXPECT_EQ(source.status()["go"]["problem"], "no Go process matching pid=7 in the last goroutine scan");
  host.goroutine_counts["pid=7"] = 42;
  source.refresh(std::chrono::steady_clock::time_point(1h + 2s));
  auto reading = source.read(slos[1]);
  ASSERT_TRUE(reading.has_value());
  EXPECT_EQ(std::get<GoroutineCount>(*reading).goroutines, 42u);
}

TEST(CollectorSliSource, LockWaitCountsAndRatio) {
  FakeHost host;
  const TargetSelector api{TargetSelector::Kind::exe, "/usr/bin/api"};
  std::vector<SloConfig> slos{lock_slo("wait", Sli::Kind::lock_wait, api),
                              lock_slo("ratio", Sli::Kind::lock_wait_ratio, api)};
  host.threads["exe=/usr/bin/api"] = 4;
  CollectorSliSource source(slos, host);
  auto t = std::chrono::steady_clock::time_point(1h);
  source.refresh(t);
  ASSERT_EQ(host.lock_rows.size(), 2u);  // (api, 1ms) and (api, 0)
  // The first ratio reading is the baseline.
  auto first = source.read(slos[1]);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(std::get<WaitRatio>(*first).wall_ns, 0u);

  host.lock_waits("exe=/usr/bin/api", 1'000'000, 10, 3, 0);
  host.lock_waits("exe=/usr/bin/api", 0, 10, 10, 400'000'000);  // 0.4 s of waiting
  source.refresh(t += 2s);
  EventCounters wait = counters(source, slos[0]);
  EXPECT_EQ(wait.good_total, 7u);
  EXPECT_EQ(wait.bad_total, 3u);
  auto ratio = source.read(slos[1]);
  ASSERT_TRUE(ratio.has_value());
  EXPECT_EQ(std::get<WaitRatio>(*ratio).waiting_ns, 400'000'000u);
  EXPECT_EQ(std::get<WaitRatio>(*ratio).wall_ns, 8'000'000'000u);  // 2 s × 4 threads
  EXPECT_EQ(source.status()["ratio"]["threads"], 4);
}

collectors::CgroupSchedStats stats_with(std::initializer_list<std::pair<uint32_t, uint64_t>> slots, uint64_t sum_ns) {
  collectors::CgroupSchedStats s;
  for (auto [slot, n] : slots) s.runq.slots[slot] = n;
  s.runq.sum_ns = sum_ns;
  return s;
}

TEST(SlowestCgroups, RanksByP99OfTheIntervalBetweenSnapshots) {
  // Slot 0 holds waits below 2^LL_MIN_SHIFT ns; higher slots are slower.
  std::map<uint64_t, collectors::CgroupSchedStats> before{{1, stats_with({{1, 1000}}, 1000 * 2000)},
                                                          {2, stats_with({{1, 100}}, 100 * 2000)}};
  std::map<uint64_t, collectors::CgroupSchedStats> after{
      // cgroup 1: fast before, 100 slow wakeups since.
      {1, stats_with({{1, 1000}, {40, 100}}, 1000 * 2000 + 100 * 5'000'000)},
      // cgroup 2: only fast ones.
      {2, stats_with({{1, 200}}, 200 * 2000)},
      // cgroup 3: too few wakeups to rank.
      {3, stats_with({{50, 5}}, 5 * 50'000'000)}};
  auto slow = slowest_cgroups(before, after, 5);
  ASSERT_EQ(slow.size(), 2u);
  EXPECT_EQ(slow[0].cgroup_id, 1u);
  EXPECT_EQ(slow[0].wakeups, 100u);
  EXPECT_DOUBLE_EQ(slow[0].mean_us, 5000.0);
  EXPECT_DOUBLE_EQ(slow[0].p99_us, collectors::ll_slot_bounds(40, LL_MIN_SHIFT).upper / 1e3);
  EXPECT_EQ(slow[1].cgroup_id, 2u);
  EXPECT_EQ(slow[1].wakeups, 100u);
  EXPECT_EQ(slowest_cgroups(before, after, 1).size(), 1u);
}

}  // namespace
}  // namespace syncscope::slo
