// The real sched programs on the real kernel: workloads with known behaviour,
// in their own cgroups, and what the kernel maps then say.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/collectors/sched.h"
#include "agent/loader/features.h"
#include "tests/support/cgroup_fixture.h"
#include "tests/support/exposition_check.h"
#include "tests/support/process.h"
#include "agent/metrics/exposition.h"
#include "tests/support/bpf_fixture.h"

namespace syncscope {
namespace {

using collectors::CgroupSchedStats;
using collectors::SchedCollector;
using collectors::SchedOptions;
using testing::Process;
using testing::TestCgroup;

class SchedTest : public testing::BpfTest {
 protected:

  std::unique_ptr<SchedCollector> start(SchedOptions options = {}) {
    cgroups_ = *probes::CgroupResolver::for_this_host();
    auto collector = SchedCollector::start(options, *features_, *cgroups_, nullptr, &report_);
    EXPECT_TRUE(collector) << collector.error().message();
    return collector ? std::move(*collector) : nullptr;
  }

  static CgroupSchedStats stats_of(const SchedCollector& collector, uint64_t cgroup_id) {
    auto all = collector.read_cgroups();
    auto it = all.find(cgroup_id);
    return it == all.end() ? CgroupSchedStats{} : it->second;
  }

  std::unique_ptr<probes::CgroupResolver> cgroups_;
  loader::ProbeReport report_;
};

// A sleeper with exactly 300 sleeps: the run-queue latency histogram of its
// cgroup counts one wait per wakeup (plus the wakeup that releases it and the
// one after its final read), and its voluntary context switches equal what
// the kernel itself counted in /proc/PID/status over the same span.
void known_wakeups(SchedCollector& collector, const char* mode) {
  constexpr int kSleeps = 300;
  TestCgroup group(fmt::format("/syncscope-test-wakeups-{}", mode));
  Process sleeper = Process::spawn({testing::build_path("workloads/sleeper"), std::to_string(kSleeps), "1000"});
  ASSERT_TRUE(sleeper.wait_for("ready"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // blocked in read()
  group.add(sleeper.pid());
  testing::ContextSwitches before = testing::context_switches(sleeper.pid());
  ASSERT_TRUE(sleeper.write("go\n"));
  ASSERT_TRUE(sleeper.wait_for("done"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // blocked in read() again
  testing::ContextSwitches after = testing::context_switches(sleeper.pid());
  CgroupSchedStats stats{};
  auto all = collector.read_cgroups();
  if (auto it = all.find(group.id()); it != all.end()) stats = it->second;

  uint64_t waits = stats.runq.count();
  // One switch-in per wakeup: the release, each sleep; involuntary
  // preemptions add a few more on a busy machine. A few fewer happen too:
  // when the sleeper is preempted between arming its timer and blocking, the
  // timer can fire while it is still on the run queue, and that wakeup does
  // not enqueue it (seen under a parallel build: 299 of 301).
  EXPECT_GE(waits, static_cast<uint64_t>(kSleeps + 1 - kSleeps / 50)) << mode;
  EXPECT_LE(waits, static_cast<uint64_t>(kSleeps + 1 + kSleeps / 20)) << mode;
  EXPECT_EQ(stats.switches_voluntary, after.voluntary - before.voluntary) << mode;
  EXPECT_EQ(stats.switches_involuntary, after.involuntary - before.involuntary) << mode;
  // Every wait the sleeper had lasted at least 0 and at most a second.
  EXPECT_GT(stats.runq.sum_ns, 0u);
  EXPECT_LT(stats.runq.sum_ns / std::max<uint64_t>(waits, 1), 1'000'000'000u);
  sleeper.close_stdin();
  EXPECT_EQ(sleeper.wait(), 0);
}

TEST_F(SchedTest, KnownNumberOfWakeupsTpBtf) {
  if (!features_->tp_btf || !features_->task_storage) GTEST_SKIP() << "tp_btf with task storage unavailable here";
  auto collector = start();
  ASSERT_TRUE(collector);
  EXPECT_EQ(collector->attach_mode(), "tp_btf");
  known_wakeups(*collector, "tp_btf");
}

// The raw_tp twin (for kernels without tp_btf) measures the same thing.
TEST_F(SchedTest, KnownNumberOfWakeupsRawTp) {
  SchedOptions options;
  options.force_raw_tp = true;
  auto collector = start(options);
  ASSERT_TRUE(collector);
  EXPECT_EQ(collector->attach_mode(), "raw_tp");
  known_wakeups(*collector, "raw_tp");
}

// Two groups: one crowded with CPU hogs (more runnable threads than CPUs) plus
// a periodic sleeper, one with only a periodic sleeper. The crowded group's
// waits are longer, under its own label — keyed by the task that waited.
TEST_F(SchedTest, CrowdedCgroupShowsHigherLatencyUnderItsOwnLabel) {
  auto collector = start();
  ASSERT_TRUE(collector);
  TestCgroup crowded("/syncscope-test-crowded");
  TestCgroup light("/syncscope-test-light");
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);

  Process hogs = Process::spawn({testing::build_path("workloads/cpu_hog"), std::to_string(cpus * 2)});
  ASSERT_TRUE(hogs.wait_for("ready"));
  crowded.add(hogs.pid());
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", hogs.pid())))
    crowded.add(std::stoi(task.path().filename()));  // threads created before the move
  Process crowded_sleeper = Process::spawn({testing::build_path("workloads/sleeper"), "200", "2000"});
  Process light_sleeper = Process::spawn({testing::build_path("workloads/sleeper"), "200", "2000"});
  ASSERT_TRUE(crowded_sleeper.wait_for("ready"));
  ASSERT_TRUE(light_sleeper.wait_for("ready"));
  crowded.add(crowded_sleeper.pid());
  light.add(light_sleeper.pid());
  crowded_sleeper.write("go\n");
  light_sleeper.write("go\n");
  ASSERT_TRUE(light_sleeper.wait_for("done", std::chrono::seconds(30)));
  ASSERT_TRUE(crowded_sleeper.wait_for("done", std::chrono::seconds(30)));
  hogs.kill_and_reap();

  collector->refresh(std::chrono::steady_clock::now());
  CgroupSchedStats crowded_stats = stats_of(*collector, crowded.id());
  CgroupSchedStats light_stats = stats_of(*collector, light.id());
  ASSERT_GT(crowded_stats.runq.count(), 200u);
  ASSERT_GE(light_stats.runq.count(), 200u);
  double crowded_mean = static_cast<double>(crowded_stats.runq.sum_ns) / static_cast<double>(crowded_stats.runq.count());
  double light_mean = static_cast<double>(light_stats.runq.sum_ns) / static_cast<double>(light_stats.runq.count());
  EXPECT_GT(crowded_mean, 3 * light_mean) << "crowded " << crowded_mean << " ns, light " << light_mean << " ns";
  EXPECT_GT(crowded_stats.switches_involuntary, light_stats.switches_involuntary);

  // And the exported series carry the groups' own paths as labels.
  std::vector<metrics::Family> families;
  collector->collect(families);
  std::string text = metrics::render_text(families);
  EXPECT_NE(text.find("syncscope_runq_latency_seconds_count{cgroup=\"/syncscope-test-crowded\"}"), std::string::npos);
  EXPECT_NE(text.find("syncscope_runq_latency_seconds_count{cgroup=\"/syncscope-test-light\"}"), std::string::npos);
  auto problems = testing::check_histograms(text);
  EXPECT_TRUE(problems.empty()) << problems.front();
}

// -p filters on the woken task's process, not the waker's.
TEST_F(SchedTest, PidFilterKeepsOnlyTheTargetProcess) {
  Process sleeper = Process::spawn({testing::build_path("workloads/sleeper"), "100", "1000"});
  Process other = Process::spawn({testing::build_path("workloads/sleeper"), "100", "1000"});
  ASSERT_TRUE(sleeper.wait_for("ready"));
  ASSERT_TRUE(other.wait_for("ready"));
  SchedOptions options;
  options.filter_tgid = static_cast<uint32_t>(sleeper.pid());
  options.runq_length = false;
  auto collector = start(options);
  ASSERT_TRUE(collector);
  sleeper.write("go\n");
  other.write("go\n");
  ASSERT_TRUE(sleeper.wait_for("done"));
  ASSERT_TRUE(other.wait_for("done"));
  uint64_t total = 0;
  for (const auto& [id, stats] : collector->read_cgroups()) total += stats.runq.count();
  EXPECT_GE(total, 101u);
  EXPECT_LE(total, 110u);  // the other sleeper's 100 wakeups are not counted
}

// Cgroups beyond the cap are summed under "other"; the capped ones keep theirs.
TEST_F(SchedTest, CgroupLabelsAreCappedWithOther) {
  SchedOptions options;
  options.max_cgroups = 1;  // "/" (this test runner) takes the only own label
  auto collector = start(options);
  ASSERT_TRUE(collector);
  TestCgroup group("/syncscope-test-capped");
  Process sleeper = Process::spawn({testing::build_path("workloads/sleeper"), "50", "1000"});
  ASSERT_TRUE(sleeper.wait_for("ready"));
  collector->refresh(std::chrono::steady_clock::now());  // "/" seen first
  group.add(sleeper.pid());
  sleeper.write("go\n");
  ASSERT_TRUE(sleeper.wait_for("done"));
  collector->refresh(std::chrono::steady_clock::now());
  std::vector<metrics::Family> families;
  collector->collect(families);
  std::string text = metrics::render_text(families);
  EXPECT_EQ(text.find("cgroup=\"/syncscope-test-capped\""), std::string::npos);
  EXPECT_NE(text.find("syncscope_runq_latency_seconds_count{cgroup=\"other\"}"), std::string::npos);
}

// Exact SLO counting: the kernel counts waits over the threshold for the
// configured cgroup and its descendants, not for others.
TEST_F(SchedTest, SloRowsCountExactlyPerCgroup) {
  auto collector = start();
  ASSERT_TRUE(collector);
  TestCgroup parent("/syncscope-test-slo");
  TestCgroup child("/syncscope-test-slo/child");
  ASSERT_TRUE(collector->set_slo_rows({{parent.id(), 1, 0}, {parent.id(), 1, 10'000'000'000ULL}}));
  constexpr int kSleeps = 100;
  Process sleeper = Process::spawn({testing::build_path("workloads/sleeper"), std::to_string(kSleeps), "1000"});
  Process outsider = Process::spawn({testing::build_path("workloads/sleeper"), std::to_string(kSleeps), "1000"});
  ASSERT_TRUE(sleeper.wait_for("ready"));
  ASSERT_TRUE(outsider.wait_for("ready"));
  child.add(sleeper.pid());
  sleeper.write("go\n");
  outsider.write("go\n");
  ASSERT_TRUE(sleeper.wait_for("done"));
  ASSERT_TRUE(outsider.wait_for("done"));
  auto all = collector->slo_counts(0);
  auto none = collector->slo_counts(1);
  // The outsider's waits are not counted: about one per sleep, give or take
  // a wakeup that finds the sleeper still queued (see known_wakeups) and the
  // release, which is not a wait when "go" arrives before read() blocks.
  EXPECT_GE(all.total, static_cast<uint64_t>(kSleeps - kSleeps / 50));
  EXPECT_LE(all.total, static_cast<uint64_t>(kSleeps + 1 + kSleeps / 10));
  EXPECT_EQ(all.over, all.total);  // threshold 0: every wait is over it
  EXPECT_EQ(none.total, all.total);
  EXPECT_EQ(none.over, 0u);  // nobody waits 10 s
  sleeper.close_stdin();
  outsider.close_stdin();
}

TEST_F(SchedTest, RunQueueLengthIsSampledPerCpu) {
  auto collector = start();
  ASSERT_TRUE(collector);
  if (report_.to_json()["sched"]["not_attached"].dump().find("sample_runq_length") != std::string::npos)
    GTEST_SKIP() << "run-queue length sampling unavailable: " << report_.to_json().dump();
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  Process hogs = Process::spawn({testing::build_path("workloads/cpu_hog"), std::to_string(cpus * 3)});
  ASSERT_TRUE(hogs.wait_for("ready"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  hogs.kill_and_reap();
  auto lengths = collector->read_runq_length();
  ASSERT_EQ(lengths.size(), static_cast<size_t>(cpus));
  uint64_t samples = 0, waiting = 0;
  for (const auto& [cpu, h] : lengths) {
    samples += h.count();
    waiting += h.sum;
  }
  // 99 Hz × 2 s × CPUs, give or take; three hogs per CPU leave ~2 waiting.
  EXPECT_GT(samples, static_cast<uint64_t>(cpus) * 100);
  EXPECT_GT(static_cast<double>(waiting) / static_cast<double>(samples), 1.0);
}

}  // namespace
}  // namespace syncscope
