// The real futex and glibc-uprobe programs on the real kernel: workloads that
// time their own lock waits (tests/workloads/lock_contention*.c*), and what
// the locks collector measured for the same locks.
#include <bpf/bpf.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "agent/collectors/locks.h"
#include "agent/loader/bpf_stats.h"
#include "agent/loader/features.h"
#include "agent/metrics/exposition.h"
#include "tests/support/exposition_check.h"
#include "tests/support/process.h"
#include "tests/support/bpf_fixture.h"

namespace syncscope {
namespace {

using collectors::LockKind;
using collectors::LockReport;
using collectors::LocksCollector;
using collectors::LocksOptions;
using testing::Process;

// What a workload says about one of its locks.
struct OwnFigure {
  uint64_t addr = 0;
  uint64_t wait_ns = 0;
  uint64_t calls = 0;
};

// Reads the workload's output until a line starting with `prefix`, draining
// the collector's ring buffer (and running its once-a-second work) meanwhile
// so a busy host cannot fill it. "lock …" lines are parsed into `figures`.
bool wait_for(Process& p, const std::string& prefix, LocksCollector& collector,
              std::map<std::string, OwnFigure>* figures = nullptr,
              std::chrono::seconds timeout = std::chrono::seconds(60)) {
  static const std::regex kLockLine(R"(lock name=(\S+) addr=(0x[0-9a-f]+) \S+ wait_ns=(\d+) calls=(\d+))");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto next_refresh = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = p.read_line(std::chrono::milliseconds(50));
    collector.poll(std::chrono::milliseconds(0));
    if (auto now = std::chrono::steady_clock::now(); now >= next_refresh) {
      collector.refresh(now);
      next_refresh = now + std::chrono::milliseconds(250);
    }
    if (!line) continue;
    std::smatch m;
    if (figures && std::regex_search(*line, m, kLockLine))
      (*figures)[m[1]] = {std::stoull(m[2], nullptr, 16), std::stoull(m[3]), std::stoull(m[4])};
    if (line->starts_with(prefix)) return true;
  }
  return false;
}

const LockReport* find_lock(const std::vector<LockReport>& locks, uint32_t pid, uint64_t addr) {
  for (const LockReport& l : locks)
    if (l.pid == pid && l.lock == addr) return &l;
  return nullptr;
}

uint64_t kind_ns(const LockReport& l, LockKind kind) {
  for (const auto& [k, stats] : l.kinds)
    if (k == kind) return stats.total_ns;
  return 0;
}

std::string describe(const std::vector<LockReport>& locks) {
  std::string out;
  for (const LockReport& l : locks)
    out += fmt::format("  {}[{}] {:#x} {} {} waits {} ns\n", l.comm, l.pid, l.lock, to_string(l.kind), l.waits.count,
                       l.waits.total_ns);
  return out;
}

// Open fds of this process: a collector torn down must leave none behind
// (links, perf events, maps, programs, ELF files).
size_t open_fds() {
  size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ++n;
    ::closedir(dir);
  }
  return n;
}

// The kernel frees a program once the last link and fd are gone; links of
// raw tracepoints drop their reference after an RCU grace period, so allow a
// moment.
bool program_unloaded(uint32_t id) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) return true;
    ::close(fd);
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class LocksTest : public testing::BpfTest {
 protected:
  void SetUp() override {
    if (!features_) GTEST_SKIP();
    cgroups_ = *probes::CgroupResolver::for_this_host();
  }

  // The trace CLI's configuration, for one process.
  static LocksOptions cli_options(uint32_t pid, bool all = false) {
    LocksOptions options;
    options.pid = pid;
    options.keep_exited = true;
    options.symbolize_eagerly = true;
    options.lazy_wakeup = false;
    options.keep_non_contention = all;
    return options;
  }
  std::unique_ptr<LocksCollector> trace(uint32_t pid, bool all = false) { return trace_with(cli_options(pid, all)); }
  std::unique_ptr<LocksCollector> trace_with(const LocksOptions& options) {
    auto collector = LocksCollector::start(options, *features_, *cgroups_, nullptr, &report_);
    EXPECT_TRUE(collector) << collector.error().message();
    return collector ? std::move(*collector) : nullptr;
  }

  // Runs one workload under a fresh `trace -p` collector and compares each
  // lock's total wait with the workload's own figure (within 5 %).
  struct Run {
    std::map<std::string, OwnFigure> own;
    std::vector<LockReport> locks;
    uint32_t pid = 0;
  };
  Run run_traced(const std::vector<std::string>& argv, bool all = false,
                 std::function<void(LocksOptions&)> adjust = nullptr) {
    Run run;
    Process p = Process::spawn(argv);
    auto ready = p.read_line(std::chrono::seconds(10));
    EXPECT_TRUE(ready && ready->starts_with("ready")) << argv[0];
    run.pid = static_cast<uint32_t>(p.pid());
    LocksOptions options = cli_options(run.pid, all);
    if (adjust) adjust(options);
    auto collector = trace_with(options);
    if (!collector) return run;
    if (options.glibc_uprobes) {
      EXPECT_GT(collector->uprobe_link_count(), 0u) << collector->sources();
    }
    p.write("go\n");
    EXPECT_TRUE(wait_for(p, "done", *collector, &run.own)) << argv[1];
    run.locks = collector->report(100);
    EXPECT_EQ(collector->events_lost(), 0u);
    p.close_stdin();
    EXPECT_EQ(p.wait(), 0);
    return run;
  }

  static void expect_close(uint64_t measured, uint64_t own, const std::string& what) {
    ASSERT_GT(own, 0u) << what;
    double ratio = static_cast<double>(measured) / static_cast<double>(own);
    EXPECT_NEAR(ratio, 1.0, 0.05) << what << ": collector " << measured << " ns, workload " << own << " ns";
  }

  void expect_lock(const Run& run, const std::string& name, LockKind kind, const std::string& symbol) {
    ASSERT_TRUE(run.own.contains(name)) << name;
    const OwnFigure& own = run.own.at(name);
    const LockReport* l = find_lock(run.locks, run.pid, own.addr);
    ASSERT_NE(l, nullptr) << name << " at " << std::hex << own.addr << " not reported; got:\n" << describe(run.locks);
    EXPECT_EQ(l->kind, kind) << name;
    expect_close(l->waits.total_ns, own.wait_ns, name);
    EXPECT_LE(l->waits.count, own.calls) << name;  // at most one sleep per call, give or take a retry
    EXPECT_GT(l->waits.count, own.calls / 2) << name << ": most calls should have contended";
    EXPECT_EQ(l->symbol, symbol) << name;
    EXPECT_GT(l->wakes, 0u) << name << ": the holder side woke waiters";
    EXPECT_FALSE(l->waiter_stacks.empty());
  }

  std::unique_ptr<probes::CgroupResolver> cgroups_;
  loader::ProbeReport report_;
};

const std::string kC = "workloads/lock_contention";
const std::string kCpp = "workloads/lock_contention_cpp";

TEST_F(LocksTest, PthreadMutexKindsMatchTheWorkloadsOwnWaits) {
  for (std::string mode : {"mutex", "recursive", "errorcheck", "adaptive", "timed"}) {
    SCOPED_TRACE(mode);
    Run run = run_traced({testing::build_path(kC), mode, "4", "40", "1000"});
    expect_lock(run, "g_mutex", LockKind::pthread_mutex, "g_mutex");
  }
}

TEST_F(LocksTest, HeapMutexIsNamedByItsWaiter) {
  Run run = run_traced({testing::build_path(kC), "heap", "4", "40", "1000"});
  ASSERT_TRUE(run.own.contains("heap_mutex"));
  const LockReport* l = find_lock(run.locks, run.pid, run.own.at("heap_mutex").addr);
  ASSERT_NE(l, nullptr) << describe(run.locks);
  EXPECT_EQ(l->data_symbol, "heap");
  // Not a global: the metric's symbol is the top user frame that waited.
  EXPECT_TRUE(l->symbol.starts_with("mutex_worker+0x")) << l->symbol;
  expect_close(l->waits.total_ns, run.own.at("heap_mutex").wait_ns, "heap_mutex");
}

TEST_F(LocksTest, RwlockWaitsLandOnTheRwlock) {
  Run run = run_traced({testing::build_path(kC), "rwlock", "4", "40", "1000"});
  expect_lock(run, "g_rwlock", LockKind::pthread_rwlock, "g_rwlock");
  const LockReport* l = find_lock(run.locks, run.pid, run.own.at("g_rwlock").addr);
  ASSERT_NE(l, nullptr);
  // Readers and writers sleep on different words of the same rwlock.
  EXPECT_GE(l->futex_words.size(), 2u);
  for (uint64_t word : l->futex_words) EXPECT_LT(word - l->lock, 16u);
}

// Condvar waiters: the signal wait (cond_wait, on the condvar, not
// contention) plus the mutex re-acquire (pthread_cond, on the mutex) add up to
// the time the workload spent in pthread_cond_wait; its plain mutex lock
// calls are pthread_mutex waits on the same mutex.
TEST_F(LocksTest, CondvarWaitAndMutexReacquire) {
  Run run = run_traced({testing::build_path(kC), "condvar", "4", "40", "1000"}, /*all=*/true);
  ASSERT_TRUE(run.own.contains("g_cond") && run.own.contains("g_cond_mutex"));
  const LockReport* mutex = find_lock(run.locks, run.pid, run.own.at("g_cond_mutex").addr);
  const LockReport* cond = find_lock(run.locks, run.pid, run.own.at("g_cond").addr);
  ASSERT_NE(mutex, nullptr) << describe(run.locks);
  ASSERT_NE(cond, nullptr) << describe(run.locks);
  EXPECT_EQ(cond->kind, LockKind::cond_wait);
  EXPECT_EQ(cond->symbol, "g_cond");
  EXPECT_GT(kind_ns(*mutex, LockKind::pthread_cond), 0u);
  expect_close(kind_ns(*mutex, LockKind::pthread_mutex), run.own.at("g_cond_mutex").wait_ns, "mutex lock calls");
  expect_close(kind_ns(*cond, LockKind::cond_wait) + kind_ns(*mutex, LockKind::pthread_cond),
               run.own.at("g_cond").wait_ns, "pthread_cond_wait calls");
}

TEST_F(LocksTest, CppStdMutexAndSharedMutex) {
  Run m = run_traced({testing::build_path(kCpp), "std_mutex", "4", "40", "1000"});
  expect_lock(m, "g_std_mutex", LockKind::pthread_mutex, "(anonymous namespace)::g_std_mutex");
  Run s = run_traced({testing::build_path(kCpp), "shared_mutex", "4", "40", "1000"});
  expect_lock(s, "g_shared_mutex", LockKind::pthread_rwlock, "(anonymous namespace)::g_shared_mutex");
}

// Cost scales with contention: ten million uncontended lock/unlock pairs
// produce no record and trap no uprobe, while the same probes do fire as
// soon as the lock is contended.
TEST_F(LocksTest, UncontendedLocksCostNothing) {
  loader::BpfSelfMetrics stats;
  if (!stats.enable_run_time_stats()) GTEST_SKIP() << "bpf_stats unavailable: run counts stay 0";
  Process p = Process::spawn({testing::build_path("workloads/lock_uncontended"), "10000000"});
  ASSERT_TRUE(p.read_line(std::chrono::seconds(10)));
  auto collector = trace(static_cast<uint32_t>(p.pid()));
  ASSERT_TRUE(collector);
  ASSERT_GT(collector->uprobe_link_count(), 0u);
  p.write("go\n");
  ASSERT_TRUE(wait_for(p, "done", *collector));
  std::vector<LockReport> locks = collector->report(100);
  EXPECT_TRUE(locks.empty()) << describe(locks);
  for (const auto& [program, runs] : collector->program_run_counts()) {
    if (program.starts_with("ulock_")) {
      EXPECT_EQ(runs, 0u) << program;
    }
  }
  p.close_stdin();
  EXPECT_EQ(p.wait(), 0);

  // The control: contention makes the same kind of collector's uprobes run.
  Run run = run_traced({testing::build_path(kC), "mutex", "4", "10", "1000"});
  ASSERT_FALSE(run.locks.empty());
}

// Only the selected processes are followed, including ones that start after
// the collector (picked up at exec, glibc found and probed then).
TEST_F(LocksTest, TargetSelectorsFollowNewProcessesAtExec) {
  LocksOptions options;
  options.targets = {{config::TargetSelector::Kind::exe, testing::build_path(kC)}};
  auto started = LocksCollector::start(options, *features_, *cgroups_, nullptr, &report_);
  ASSERT_TRUE(started) << started.error().message();
  LocksCollector& collector = **started;
  Process target = Process::spawn({testing::build_path(kC), "mutex", "4", "20", "1000"});
  Process other = Process::spawn({testing::build_path(kCpp), "std_mutex", "4", "20", "1000"});
  ASSERT_TRUE(wait_for(target, "ready", collector));
  ASSERT_TRUE(other.read_line(std::chrono::seconds(10)));
  // The exec record arrives, then the libc check runs a little later.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (collector.uprobe_link_count() == 0 && std::chrono::steady_clock::now() < deadline) {
    collector.poll(std::chrono::milliseconds(50));
    collector.refresh(std::chrono::steady_clock::now());
  }
  ASSERT_GT(collector.uprobe_link_count(), 0u) << collector.sources();
  target.write("go\n");
  other.write("go\n");
  std::map<std::string, OwnFigure> own;
  ASSERT_TRUE(wait_for(target, "done", collector, &own));
  ASSERT_TRUE(wait_for(other, "done", collector));
  std::vector<LockReport> locks = collector.report(1000);
  const LockReport* l = find_lock(locks, static_cast<uint32_t>(target.pid()), own.at("g_mutex").addr);
  ASSERT_NE(l, nullptr) << describe(locks);
  EXPECT_EQ(l->kind, LockKind::pthread_mutex);
  expect_close(l->waits.total_ns, own.at("g_mutex").wait_ns, "selected process");
  for (const LockReport& r : locks) EXPECT_NE(r.pid, static_cast<uint32_t>(other.pid())) << describe(locks);

  // And the agent's metrics for it are well-formed.
  collector.refresh(std::chrono::steady_clock::now());
  std::vector<metrics::Family> families;
  collector.collect(families);
  std::string text = metrics::render_text(families);
  EXPECT_NE(text.find("syncscope_lock_contentions_total{cgroup="), std::string::npos) << text;
  EXPECT_NE(text.find("kind=\"pthread_mutex\""), std::string::npos);
  EXPECT_NE(text.find(fmt::format("process=\"lock_contention[{}]\",lock=\"{:#x}\",symbol=\"g_mutex\"", target.pid(),
                                  own.at("g_mutex").addr)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("syncscope_lock_top_wait_seconds_total{cgroup=\"other\",process=\"other\",lock=\"other\",symbol=\"other\"}"),
            std::string::npos);
  auto problems = testing::check_histograms(text);
  EXPECT_TRUE(problems.empty()) << problems.front();
  testing::PromtoolResult promtool = testing::promtool_check_metrics(text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
  target.close_stdin();
  other.close_stdin();
}

// A traced process that exits mid-trace: the collector notices, keeps what it
// measured, reports it, and tears down without leaving a probe behind; the
// next trace works.
TEST_F(LocksTest, TargetExitMidTraceLeavesNothingBehind) {
  size_t fds_before = open_fds();
  std::vector<uint32_t> ids;
  {
    Process p = Process::spawn({testing::build_path(kC), "mutex", "4", "20", "1000"});
    ASSERT_TRUE(p.read_line(std::chrono::seconds(10)));
    auto collector = trace(static_cast<uint32_t>(p.pid()));
    ASSERT_TRUE(collector);
    p.write("go\n");
    std::map<std::string, OwnFigure> own;
    ASSERT_TRUE(wait_for(p, "done", *collector, &own));
    p.close_stdin();  // it exits now, while traced
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!collector->target_exited() && std::chrono::steady_clock::now() < deadline)
      collector->poll(std::chrono::milliseconds(50));
    EXPECT_TRUE(collector->target_exited());
    EXPECT_EQ(p.wait(), 0);
    collector->refresh(std::chrono::steady_clock::now());
    std::vector<LockReport> locks = collector->report(10);
    const LockReport* l = find_lock(locks, static_cast<uint32_t>(p.pid()), own.at("g_mutex").addr);
    ASSERT_NE(l, nullptr) << describe(locks);
    EXPECT_EQ(l->symbol, "g_mutex");  // named while the process was alive
    for (const auto& lib : collector->libcs()) EXPECT_FALSE(lib->links.empty());
    // Every program id, to check they are all gone afterwards.
    ids = collector->program_ids();
    ASSERT_FALSE(ids.empty());
  }
  for (uint32_t id : ids) EXPECT_TRUE(program_unloaded(id)) << "program " << id << " is still loaded: a link or fd leaked";
  EXPECT_EQ(open_fds(), fds_before);
  Run next = run_traced({testing::build_path(kC), "mutex", "4", "10", "1000"});
  expect_lock(next, "g_mutex", LockKind::pthread_mutex, "g_mutex");
}

// A traced process that execs mid-trace: both images' locks are measured
// (the pid-bound uprobes follow the new mapping of libc), names come from the
// right image, and teardown leaves nothing behind.
TEST_F(LocksTest, TargetExecMidTrace) {
  size_t fds_before = open_fds();
  std::vector<uint32_t> ids;
  {
    Process p = Process::spawn({testing::build_path(kC), "mutex", "4", "20", "1000", "--exec"});
    ASSERT_TRUE(p.read_line(std::chrono::seconds(10)));
    auto collector = trace(static_cast<uint32_t>(p.pid()));
    ASSERT_TRUE(collector);
    p.write("go\n");
    std::map<std::string, OwnFigure> before, after;
    ASSERT_TRUE(wait_for(p, "done", *collector, &before));
    ASSERT_TRUE(wait_for(p, "ready", *collector));  // the new image
    ASSERT_TRUE(wait_for(p, "done", *collector, &after));
    std::vector<LockReport> locks = collector->report(10);
    for (const auto& [label, own] : {std::pair{"before exec", before.at("g_mutex")}, {"after exec", after.at("g_mutex")}}) {
      const LockReport* l = find_lock(locks, static_cast<uint32_t>(p.pid()), own.addr);
      ASSERT_NE(l, nullptr) << label << "\n" << describe(locks);
      EXPECT_EQ(l->kind, LockKind::pthread_mutex) << label;
      EXPECT_EQ(l->symbol, "g_mutex") << label;
      expect_close(l->waits.total_ns, own.wait_ns, label);
    }
    ids = collector->program_ids();
    p.close_stdin();
    EXPECT_EQ(p.wait(), 0);
  }
  for (uint32_t id : ids) EXPECT_TRUE(program_unloaded(id)) << "program " << id << " is still loaded: a link or fd leaked";
  EXPECT_EQ(open_fds(), fds_before);
}

// Without libc6-dbg, __lll_lock_wait is found by decoding pthread_mutex_lock
// and mutexes are still classified; what cannot be found is reported.
TEST_F(LocksTest, DegradesToCallTargetDecodingWithoutTheDebugFile) {
  std::string empty_debug_root = ::testing::TempDir() + "syncscope-no-debug";
  std::filesystem::create_directories(empty_debug_root);
  Run run = run_traced({testing::build_path(kC), "mutex", "4", "30", "1000"}, false,
                       [&](LocksOptions& o) { o.debug_root = empty_debug_root; });
  expect_lock(run, "g_mutex", LockKind::pthread_mutex, "g_mutex");
  std::string text = report_.to_json()["locks"].dump();
  EXPECT_NE(text.find("resolved by decoding pthread_mutex_lock's call target"), std::string::npos) << text;
  EXPECT_NE(text.find("__futex_abstimed_wait64"), std::string::npos);
  EXPECT_NE(text.find("not found"), std::string::npos) << text;
  std::filesystem::remove_all(empty_debug_root);
}

// With the uprobes off, the futex source alone still measures the mutex, as
// a lock-shaped futex at the mutex's address, and says it is alone.
TEST_F(LocksTest, FutexSourceAloneStillMeasures) {
  Run run = run_traced({testing::build_path(kC), "mutex", "4", "30", "1000"}, false,
                       [](LocksOptions& o) { o.glibc_uprobes = false; });
  const OwnFigure& own = run.own.at("g_mutex");
  const LockReport* l = find_lock(run.locks, run.pid, own.addr);
  ASSERT_NE(l, nullptr) << describe(run.locks);
  EXPECT_EQ(l->kind, LockKind::futex);
  expect_close(l->waits.total_ns, own.wait_ns, "futex source alone");
  EXPECT_NE(report_.to_json()["locks"]["summary"].get<std::string>().find("futex source only"), std::string::npos);
}

// The SLO API counts every contended wait of the target exactly: as many as
// the per-lock rows, all over a zero threshold, none over ten seconds.
TEST_F(LocksTest, SloRowsCountTheTargetsWaitsExactly) {
  Process p = Process::spawn({testing::build_path(kC), "mutex", "4", "20", "1000"});
  ASSERT_TRUE(p.read_line(std::chrono::seconds(10)));
  auto collector = trace(static_cast<uint32_t>(p.pid()));
  ASSERT_TRUE(collector);
  config::TargetSelector self{config::TargetSelector::Kind::pid, std::to_string(p.pid())};
  config::TargetSelector nobody{config::TargetSelector::Kind::comm, "no-such-comm"};
  collector->set_slo_rows({{self, 0}, {self, 10'000'000'000ULL}, {nobody, 0}});
  p.write("go\n");
  std::map<std::string, OwnFigure> own;
  ASSERT_TRUE(wait_for(p, "done", *collector, &own));
  std::vector<LockReport> locks = collector->report(10);
  uint64_t waits = 0, wait_ns = 0;
  for (const LockReport& l : locks) waits += l.waits.count, wait_ns += l.waits.total_ns;
  auto all = collector->slo_counts(0);
  EXPECT_GT(all.total, 0u);
  EXPECT_EQ(all.total, waits);
  EXPECT_EQ(all.over, all.total);
  EXPECT_EQ(all.wait_ns, wait_ns);
  EXPECT_EQ(collector->slo_counts(1).total, all.total);
  EXPECT_EQ(collector->slo_counts(1).over, 0u);
  EXPECT_EQ(collector->slo_counts(2).total, 0u);
  // And the cache-line detector's view: the mutex was recently contended.
  auto recent = collector->recent_contended(static_cast<uint32_t>(p.pid()), std::chrono::minutes(1));
  ASSERT_FALSE(recent.empty());
  EXPECT_EQ(recent[0].lock, own.at("g_mutex").addr);
  p.close_stdin();
}

// /debug/probes says what attached and how __lll_lock_wait was found.
TEST_F(LocksTest, ProbeReportNamesTheResolutionMethod) {
  Process p = Process::spawn({testing::build_path(kC), "mutex", "2", "1", "10"});
  ASSERT_TRUE(p.read_line(std::chrono::seconds(10)));
  auto collector = trace(static_cast<uint32_t>(p.pid()));
  ASSERT_TRUE(collector);
  nlohmann::json locks = report_.to_json()["locks"];
  std::string text = locks.dump();
  EXPECT_NE(text.find("sys_enter_futex"), std::string::npos) << text;
  EXPECT_NE(text.find("__lll_lock_wait"), std::string::npos) << text;
  // libc6-dbg is installed here: the build-id debug file names it.
  EXPECT_NE(text.find("resolved via debug file by build-id"), std::string::npos) << text;
  EXPECT_NE(locks["summary"].get<std::string>().find("glibc uprobes"), std::string::npos) << text;
  p.close_stdin();
}

}  // namespace
}  // namespace syncscope
