// The real Go lock probes (bpf/golang.bpf.c, agent/collectors/go_locks.cpp)
// on the real kernel, through the locks collector as `trace locks -p` runs
// it: tests/workloads/go/gomutex prints its mutex's address; the collector
// must report that address with kind go_mutex (go_rwmutex for an RWMutex
// writer behind readers) and a Go stack naming the caller, plus holder
// stacks (unlockSlow, rUnlockSlow) naming the releasing function, for the
// binary with symbols and for its stripped copy. Also: no trap on an uncontended
// mutex, and no harm to a target whose goroutine stacks grow and move.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "agent/collectors/locks.h"
#include "agent/loader/features.h"
#include "tests/support/process.h"
#include "tests/support/bpf_fixture.h"

namespace syncscope {
namespace {

using collectors::LockKind;
using collectors::LockReport;
using collectors::LocksCollector;
using collectors::LocksOptions;
using testing::Process;

std::string workload(bool stripped) {
  return testing::build_path(stripped ? "workloads/gomutex.stripped" : "workloads/gomutex");
}

class GoLocksTest : public testing::BpfTest {
 protected:
  void SetUp() override {
    if (!features_) GTEST_SKIP();
#if !defined(__x86_64__)
    GTEST_SKIP() << "the Go lock probes read the amd64 register ABI";
#endif
    if (!features_->uprobes) GTEST_SKIP() << "this kernel has no uprobes";
    if (!std::filesystem::exists(workload(false))) GTEST_SKIP() << workload(false) << " not built (make workloads)";
    cgroups_ = *probes::CgroupResolver::for_this_host();
  }

  struct Run {
    uint32_t pid = 0;
    uint64_t addr = 0;       // mutex_addr= or rwmutex_addr=
    uint64_t light_addr = 0;  // with -light
    std::vector<LockReport> locks;
    std::map<std::string, uint64_t> run_counts;
    uint64_t entry_hits = 0;
    uint64_t unlock_hits = 0;
    size_t uprobes = 0;
    std::optional<int> exit_status;
    std::string sources;
    nlohmann::json probes;  // /debug/probes' "locks" entry
  };

  // Starts the workload, attaches a `trace -p` collector as soon as it has
  // printed its addresses, drains until it says done, reports.
  // `holder_stacks`: as `trace locks --stacks` (true) or the agent (false).
  Run run_traced(const std::vector<std::string>& argv, bool holder_stacks = true) {
    Run run;
    std::vector<std::string> args = argv;
    args.insert(args.begin() + 1, "-wait");  // starts contending when the collector is attached
    Process p = Process::spawn(args);
    static const std::regex kAddr(R"((\w+)=(0x[0-9a-f]+))");
    for (;;) {
      auto line = p.read_line(std::chrono::seconds(20));
      if (!line) {
        ADD_FAILURE() << args[0] << " said nothing";
        return run;
      }
      std::smatch m;
      if (line->starts_with("pid=")) continue;
      if (std::regex_search(*line, m, kAddr)) {
        uint64_t value = std::stoull(m[2], nullptr, 16);
        (m[1] == "light_addr" ? run.light_addr : run.addr) = value;
      }
      if (*line == "ready") break;
    }
    run.pid = static_cast<uint32_t>(p.pid());
    LocksOptions options;
    options.pid = run.pid;
    options.keep_exited = true;
    options.symbolize_eagerly = true;
    options.lazy_wakeup = false;
    options.go_holder_stacks = holder_stacks;
    auto collector = LocksCollector::start(options, *features_, *cgroups_, nullptr, &report_);
    if (!collector) {
      ADD_FAILURE() << collector.error().message();
      return run;
    }
    LocksCollector& c = **collector;
    run.sources = c.sources();
    run.uprobes = c.golang() ? c.golang()->uprobe_link_count() : 0;
    p.write("go\n");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      auto line = p.read_line(std::chrono::milliseconds(100));
      c.poll(std::chrono::milliseconds(0));
      c.refresh(std::chrono::steady_clock::now());
      done = line && *line == "done";
    }
    EXPECT_TRUE(done) << argv[0] << " did not finish";
    run.exit_status = p.wait(std::chrono::seconds(20));
    c.poll(std::chrono::milliseconds(0));
    run.locks = c.report(20);
    run.run_counts = c.program_run_counts();
    if (c.golang()) {
      run.entry_hits = c.golang()->hits(GO_HIT_ENTRY);
      run.unlock_hits = c.golang()->hits(GO_HIT_UNLOCK);
    }
    run.probes = report_.to_json()["locks"];
    EXPECT_EQ(c.events_lost(), 0u);
    return run;
  }

  static const LockReport* find_lock(const Run& run, uint64_t addr) {
    for (const LockReport& l : run.locks)
      if (l.pid == run.pid && l.lock == addr) return &l;
    return nullptr;
  }

  static std::string describe(const Run& run) {
    std::string out = run.sources + "\n";
    for (const LockReport& l : run.locks) {
      out += fmt::format("  {:#x} {} {} waits {} ns caller {}, {} releases with waiters\n", l.lock,
                         to_string(l.kind), l.waits.count, l.waits.total_ns, l.caller, l.wakes);
      for (const auto& h : l.holder_stacks) {
        out += fmt::format("    holder stack ({} releases):", h.count);
        for (const auto& f : h.frames) out += " " + (f.symbol.empty() ? fmt::format("{:#x}", f.address) : f.symbol);
        out += "\n";
      }
    }
    return out;
  }

  // Some waiter stack names `function` (the frame where Lock was inlined).
  static bool stack_names(const LockReport& l, std::string_view function) { return names(l.waiter_stacks, function); }
  // Some holder stack (a release through unlockSlow / rUnlockSlow) names it.
  static bool holder_stack_names(const LockReport& l, std::string_view function) {
    return names(l.holder_stacks, function);
  }
  static bool names(const std::vector<collectors::StackReport>& stacks, std::string_view function) {
    for (const auto& s : stacks)
      for (const auto& f : s.frames)
        if (f.symbol == function) return true;
    return false;
  }

  void expect_go_mutex(bool stripped) {
    Run run = run_traced({workload(stripped), "-duration", "3s", "-goroutines", "8"});
    EXPECT_EQ(run.exit_status, 0);
    EXPECT_GT(run.uprobes, 1u) << run.sources;
    EXPECT_GT(run.entry_hits, 0u);  // the counter UncontendedMutexNeverTraps relies on does count
    const LockReport* l = find_lock(run, run.addr);
    ASSERT_NE(l, nullptr) << std::hex << run.addr << " not reported:\n" << describe(run);
    EXPECT_EQ(l->kind, LockKind::go_mutex);
    EXPECT_GT(l->waits.count, 10u);
    EXPECT_GT(l->waits.total_ns, 0u);
    EXPECT_TRUE(stack_names(*l, "main.contendMutex")) << describe(run);
    EXPECT_TRUE(l->caller.starts_with("main.contendMutex+0x")) << l->caller;
    // The holder side: Unlock met waiters, so unlockSlow ran in the
    // goroutine releasing the mutex, and its stack names where it unlocked.
    EXPECT_GT(run.unlock_hits, 0u);
    EXPECT_GT(l->wakes, 0u);
    EXPECT_TRUE(holder_stack_names(*l, "main.contendMutex")) << describe(run);
    if (!stripped) {
      EXPECT_EQ(l->symbol, "main.contended");  // a global: named from .symtab
    }
  }

  std::unique_ptr<probes::CgroupResolver> cgroups_;
  loader::ProbeReport report_;
};

TEST_F(GoLocksTest, ContendedMutexIsReportedWithItsAddressAndCaller) { expect_go_mutex(false); }

TEST_F(GoLocksTest, StrippedBinaryIsNamedThroughPclntab) {
  if (!std::filesystem::exists(workload(true))) GTEST_SKIP() << workload(true) << " not built";
  expect_go_mutex(true);
}

TEST_F(GoLocksTest, RwMutexWriterBehindReadersIsGoRwmutex) {
  Run run = run_traced({workload(false), "-rw", "-duration", "3s", "-goroutines", "6", "-hold", "200us"});
  EXPECT_EQ(run.exit_status, 0);
  const LockReport* l = find_lock(run, run.addr);
  ASSERT_NE(l, nullptr) << std::hex << run.addr << " not reported:\n" << describe(run);
  uint64_t rw_ns = 0;
  for (const auto& [kind, stats] : l->kinds)
    if (kind == LockKind::go_rwmutex) rw_ns = stats.total_ns;
  EXPECT_GT(rw_ns, 0u) << describe(run);
  EXPECT_TRUE(stack_names(*l, "main.rwWriter")) << describe(run);
  // The last reader out of a read lock a writer waits for (rUnlockSlow) is
  // the holder the writer waited behind.
  EXPECT_TRUE(holder_stack_names(*l, "main.rwReader")) << describe(run);
}

TEST_F(GoLocksTest, UncontendedMutexNeverTraps) {
  // One goroutine: every Lock takes the fast path (inlined CAS), lockSlow is
  // never called, so the entry probe never fires.
  Run run = run_traced({workload(false), "-duration", "1s", "-goroutines", "1", "-outside", "0"});
  EXPECT_EQ(run.exit_status, 0);
  EXPECT_GT(run.uprobes, 1u) << run.sources;
  EXPECT_EQ(run.entry_hits, 0u);
  EXPECT_EQ(run.unlock_hits, 0u);  // nobody waits, so Unlock never takes unlockSlow
  EXPECT_EQ(find_lock(run, run.addr), nullptr) << describe(run);
}

TEST_F(GoLocksTest, StackGrowthUnderProbesDoesNotHurtTheTarget) {
  // 2000 goroutines recursing ~200 KiB deep before each contended Lock, with
  // forced GCs shrinking their stacks: thousands of stack copies while
  // goroutines are parked inside the probed function. A uretprobe would
  // crash this; RET uprobes must not.
  Run run = run_traced({workload(false), "-depth", "200", "-goroutines", "2000", "-duration", "4s", "-hold", "20us"});
  EXPECT_EQ(run.exit_status, 0) << "the target crashed or failed under the probes";
  const LockReport* l = find_lock(run, run.addr);
  ASSERT_NE(l, nullptr) << describe(run);
  EXPECT_EQ(l->kind, LockKind::go_mutex);
  EXPECT_TRUE(stack_names(*l, "main.deepLock")) << describe(run);
}

TEST_F(GoLocksTest, ProbeReportSaysWhatWasAttached) {
  Run run = run_traced({workload(true), "-duration", "1s", "-goroutines", "4"});
  bool lock_slow = false;
  for (const auto& row : run.probes["attached"]) {
    std::string target = row["target"];
    if (!target.ends_with(":sync.(*Mutex).lockSlow")) continue;
    lock_slow = true;
    std::string detail = row["detail"];
    EXPECT_NE(detail.find("RET"), std::string::npos) << detail;
    EXPECT_NE(detail.find(".gopclntab"), std::string::npos) << detail;  // stripped: no .symtab
  }
  EXPECT_TRUE(lock_slow) << run.probes.dump(2);
  bool unlock_slow = false;
  for (const auto& row : run.probes["attached"])
    if (std::string(row["target"]).ends_with(":sync.(*Mutex).unlockSlow")) {
      unlock_slow = true;
      EXPECT_EQ(row["program"], "go_unlock_entry");
      EXPECT_NE(std::string(row["detail"]).find("holder side"), std::string::npos) << row.dump();
    }
  EXPECT_TRUE(unlock_slow) << run.probes.dump(2);
}

TEST_F(GoLocksTest, WithoutHolderStacksUnlockIsNeverProbed) {
  // The agent's setting: its metrics carry no stacks, so no trap per
  // contended Unlock; the waits are measured all the same.
  Run run = run_traced({workload(false), "-duration", "2s", "-goroutines", "8"}, false);
  EXPECT_EQ(run.exit_status, 0);
  const LockReport* l = find_lock(run, run.addr);
  ASSERT_NE(l, nullptr) << describe(run);
  EXPECT_GT(l->waits.count, 10u);
  EXPECT_EQ(run.unlock_hits, 0u);
  EXPECT_EQ(l->wakes, 0u);
  EXPECT_TRUE(l->holder_stacks.empty());
  for (const auto& row : run.probes["attached"]) EXPECT_NE(row["program"], "go_unlock_entry") << row.dump();
}

TEST_F(GoLocksTest, NonGoTargetGetsNoGoProbes) {
  Process p = Process::spawn({testing::build_path("workloads/sleeper"), "50", "100000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  LocksOptions options;
  options.pid = static_cast<uint32_t>(p.pid());
  auto collector = LocksCollector::start(options, *features_, *cgroups_, nullptr, &report_);
  ASSERT_TRUE(collector) << collector.error().message();
  ASSERT_NE((*collector)->golang(), nullptr);
  EXPECT_EQ((*collector)->golang()->uprobe_link_count(), 0u);
}

}  // namespace
}  // namespace syncscope
