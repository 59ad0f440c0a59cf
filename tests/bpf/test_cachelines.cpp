// The real cache-line programs on the real kernel, against
// tests/workloads/falseshare.cpp (globals with known sharing): hardware
// watchpoints with no PMU and no hints find and name the false-sharing
// struct, say nothing about its padded twin, call a shared counter true
// sharing; ENOSPC on a thread whose debug registers are taken; the page-fault
// stand-in of the PMU sampler; the per-cgroup counters with a stand-in event;
// libatomic and user-named atomic uprobes; and that no watchpoint outlives
// its window.
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "agent/collectors/cacheline_watch.h"
#include "agent/collectors/cachelines.h"
#include "agent/core/log.h"
#include "agent/loader/features.h"
#include "agent/metrics/exposition.h"
#include "bpf/cacheline.h"
#include "bpf/cacheline.skel.h"
#include "tests/support/cgroup_fixture.h"
#include "tests/support/exposition_check.h"
#include "tests/support/process.h"
#include "tests/support/bpf_fixture.h"

namespace syncscope {
namespace {

using collectors::CachelinesCollector;
using collectors::CachelinesOptions;
using collectors::LineReport;
using collectors::Verdict;
using testing::Process;
using namespace std::chrono_literals;

// A running tests/workloads/falseshare: its globals and threads as it printed them.
struct Workload {
  std::unique_ptr<Process> process;
  std::map<std::string, uint64_t> globals;  // name → address
  std::map<std::string, uint64_t> lines;    // name → line
  uint64_t region = 0;
  uint64_t heap = 0;
  std::vector<uint32_t> tids;  // by thread index

  uint32_t pid() const { return static_cast<uint32_t>(process->pid()); }

  // `before_go` runs once the workload is ready and before it starts working
  // (move it into a cgroup, attach a collector that must see every event).
  static Workload start(const std::string& mode, int threads, const std::function<void(pid_t)>& before_go = {}) {
    Workload w;
    w.process = std::make_unique<Process>(
        Process::spawn({testing::build_path("workloads/falseshare"), mode, std::to_string(threads), "0", "250"}));
    static const std::regex kGlobal(R"(global name=(\S+) addr=(0x[0-9a-f]+) size=\d+ line=(0x[0-9a-f]+))");
    static const std::regex kRegion(R"(region addr=(0x[0-9a-f]+))");
    static const std::regex kHeap(R"(heap addr=(0x[0-9a-f]+))");
    static const std::regex kThread(R"(thread index=(\d+) tid=(\d+))");
    EXPECT_TRUE(w.process->wait_for("ready"));
    for (;;) {
      auto line = w.process->read_line();
      if (!line) break;
      std::smatch m;
      if (std::regex_search(*line, m, kGlobal)) {
        w.globals[m[1]] = std::stoull(m[2], nullptr, 16);
        w.lines[m[1]] = std::stoull(m[3], nullptr, 16);
      } else if (std::regex_search(*line, m, kHeap)) {
        w.heap = std::stoull(m[1], nullptr, 16);
      } else if (std::regex_search(*line, m, kRegion)) {
        w.region = std::stoull(m[1], nullptr, 16);
        break;
      }
    }
    if (before_go) before_go(w.process->pid());
    EXPECT_TRUE(w.process->write("go\n"));
    w.tids.resize(static_cast<size_t>(threads));
    for (int seen = 0; seen < threads;) {
      auto line = w.process->read_line();
      if (!line) break;
      std::smatch m;
      if (std::regex_search(*line, m, kThread)) {
        w.tids[std::stoul(m[1])] = static_cast<uint32_t>(std::stoul(m[2]));
        ++seen;
      }
    }
    return w;
  }

  // Stops the work and returns the "done ops=N" figure.
  uint64_t stop() {
    process->write("stop\n");
    static const std::regex kDone(R"(done ops=(\d+))");
    for (;;) {
      auto line = process->read_line(20s);
      if (!line) return 0;
      std::smatch m;
      if (std::regex_search(*line, m, kDone)) return std::stoull(m[1]);
    }
  }
  // User + system CPU seconds of the workload (/proc/PID/stat).
  double cpu_seconds() const {
    std::ifstream in(fmt::format("/proc/{}/stat", process->pid()));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)), std::istream_iterator<std::string>());
    if (f.size() < 13) return 0;
    return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  // Throughput figures printed since the last call.
  std::vector<double> rates() {
    std::vector<double> out;
    static const std::regex kRate(R"(rate ops_per_s=(\d+))");
    while (auto line = process->read_line(20ms)) {
      std::smatch m;
      if (std::regex_search(*line, m, kRate)) out.push_back(std::stod(m[1]));
    }
    return out;
  }
};

size_t perf_event_fds() {
  size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(dir)) {
      char target[256] = {};
      std::string path = fmt::format("/proc/self/fd/{}", e->d_name);
      if (::readlink(path.c_str(), target, sizeof target - 1) > 0 &&
          std::string_view(target) == "anon_inode:[perf_event]")
        ++n;
    }
    ::closedir(dir);
  }
  return n;
}

int open_breakpoint(pid_t tid, uint64_t addr) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_BREAKPOINT;
  attr.bp_type = HW_BREAKPOINT_W;
  attr.bp_addr = addr;
  attr.bp_len = HW_BREAKPOINT_LEN_8;
  attr.sample_period = 1;
  attr.exclude_kernel = 1;
  return static_cast<int>(::syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

const LineReport* find_line(const std::vector<LineReport>& lines, uint64_t line) {
  for (const LineReport& l : lines)
    if (l.line == line) return &l;
  return nullptr;
}

std::string describe(const std::vector<LineReport>& lines) {
  std::string out;
  for (const LineReport& l : lines) {
    out += fmt::format("  {:#x} {} {} threads={}\n", l.line, l.symbol, to_string(l.verdict), l.threads.size());
    for (const auto& o : l.offsets)
      out += fmt::format("    +{} len {} threads {} writes {}\n", o.offset, o.len, o.threads.size(), o.writes);
  }
  return out;
}

class CachelinesTest : public testing::BpfTest {
 protected:
  static void SetUpTestSuite() {
    BpfTest::SetUpTestSuite();
    // SYNCSCOPE_TEST_DEBUG=1: the collector's window-by-window log.
    if (std::getenv("SYNCSCOPE_TEST_DEBUG")) log::set_min_level(log::Level::debug);
  }
  void SetUp() override {
    if (!features_) GTEST_SKIP();
    cgroups_ = *probes::CgroupResolver::for_this_host();
  }
  void need_watchpoints() {
    if (!features_->hw_breakpoints)
      GTEST_SKIP() << "no hardware breakpoints here: " << features_->find("hw_breakpoints")->detail;
    if (!features_->perf_event_programs) GTEST_SKIP() << "perf_event programs do not load here";
  }

  // The agent's defaults (cachelines.watch: window 20 ms, duty cycle 2%), for one process.
  static CachelinesOptions for_pid(uint32_t pid) {
    CachelinesOptions o;
    o.pid = pid;
    o.window = 20ms;
    o.duty_cycle = 0.02;
    return o;
  }
  std::unique_ptr<CachelinesCollector> start(const CachelinesOptions& options) {
    auto c = CachelinesCollector::start(options, *features_, *cgroups_, nullptr, &report_);
    EXPECT_TRUE(c) << c.error().message();
    return c ? std::move(*c) : nullptr;
  }
  // Polls report(all) until `done` says so or `timeout` passes.
  static std::vector<LineReport> wait_for(CachelinesCollector& c, std::chrono::seconds timeout,
                                          const std::function<bool(const std::vector<LineReport>&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<LineReport> lines;
    while (std::chrono::steady_clock::now() < deadline) {
      lines = c.report(1000, true);
      if (done(lines)) break;
      std::this_thread::sleep_for(100ms);
    }
    return lines;
  }

  std::unique_ptr<probes::CgroupResolver> cgroups_;
  loader::ProbeReport report_;
};

// The issue's acceptance test: no PMU, no hint, the agent's default window
// and duty cycle — the false-sharing struct is found within 20 s, named, and
// its two words are attributed to the two threads that write them.
TEST_F(CachelinesTest, FindsAndNamesTheFalseSharingStructWithoutHintsWithin20s) {
  need_watchpoints();
  Workload w = Workload::start("false_sharing", 2);
  size_t fds_before = perf_event_fds();
  auto started = std::chrono::steady_clock::now();
  auto c = start(for_pid(w.pid()));
  ASSERT_TRUE(c);
  uint64_t target = w.lines.at("g_false_shared");
  auto lines = wait_for(*c, 20s, [&](const std::vector<LineReport>& ls) {
    const LineReport* l = find_line(ls, target);
    return l && l->verdict == Verdict::false_sharing;
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const LineReport* line = find_line(lines, target);
  ASSERT_NE(line, nullptr) << "not judged within 20 s; judged:\n" << describe(lines);
  EXPECT_EQ(line->verdict, Verdict::false_sharing) << describe(lines);
  std::printf("false sharing found in %.1f s (%llu windows)\n", seconds,
              static_cast<unsigned long long>(c->status().windows));
  EXPECT_NE(line->symbol.find("g_false_shared"), std::string::npos) << line->symbol;
  ASSERT_EQ(line->offsets.size(), 2u) << describe(lines);
  EXPECT_EQ(line->offsets[0].offset, 0u);
  EXPECT_EQ(line->offsets[1].offset, 8u);
  EXPECT_EQ(line->offsets[0].symbol, "g_false_shared+0x0");
  EXPECT_EQ(line->offsets[1].symbol, "g_false_shared+0x8");
  // The workload is built with -g: DWARF names the members.
  EXPECT_EQ(line->offsets[0].field, "g_false_shared.field[0]");
  EXPECT_EQ(line->offsets[1].field, "g_false_shared.field[1]");
  EXPECT_EQ(line->offsets[0].threads, std::vector<uint32_t>{w.tids[0]});
  EXPECT_EQ(line->offsets[1].threads, std::vector<uint32_t>{w.tids[1]});
  EXPECT_GT(line->offsets[0].writes, 0u);
  EXPECT_GT(line->offsets[1].writes, 0u);
  EXPECT_GT(line->accesses_per_second, 0);
  ASSERT_FALSE(line->sites.empty());

  // Duty-cycle accounting: watched time / wall time over whole cycles stays
  // at or under what was configured (windows overrun a little; the pause
  // after each follows what it really lasted).
  collectors::CachelinesStatus s = c->status();
  EXPECT_GT(s.windows, 0u);
  EXPECT_LE(s.watched_fraction, 0.02 + 1e-6);
  EXPECT_EQ(s.threads_busy, 0u);

  // The metric: one false_sharing series naming the struct.
  c->refresh(std::chrono::steady_clock::now());
  std::vector<metrics::Family> families;
  c->collect(families);
  std::string text = metrics::render_text(families);
  EXPECT_NE(text.find(fmt::format("line=\"{:#x}\",symbol=\"g_false_shared\",verdict=\"false_sharing\"", target)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("syncscope_pmu_available " + std::string(features_->pmu ? "1" : "0")), std::string::npos);
  testing::PromtoolResult promtool = testing::promtool_check_metrics(text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;

  c.reset();
  // Every breakpoint closed with the collector (and between windows).
  EXPECT_EQ(perf_event_fds(), fds_before);
  w.stop();
}

// The same struct with alignas(64) fields: each line has one writer. Both of
// its lines are watched and judged, and nothing is reported.
TEST_F(CachelinesTest, NothingReportedForThePaddedTwin) {
  need_watchpoints();
  Workload w = Workload::start("padded", 2);
  CachelinesOptions o = for_pid(w.pid());
  o.duty_cycle = 0.05;  // the point is the verdict, not the wait
  auto c = start(o);
  ASSERT_TRUE(c);
  uint64_t a = w.lines.at("g_padded"), b = a + 64;
  auto lines = wait_for(*c, 30s, [&](const std::vector<LineReport>& ls) {
    const LineReport* la = find_line(ls, a);
    const LineReport* lb = find_line(ls, b);
    return la && lb && la->hits > 0 && lb->hits > 0;
  });
  const LineReport* la = find_line(lines, a);
  const LineReport* lb = find_line(lines, b);
  ASSERT_TRUE(la && lb) << describe(lines);
  EXPECT_EQ(la->verdict, Verdict::none) << describe(lines);
  EXPECT_EQ(lb->verdict, Verdict::none) << describe(lines);
  EXPECT_EQ(la->threads, std::vector<uint32_t>{w.tids[0]});
  EXPECT_EQ(lb->threads, std::vector<uint32_t>{w.tids[1]});
  EXPECT_TRUE(c->report(1000, false).empty()) << describe(c->report(1000, false));
  w.stop();
}

TEST_F(CachelinesTest, OneCounterTwoThreadsIsTrueSharing) {
  need_watchpoints();
  Workload w = Workload::start("true_sharing", 2);
  CachelinesOptions o = for_pid(w.pid());
  o.duty_cycle = 0.05;
  auto c = start(o);
  ASSERT_TRUE(c);
  uint64_t target = w.lines.at("g_true_shared");
  auto lines = wait_for(*c, 30s, [&](const std::vector<LineReport>& ls) { return find_line(ls, target) != nullptr; });
  const LineReport* line = find_line(lines, target);
  ASSERT_NE(line, nullptr) << describe(lines);
  EXPECT_EQ(line->verdict, Verdict::true_sharing) << describe(lines);
  EXPECT_EQ(line->threads.size(), 2u);
  // The 8-byte counter was split into halves once, and both halves showed
  // both threads: one field, not two.
  for (const auto& off : line->offsets) EXPECT_EQ(off.threads.size(), 2u) << describe(lines);
  w.stop();
}

TEST_F(CachelinesTest, TwoHotMutexesOnOneLineAreFalseSharing) {
  need_watchpoints();
  Workload w = Workload::start("mutexes", 2);
  CachelinesOptions o = for_pid(w.pid());
  o.duty_cycle = 0.05;
  auto c = start(o);
  ASSERT_TRUE(c);
  uint64_t target = w.lines.at("g_mutex_pair");
  auto lines = wait_for(*c, 30s, [&](const std::vector<LineReport>& ls) { return find_line(ls, target) != nullptr; });
  const LineReport* line = find_line(lines, target);
  ASSERT_NE(line, nullptr) << describe(lines);
  EXPECT_EQ(line->verdict, Verdict::false_sharing) << describe(lines);
  // Each mutex's lock word (offsets 0 and 40) written by its own thread.
  std::map<uint32_t, std::vector<uint32_t>> by_offset;
  std::map<uint32_t, std::string> fields;
  for (const auto& off : line->offsets) by_offset[off.offset] = off.threads, fields[off.offset] = off.field;
  EXPECT_EQ(by_offset[0], std::vector<uint32_t>{w.tids[0]}) << describe(lines);
  EXPECT_EQ(by_offset[40], std::vector<uint32_t>{w.tids[1]}) << describe(lines);
  EXPECT_EQ(fields[0], "g_mutex_pair.m[0]");
  EXPECT_EQ(fields[40], "g_mutex_pair.m[1]");
  w.stop();
}

// A lock hint (what the locks collector hands over in the agent) is watched
// before any global: with the rotation off it is the only way in.
TEST_F(CachelinesTest, AHintIsWatchedFirst) {
  need_watchpoints();
  Workload w = Workload::start("false_sharing", 2);
  CachelinesOptions o = for_pid(w.pid());
  o.globals = false;
  o.atomic_windows = false;
  o.duty_cycle = 0.05;
  auto c = start(o);
  ASSERT_TRUE(c);
  uint64_t target = w.lines.at("g_false_shared");
  c->hint({w.pid(), w.globals.at("g_false_shared") + 8, collectors::CandidateOrigin::lock, 1e6, "pthread_mutex"});
  auto lines = wait_for(*c, 15s, [&](const std::vector<LineReport>& ls) { return find_line(ls, target) != nullptr; });
  const LineReport* line = find_line(lines, target);
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(line->verdict, Verdict::false_sharing);
  EXPECT_EQ(line->origin, "lock");
  EXPECT_EQ(lines.size(), 1u) << describe(lines);
  w.stop();
}

// Heap data has no symbol: the line is named "heap", with the code that
// touched it.
TEST_F(CachelinesTest, HeapLinesAreNamedHeapWithTheirCodeSites) {
  need_watchpoints();
  Workload w = Workload::start("heap_false_sharing", 2);
  CachelinesOptions o = for_pid(w.pid());
  o.globals = false;
  o.atomic_windows = false;
  o.duty_cycle = 0.05;
  auto c = start(o);
  ASSERT_TRUE(c);
  ASSERT_NE(w.heap, 0u);
  c->hint({w.pid(), w.heap, collectors::CandidateOrigin::lock, 1, "pthread_mutex"});
  auto lines = wait_for(*c, 15s, [&](const std::vector<LineReport>& ls) { return find_line(ls, w.heap) != nullptr; });
  const LineReport* line = find_line(lines, w.heap);
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(line->verdict, Verdict::false_sharing);
  EXPECT_EQ(line->symbol, "heap");
  ASSERT_FALSE(line->sites.empty());
  EXPECT_NE(line->sites[0].where.find("(falseshare)"), std::string::npos) << line->sites[0].where;
  c->refresh(std::chrono::steady_clock::now());
  std::vector<metrics::Family> families;
  c->collect(families);
  std::string text = metrics::render_text(families);
  EXPECT_NE(text.find("symbol=\"heap: "), std::string::npos) << text;
  w.stop();
}

// A thread whose four debug registers are taken (here by the test's own
// breakpoints, as a debugger would) answers ENOSPC: it is skipped, counted,
// and everything else goes on. Once they are free again, detection works.
TEST_F(CachelinesTest, ThreadWithBusyDebugRegistersIsSkipped) {
  need_watchpoints();
  Workload w = Workload::start("false_sharing", 2);
  std::vector<Fd> taken;
  for (int i = 0; i < 4; ++i) {
    Fd fd(open_breakpoint(static_cast<pid_t>(w.tids[0]), w.region + 4096 * static_cast<uint64_t>(i)));
    ASSERT_TRUE(fd.valid()) << "breakpoint " << i << ": " << std::strerror(errno);
    taken.push_back(std::move(fd));
  }
  ASSERT_LT(open_breakpoint(static_cast<pid_t>(w.tids[0]), w.region + 4096 * 5), 0);
  ASSERT_EQ(errno, ENOSPC);

  CachelinesOptions o = for_pid(w.pid());
  o.duty_cycle = 0.05;
  o.atomic_windows = false;
  o.watch_symbols = {"g_false_shared"};
  auto c = start(o);
  ASSERT_TRUE(c);
  uint64_t target = w.lines.at("g_false_shared");
  auto lines = wait_for(*c, 20s, [&](const std::vector<LineReport>& ls) { return find_line(ls, target) != nullptr; });
  const LineReport* line = find_line(lines, target);
  ASSERT_NE(line, nullptr) << "the other threads should still be watched";
  // Only thread 1 could be watched: one writer alone is not sharing.
  EXPECT_EQ(line->threads, std::vector<uint32_t>{w.tids[1]});
  EXPECT_EQ(line->verdict, Verdict::none);
  collectors::CachelinesStatus s = c->status();
  EXPECT_GT(s.threads_busy, 0u);
  EXPECT_GT(s.windows, 0u);
  // The test's own breakpoints were never touched.
  for (const Fd& fd : taken) EXPECT_EQ(::fcntl(fd.get(), F_GETFD), FD_CLOEXEC);
  c.reset();

  taken.clear();
  CachelinesOptions again = o;
  again.recheck = 1h;
  auto c2 = start(again);
  ASSERT_TRUE(c2);
  lines = wait_for(*c2, 20s, [&](const std::vector<LineReport>& ls) {
    const LineReport* l = find_line(ls, target);
    return l && l->verdict == Verdict::false_sharing;
  });
  line = find_line(lines, target);
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(line->verdict, Verdict::false_sharing);
  EXPECT_EQ(c2->status().threads_busy, 0u);
  w.stop();
}

// WatchSession on this very process: threads created after the window opened
// are covered, re-aiming moves every thread's watchpoints, and closing the
// session frees the debug registers (a thread can take all four again).
TEST_F(CachelinesTest, WatchSessionCoversNewThreadsReaimsAndFreesRegisters) {
  need_watchpoints();
  using collectors::WatchSession;
  using collectors::WatchTarget;
  using collectors::WatchType;
  alignas(64) static volatile long words[8];
  std::unique_ptr<cacheline_bpf, void (*)(cacheline_bpf*)> skel(cacheline_bpf__open(), cacheline_bpf__destroy);
  ASSERT_TRUE(skel);
  bpf_program__set_autoload(skel->progs.cacheline_mem_sample, false);
  bpf_program__set_autoload(skel->progs.cacheline_cache_references, false);
  bpf_program__set_autoload(skel->progs.cacheline_cache_misses, false);
  bpf_program__set_autoload(skel->progs.cacheline_atomic_call, false);
  ASSERT_EQ(cacheline_bpf__load(skel.get()), 0);
  struct Hit {
    uint32_t tid;
    uint64_t addr;
    uint8_t access;
    uint32_t generation;
  };
  std::vector<Hit> hits;
  auto on_event = [](void* ctx, void* data, size_t) {
    auto* e = static_cast<cacheline_event*>(data);
    static_cast<std::vector<Hit>*>(ctx)->push_back({e->tid, e->addr, e->access, e->generation});
    return 0;
  };
  std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> ring(
      ring_buffer__new(bpf_map__fd(skel->maps.cacheline_events), on_event, &hits, nullptr), ring_buffer__free);
  ASSERT_TRUE(ring);

  size_t fds_before = perf_event_fds();
  std::atomic<int> phase{0};
  std::atomic<pid_t> late_tid{0};
  std::atomic<bool> stop{false};
  std::thread late;
  {
    std::vector<WatchTarget> first = {{reinterpret_cast<uint64_t>(&words[0]), 8, WatchType::write}};
    auto session = WatchSession::open(skel->progs.cacheline_watch_hit, ::getpid(), first);
    ASSERT_TRUE(session) << session.error().message();
    size_t armed = (*session)->armed_threads();
    (*session)->start();
    late = std::thread([&] {
      late_tid = static_cast<pid_t>(::syscall(SYS_gettid));
      while (!stop) {
        int p = phase.load();
        if (p == 1) words[0] = words[0] + 1;
        if (p == 2) words[1] = words[1] + 1;
        std::this_thread::sleep_for(1ms);
      }
    });
    while (!late_tid) std::this_thread::sleep_for(1ms);
    (*session)->cover_new_threads();
    EXPECT_EQ((*session)->armed_threads(), armed + 1);
    EXPECT_EQ(perf_event_fds(), fds_before + armed + 1);
    phase = 1;
    std::this_thread::sleep_for(30ms);
    skel->bss->watch_generation = 1;  // the same way the collector marks phases
    (*session)->reaim(std::vector<WatchTarget>{{reinterpret_cast<uint64_t>(&words[1]), 8, WatchType::read_write}}, [&] {
      ring_buffer__consume(ring.get());
      skel->bss->watch_generation = 2;
    });
    phase = 2;
    std::this_thread::sleep_for(30ms);
    (*session)->disable_all();
    phase = 0;
  }
  ring_buffer__consume(ring.get());
  stop = true;
  late.join();
  EXPECT_EQ(perf_event_fds(), fds_before);  // the session closed every breakpoint

  size_t first_phase = 0, second_phase = 0;
  for (const Hit& h : hits) {
    EXPECT_EQ(h.tid, static_cast<uint32_t>(late_tid.load()));
    if (h.addr == reinterpret_cast<uint64_t>(&words[0])) {
      ++first_phase;
      EXPECT_EQ(h.access, CL_ACCESS_STORE);
      EXPECT_LE(h.generation, 1u);
    } else if (h.addr == reinterpret_cast<uint64_t>(&words[1])) {
      ++second_phase;
      EXPECT_EQ(h.access, CL_ACCESS_READ_WRITE);
      EXPECT_EQ(h.generation, 2u);
    } else {
      ADD_FAILURE() << fmt::format("hit at {:#x}", h.addr);
    }
  }
  EXPECT_GT(first_phase, 5u);
  EXPECT_GT(second_phase, 5u);
  // All four registers of this thread are free again.
  std::vector<Fd> mine;
  for (int i = 0; i < 4; ++i) {
    mine.emplace_back(open_breakpoint(0, reinterpret_cast<uint64_t>(&words[i])));
    EXPECT_TRUE(mine.back().valid()) << std::strerror(errno);
  }
}

// The PMU path with the page-fault software event standing in for the PMU
// event: the same BPF program and aggregation, only the perf event differs.
// Thread i faults at region + p*4096 + 128 + 8*i of its pages p (p % 2 == i).
TEST_F(CachelinesTest, PageFaultStandInGivesPerLineAggregatesWithCorrectAddresses) {
  if (!features_->perf_event_programs) GTEST_SKIP() << "perf_event programs do not load here";
  std::unique_ptr<CachelinesCollector> c;
  Workload w = Workload::start("page_faults", 2, [&](pid_t pid) {
    CachelinesOptions o = for_pid(static_cast<uint32_t>(pid));
    o.sampling_event = collectors::page_fault_sampling(1);
    o.watchpoints = false;
    o.atomic_windows = false;
    o.globals = false;
    c = start(o);
  });
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->status().memory_sampling);
  std::this_thread::sleep_for(1500ms);
  uint64_t ops = w.stop();
  std::this_thread::sleep_for(300ms);  // the worker drains the ring buffer every 50 ms at most
  auto sampled = c->sampled_report(100000);
  size_t pages_seen = 0;
  uint64_t region_samples = 0;
  for (const auto& line : sampled) {
    if (line.line < w.region || line.line >= w.region + 64 * 4096) continue;
    uint64_t page = (line.line - w.region) / 4096;
    uint32_t thread = static_cast<uint32_t>(page % 2);
    EXPECT_EQ(line.line, w.region + page * 4096 + 128) << fmt::format("{:#x}", line.line);
    ASSERT_EQ(line.offsets.size(), 1u);
    EXPECT_EQ(line.offsets[0].offset, 8 * thread);
    EXPECT_EQ(line.offsets[0].threads, std::vector<uint32_t>{w.tids[thread]});
    EXPECT_EQ(line.threads, std::vector<uint32_t>{w.tids[thread]});
    EXPECT_EQ(line.stores + line.loads, 0u);  // page faults carry no data source
    ++pages_seen;
    region_samples += line.samples;
  }
  EXPECT_EQ(pages_seen, 64u);
  // Every write faulted (the page was dropped before it): one sample each.
  EXPECT_EQ(region_samples, ops);
  EXPECT_EQ(c->status().events_lost, 0u);
}

// Per-cgroup counters with stand-in events (page faults for "references",
// minor faults for "misses"): the counts land on the workload's cgroup.
TEST_F(CachelinesTest, CacheCountersPerCgroupWithStandInEvents) {
  if (!features_->perf_event_programs) GTEST_SKIP() << "perf_event programs do not load here";
  testing::TestCgroup group("/syncscope-test-cachecounters");
  CachelinesOptions o;
  o.watchpoints = false;
  o.atomic_windows = false;
  o.globals = false;
  collectors::PerfEventChoice refs = collectors::page_fault_sampling(1);
  refs.attr.sample_type = 0;
  collectors::PerfEventChoice misses = refs;
  misses.attr.config = PERF_COUNT_SW_PAGE_FAULTS_MIN;
  o.cache_references_event = refs;
  o.cache_misses_event = misses;
  auto c = start(o);
  ASSERT_TRUE(c);
  Workload w = Workload::start("page_faults", 2, [&](pid_t pid) { group.add(pid); });
  std::this_thread::sleep_for(1s);
  uint64_t ops = w.stop();
  std::this_thread::sleep_for(100ms);
  c->refresh(std::chrono::steady_clock::now());
  std::vector<metrics::Family> families;
  c->collect(families);
  double references = -1, minor = -1;
  for (const auto& f : families)
    for (const auto& s : f.samples)
      if (!s.labels.empty() && s.labels[0].second == group.path()) {
        if (f.name == "syncscope_cache_references_total") references = s.value;
        if (f.name == "syncscope_cache_misses_total") minor = s.value;
      }
  // Every write of the workload faulted; a few more faults are its own
  // (stack, stdio, thread start-up).
  EXPECT_GE(references, static_cast<double>(ops));
  EXPECT_LE(references, static_cast<double>(ops) + 2000);
  EXPECT_GE(minor, static_cast<double>(ops));
  testing::PromtoolResult promtool = testing::promtool_check_metrics(metrics::render_text(families));
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
}

// libatomic's out-of-line calls (a 24-byte std::atomic: __atomic_load and
// __atomic_compare_exchange, the address in argument 1) counted per address
// and thread inside bounded windows, and a user-named function (argument 0).
TEST_F(CachelinesTest, AtomicCallsCountedPerAddressInWindows) {
  if (!features_->uprobes) GTEST_SKIP() << "no uprobes here";
  {
    Workload w = Workload::start("big_atomic", 2);
    CachelinesOptions o = for_pid(w.pid());
    o.watchpoints = false;
    o.globals = false;
    o.duty_cycle = 0.1;
    o.atomics_every = 1s;
    auto c = start(o);
    ASSERT_TRUE(c);
    std::vector<collectors::AtomicReport> atomics;
    for (int i = 0; i < 100 && atomics.empty(); ++i) {
      std::this_thread::sleep_for(100ms);
      atomics = c->atomic_report(10);
    }
    ASSERT_FALSE(atomics.empty());
    EXPECT_EQ(atomics[0].address, w.globals.at("g_big_atomic"));
    EXPECT_NE(atomics[0].symbol.find("g_big_atomic"), std::string::npos) << atomics[0].symbol;
    EXPECT_NE(atomics[0].functions.find("__atomic_"), std::string::npos) << atomics[0].functions;
    EXPECT_EQ(atomics[0].threads.size(), 2u);
    EXPECT_GT(atomics[0].calls, 0u);
    EXPECT_LE(c->status().watched_fraction, 0.1 + 1e-6);
    c->refresh(std::chrono::steady_clock::now());
    std::vector<metrics::Family> families;
    c->collect(families);
    std::string text = metrics::render_text(families);
    EXPECT_NE(text.find(fmt::format("address=\"{:#x}\",symbol=\"g_big_atomic+0x0\"", w.globals.at("g_big_atomic"))),
              std::string::npos)
        << text;
    w.stop();
  }
  {
    Workload w = Workload::start("user_atomic", 2);
    CachelinesOptions o = for_pid(w.pid());
    o.watchpoints = false;
    o.globals = false;
    o.duty_cycle = 0.1;
    o.atomics_every = 1s;
    o.atomics = {{testing::build_path("workloads/falseshare"), "bump_counter", 0}};
    auto c = start(o);
    ASSERT_TRUE(c);
    std::vector<collectors::AtomicReport> atomics;
    for (int i = 0; i < 100 && atomics.empty(); ++i) {
      std::this_thread::sleep_for(100ms);
      atomics = c->atomic_report(10);
    }
    ASSERT_FALSE(atomics.empty());
    EXPECT_EQ(atomics[0].address, w.globals.at("g_user_counter"));
    EXPECT_EQ(atomics[0].functions, "bump_counter");
    w.stop();
  }
}

// Go's sync/atomic functions the compiler could not inline (called through
// function values): the address is in RAX (ABIInternal). Stripped too: the
// functions are then found through the pclntab.
TEST_F(CachelinesTest, GoAtomicCallsCountedThroughTheRegisterAbi) {
  if (!features_->uprobes) GTEST_SKIP() << "no uprobes here";
  for (const char* binary : {"workloads/goatomic", "workloads/goatomic.stripped"}) {
    SCOPED_TRACE(binary);
    Process go = Process::spawn({testing::build_path(binary)});
    ASSERT_TRUE(go.wait_for("ready"));
    auto addr_line = go.wait_for("counter addr=");
    ASSERT_TRUE(addr_line);
    uint64_t counter = std::stoull(addr_line->substr(addr_line->find('=') + 1), nullptr, 16);
    ASSERT_TRUE(go.write("go\n"));
    CachelinesOptions o = for_pid(static_cast<uint32_t>(go.pid()));
    o.watchpoints = false;
    o.globals = false;
    o.duty_cycle = 0.1;
    o.atomics_every = 1s;
    auto c = start(o);
    ASSERT_TRUE(c);
    const collectors::AtomicReport* found = nullptr;
    std::vector<collectors::AtomicReport> atomics;
    for (int i = 0; i < 100 && !found; ++i) {
      std::this_thread::sleep_for(100ms);
      atomics = c->atomic_report(10);
      for (const auto& a : atomics)
        if (a.address == counter) found = &a;
    }
    ASSERT_NE(found, nullptr);
    EXPECT_NE(found->functions.find("sync/atomic.AddInt64"), std::string::npos) << found->functions;
    EXPECT_GT(found->calls, 0u);
    EXPECT_GE(found->threads.size(), 1u);
    go.write("stop\n");
    EXPECT_TRUE(go.wait_for("done"));
  }
}

// The slowdown the target pays, against the configured duty cycle: printed
// (timing is not asserted on these shared machines); the accounting is. The
// padded workload with its hot lines named (--watch) puts every window on
// words a thread hammers, the worst case; its throughput does not depend on
// where the scheduler puts the two threads (false_sharing's does).
TEST_F(CachelinesTest, TargetSlowdownStaysNearTheDutyCycle) {
  need_watchpoints();
  Workload w = Workload::start("padded", 2);
  std::this_thread::sleep_for(500ms);
  w.rates();
  double cpu0 = w.cpu_seconds();
  std::this_thread::sleep_for(3s);
  std::vector<double> bare = w.rates();
  double bare_cpu = w.cpu_seconds() - cpu0;
  CachelinesOptions o = for_pid(w.pid());
  o.duty_cycle = 0.05;
  o.atomic_windows = false;
  o.watch_symbols = {"g_padded"};
  o.recheck = 0s;  // keep watching the same two hot lines
  auto c = start(o);
  ASSERT_TRUE(c);
  // The collector's start-up (ELF symbols of every module, the heat scan)
  // takes CPU from the workload on a 2-CPU machine: not the watchpoints' cost.
  std::this_thread::sleep_for(2s);
  w.rates();
  double cpu1 = w.cpu_seconds();
  std::this_thread::sleep_for(3s);
  std::vector<double> watched = w.rates();
  double watched_cpu = w.cpu_seconds() - cpu1;
  collectors::CachelinesStatus s = c->status();
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0 : sum / static_cast<double>(v.size());
  };
  // One of the two threads traps on every access during a window. Ops per
  // CPU-second do not depend on what else the machine runs; ops per second do.
  double per_cpu_bare = bare_cpu > 0 ? mean(bare) * 3 / bare_cpu : 0;
  double per_cpu_watched = watched_cpu > 0 ? mean(watched) * 3 / watched_cpu : 0;
  std::printf(
      "throughput bare %.0f ops/s, watched %.0f ops/s: ratio %.3f; per CPU-second ratio %.3f (expected about %.3f); "
      "duty cycle %.3f, watched fraction %.4f\n",
      mean(bare), mean(watched), mean(bare) > 0 ? mean(watched) / mean(bare) : 0,
      per_cpu_bare > 0 ? per_cpu_watched / per_cpu_bare : 0, 1 - o.duty_cycle / 2, o.duty_cycle, s.watched_fraction);
  EXPECT_GE(s.windows, 5u);
  EXPECT_LE(s.watched_fraction, o.duty_cycle + 1e-6);
  EXPECT_GT(s.watched_fraction, o.duty_cycle / 2);  // and the budget was used
  w.stop();
}

}  // namespace
}  // namespace syncscope
