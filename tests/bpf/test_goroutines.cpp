// Goroutines of real Go processes (tests/workloads/go/goleak, built by
// Debian's golang-go, and its stripped copy) read from outside: the count
// equals the program's own runtime.NumGoroutine() at a quiet point, the leak
// is named after the function whose go statement created it, and processes
// that exit under the reader are dropped cleanly. Root: process_vm_readv of
// another user's process and /proc/PID/exe need it (no BPF is loaded).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/collectors/goroutines.h"
#include "tests/support/process.h"

namespace syncscope {
namespace {

using collectors::GoroutinesCollector;
using collectors::GoroutinesOptions;
using probes::go::GoroutineState;
using testing::Process;

constexpr uint64_t kLeaked = 300;

class GoroutinesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "reading another process's memory needs root (CAP_SYS_PTRACE)";
    path_ = testing::build_path("workloads/" + GetParam());
    if (!std::filesystem::exists(path_)) FAIL() << "missing " << path_ << ": run make workloads";
  }

  // goleak leaking kLeaked goroutines in 5 batches, then quiet; returns the
  // program's own NumGoroutine() printed after a SIGUSR1 at that quiet point.
  Process start_leak(uint64_t* own_count) {
    Process p = Process::spawn({path_, "-rate", "300", "-interval", "200ms", "-duration", "0", "-max",
                                std::to_string(kLeaked)});
    EXPECT_TRUE(p.wait_for("ready"));
    // The first report (before any leak) tells the baseline.
    auto first = p.wait_for("goroutines=");
    EXPECT_TRUE(first);
    const uint64_t base = first ? std::stoull(first->substr(11)) : 0;
    for (;;) {
      auto line = p.wait_for("goroutines=", std::chrono::seconds(20));
      if (!line) {
        ADD_FAILURE() << "goleak stopped reporting";
        break;
      }
      if (std::stoull(line->substr(11)) >= base + kLeaked) break;
    }
    // Quiet now (max reached): ask for the count once more and scan right after.
    p.signal(SIGUSR1);
    auto quiet = p.wait_for("goroutines=");
    EXPECT_TRUE(quiet);
    *own_count = quiet ? std::stoull(quiet->substr(11)) : 0;
    return p;
  }

  std::string path_;
};

TEST_P(GoroutinesTest, CountEqualsNumGoroutineAndTheLeakIsNamed) {
  uint64_t own = 0;
  Process p = start_leak(&own);
  auto report = collectors::inspect_go_process(static_cast<uint32_t>(p.pid()));
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_NEAR(static_cast<double>(report->summary.live), static_cast<double>(own), 2.0)
      << "runtime.NumGoroutine() said " << own;
  EXPECT_GE(report->summary.system, 2u) << "the GC's goroutines are runtime ones";
  EXPECT_GE(report->summary.by_state[static_cast<size_t>(GoroutineState::waiting_chan)], kLeaked);
  auto top = probes::go::top_creators(report->summary.by_creator, 3);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top.front().first, "main.leakBatch");
  EXPECT_EQ(top.front().second, kLeaked);
  EXPECT_GE(report->summary.max_goid, static_cast<int64_t>(own));
  if (GetParam().ends_with(".stripped")) {
    EXPECT_EQ(report->allgs_origin, "decoded runtime.forEachG");
  } else {
    EXPECT_EQ(report->allgs_origin, "symtab");
  }
  EXPECT_EQ(report->go_version.substr(0, 2), "1.");
}

TEST_P(GoroutinesTest, CollectorExportsTheProcessAndAnswersTheSloAccessor) {
  uint64_t own = 0;
  Process p = start_leak(&own);
  GoroutinesOptions options;
  options.targets = {{config::TargetSelector::Kind::pid, std::to_string(p.pid())}};
  options.top_k = 2;
  auto collector = GoroutinesCollector::start(options, nullptr);
  ASSERT_TRUE(collector);
  (*collector)->scan_now();
  auto samples = (*collector)->samples();
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].identity.pid, static_cast<uint32_t>(p.pid()));
  auto live = (*collector)->live_goroutines({config::TargetSelector::Kind::pid, std::to_string(p.pid())});
  ASSERT_TRUE(live);
  EXPECT_NEAR(static_cast<double>(*live), static_cast<double>(own), 2.0);
  EXPECT_FALSE((*collector)->live_goroutines({config::TargetSelector::Kind::comm, "no-such-comm"}));

  std::vector<metrics::Family> families;
  (*collector)->collect(families);
  bool named = false;
  for (const auto& f : families) {
    if (f.name != "syncscope_goroutines_by_creator") continue;
    for (const auto& s : f.samples)
      for (const auto& [k, v] : s.labels) named |= k == "function" && v == "main.leakBatch" && s.value == kLeaked;
  }
  EXPECT_TRUE(named) << "syncscope_goroutines_by_creator{function=\"main.leakBatch\"} should be " << kLeaked;
}

TEST_P(GoroutinesTest, AProcessExitingMidReadIsDroppedCleanly) {
  // Scan in a loop while the process is killed: every scan either succeeds or
  // says the process exited — never another error, never a crash.
  Process p = Process::spawn({path_, "-rate", "2000", "-interval", "10ms", "-duration", "0"});
  ASSERT_TRUE(p.wait_for("ready"));
  const auto pid = static_cast<uint32_t>(p.pid());
  collectors::GoImageCache cache;
  auto image = cache.for_pid(pid);
  ASSERT_TRUE(image) << image.error().message();
  std::atomic<bool> killed = false;
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p.kill_and_reap();
    killed = true;
  });
  int ok = 0, exited = 0;
  for (int i = 0; i < 100000 && exited == 0; ++i) {
    auto layout = (*image)->layout_for(static_cast<pid_t>(pid));
    Result<probes::go::GoroutineScan> scan = layout ? [&] {
      probes::go::ProcessMemory memory(static_cast<pid_t>(pid));
      return probes::go::read_goroutines(memory, *layout);
    }() : Result<probes::go::GoroutineScan>(std::unexpected(layout.error()));
    if (scan) {
      ++ok;
    } else {
      EXPECT_EQ(scan.error().sys_errno(), ESRCH) << scan.error().message();
      ++exited;
    }
  }
  killer.join();
  EXPECT_GT(ok, 0);
  EXPECT_EQ(exited, 1);
  EXPECT_TRUE(killed);

  // The collector, told to follow the dead pid, reports nothing and no failure.
  GoroutinesOptions options;
  options.targets = {{config::TargetSelector::Kind::pid, std::to_string(pid)}};
  auto collector = GoroutinesCollector::start(options, nullptr);
  ASSERT_TRUE(collector);
  (*collector)->scan_now();
  EXPECT_TRUE((*collector)->samples().empty());
  std::vector<metrics::Family> families;
  (*collector)->collect(families);
  for (const auto& f : families) {
    if (f.name != "syncscope_goroutines_scans_total") continue;
    for (const auto& s : f.samples) {
      if (s.labels == metrics::Labels{{"result", "failed"}}) {
        EXPECT_EQ(s.value, 0);
      }
    }
  }
  auto report = collectors::inspect_go_process(pid);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().sys_errno(), ESRCH);
  EXPECT_NE(report.error().message().find(std::to_string(pid)), std::string::npos);
}

TEST(GoroutinesErrors, NotAGoProgramIsNamed) {
  if (::geteuid() != 0) GTEST_SKIP() << "reading another process's memory needs root";
  Process p = Process::spawn({testing::build_path("workloads/sleeper"), "100000", "1000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto report = collectors::inspect_go_process(static_cast<uint32_t>(p.pid()));
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message().find("is not a Go program"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find(std::to_string(p.pid())), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Binaries, GoroutinesTest, ::testing::Values("goleak", "goleak.stripped"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param == "goleak" ? std::string("plain") : std::string("stripped");
                         });

}  // namespace
}  // namespace syncscope
