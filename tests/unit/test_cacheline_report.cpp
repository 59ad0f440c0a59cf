// `syncscope trace falseshare` renderings golden-tested, the PMU event
// encoding from sysfs descriptions, and the globals heat scan over a fake
// memory reader.
#include <gtest/gtest.h>
#include <linux/perf_event.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agent/collectors/cacheline_candidates.h"
#include "agent/collectors/cacheline_dwarf.h"
#include "agent/collectors/cacheline_globals.h"
#include "agent/collectors/cacheline_pmu.h"
#include "agent/collectors/cacheline_report.h"

// A global with a known layout for the DWARF test: this binary is built -g.
struct DwarfProbeInner {
  int a;
  int b[3];
};
struct DwarfProbe {
  long head;                  // 0
  DwarfProbeInner inner[2];   // 8, 24
  std::atomic<long> counter;  // 40
  std::mutex lock;            // 48
  char tail;                  // 88
};
DwarfProbe g_dwarf_probe;

namespace syncscope::collectors {
namespace {

LineReport false_shared_line() {
  LineReport r;
  r.pid = 4242;
  r.comm = "server";
  r.cgroup = "/system.slice/api.service";
  r.line = 0x55d0c0a04040;
  r.origin = "global";
  r.verdict = Verdict::false_sharing;
  r.accesses_per_second = 190000;
  r.hits = 3800;
  r.watched_ms = 40;
  r.threads = {4243, 4244};
  r.cpus = {0, 1};
  r.offsets = {{0, 8, {4243}, 1000, 950, "g_stats+0x0", "g_stats.hits[0]"},
               {8, 8, {4244}, 900, 950, "g_stats+0x8", ""}};
  r.sites = {{0x55d0c0a01156, 3800, "worker+0x56 (server)"}};
  return r;
}

FalseshareInfo info() {
  FalseshareInfo i;
  i.pid = 4242;
  i.duration_s = 10;
  i.path = "hardware watchpoints (no hardware PMU)";
  i.window_ms = 20;
  i.duty_cycle = 0.05;
  i.watched_fraction = 0.049;
  i.windows = 12;
  return i;
}

TEST(FalseshareFormat, LineSymbolJoinsDistinctObjects) {
  std::vector<OffsetReport> offsets = {
      {0, 8, {}, 0, 0, "g_a+0x0"}, {8, 8, {}, 0, 0, "g_a+0x8"}, {16, 8, {}, 0, 0, "g_b+0x0"}};
  EXPECT_EQ(line_symbol(offsets), "g_a, g_b");
  EXPECT_EQ(line_symbol(std::vector<OffsetReport>{{0, 8, {}, 0, 0, "heap"}}), "heap");
  EXPECT_EQ(line_symbol(std::vector<OffsetReport>{}), "?");
  EXPECT_EQ(hex_address(0x55d0c0a04040), "0x55d0c0a04040");
}

TEST(FalseshareFormat, JsonCarriesLinesOffsetsAndVerdicts) {
  std::vector<LineReport> lines = {false_shared_line()};
  SampledLineReport sampled;
  sampled.pid = 4242;
  sampled.line = 0x7f0000001000;
  sampled.symbol = "heap";
  sampled.samples = 3;
  sampled.stores = 3;
  sampled.offsets = {{128 % 64, 1, {4243}, 3, 0, "heap"}};
  AtomicReport atomic{4242, 0x55d0c0a04100, "g_big+0x0", "__atomic_load", 120, 6000, {4243, 4244}};
  nlohmann::json expected = nlohmann::json::parse(R"json({
    "pid": 4242, "duration_s": 10.0, "path": "hardware watchpoints (no hardware PMU)", "pmu_available": false,
    "window_ms": 20.0, "duty_cycle": 0.05, "watched_fraction": 0.049, "windows": 12, "threads_skipped_busy": 0,
    "events_lost": 0, "target_exited": false,
    "lines": [{
      "pid": 4242, "comm": "server", "cgroup": "/system.slice/api.service", "line": "0x55d0c0a04040",
      "symbol": "g_stats", "origin": "global", "verdict": "false_sharing",
      "fix": "pad to 64 bytes / alignas(64): give each thread's field its own cache line",
      "accesses_per_second": 190000.0, "hits": 3800, "watched_ms": 40.0, "threads": [4243, 4244], "cpus": [0, 1],
      "offsets": [
        {"offset": 0, "len": 8, "threads": 1, "tids": [4243], "writes": 1000, "accesses": 950, "symbol": "g_stats+0x0",
         "field": "g_stats.hits[0]"},
        {"offset": 8, "len": 8, "threads": 1, "tids": [4244], "writes": 900, "accesses": 950, "symbol": "g_stats+0x8",
         "field": ""}],
      "sites": [{"ip": "0x55d0c0a01156", "hits": 3800, "where": "worker+0x56 (server)"}]}],
    "sampled_lines": [{
      "pid": 4242, "line": "0x7f0000001000", "symbol": "heap", "verdict": "none", "samples": 3, "loads": 0,
      "stores": 3, "hitm": 0, "threads": [], "cpus": [],
      "offsets": [{"offset": 0, "len": 1, "threads": 1, "tids": [4243], "writes": 3, "accesses": 0, "symbol": "heap",
                   "field": ""}]}],
    "atomics": [{"pid": 4242, "address": "0x55d0c0a04100", "symbol": "g_big+0x0", "functions": "__atomic_load",
                 "calls": 120, "calls_per_second": 6000.0, "threads": [4243, 4244]}]
  })json");
  lines[0].symbol = "g_stats";
  EXPECT_EQ(falseshare_json(lines, std::vector<SampledLineReport>{sampled}, std::vector<AtomicReport>{atomic}, info()),
            expected);
}

TEST(FalseshareFormat, Table) {
  LineReport line = false_shared_line();
  line.symbol = "g_stats";
  std::vector<LineReport> lines = {line};
  std::string table = render_falseshare_table(lines, {}, {}, info());
  EXPECT_EQ(table,
            "path: hardware watchpoints (no hardware PMU); 12 windows of 20 ms, watched 4.90% of the time (duty cycle "
            "5.00%)\n"
            "\n"
            "0x55d0c0a04040 g_stats  false_sharing  190000 accesses/s while watched  threads 4243,4244  process "
            "server[4242]\n"
            "  offset  len   threads      writes    accesses  tids                      symbol\n"
            "   +0x00    8         1        1000         950  4243                      g_stats.hits[0]\n"
            "   +0x08    8         1         900         950  4244                      g_stats+0x8\n"
            "  site worker+0x56 (server) (3800 hits)\n"
            "  fix: pad to 64 bytes / alignas(64): give each thread's field its own cache line\n");
  EXPECT_EQ(render_falseshare_table({}, {}, {}, info()),
            "path: hardware watchpoints (no hardware PMU); 12 windows of 20 ms, watched 4.90% of the time (duty cycle "
            "5.00%)\n"
            "(no shared cache lines found)\n");
}

// --- PMU events from sysfs -----------------------------------------------------------------

TEST(CachelinePmu, EncodesSysfsAliasesIntoAttrBits) {
  std::map<std::string, std::string> formats = {
      {"event", "config:0-7"}, {"umask", "config:8-15"}, {"ldlat", "config1:0-15"}, {"split", "config:32-35,60-63"}};
  auto attr = encode_pmu_event("event=0xcd,umask=0x1,ldlat=3", formats, 4, {{"ldlat", 30}});
  ASSERT_TRUE(attr) << attr.error().message();
  EXPECT_EQ(attr->type, 4u);
  EXPECT_EQ(attr->config, 0x01cdULL);
  EXPECT_EQ(attr->config1, 30ULL);
  auto split = encode_pmu_event("split=0xab", formats, 4);
  ASSERT_TRUE(split);
  EXPECT_EQ(split->config, (0xbULL << 32) | (0xaULL << 60));
  EXPECT_FALSE(encode_pmu_event("nosuch=1", formats, 4));
  EXPECT_FALSE(encode_pmu_event("event=zz", formats, 4));
}

class FakeSysfs {
 public:
  FakeSysfs() : root_(std::filesystem::temp_directory_path() / fmt::format("syncscope-pmu-{}", ::getpid())) {
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FakeSysfs() { std::filesystem::remove_all(root_); }
  void write(const std::string& relative, const std::string& text) {
    std::filesystem::path p = root_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  std::string root() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

TEST(CachelinePmu, ChoosesIntelLoadLatencyAndStores) {
  FakeSysfs sysfs;
  sysfs.write("cpu/type", "4");
  sysfs.write("cpu/events/mem-loads", "event=0xcd,umask=0x1,ldlat=3");
  sysfs.write("cpu/events/mem-stores", "event=0xd0,umask=0x82");
  sysfs.write("cpu/format/event", "config:0-7");
  sysfs.write("cpu/format/umask", "config:8-15");
  sysfs.write("cpu/format/ldlat", "config1:0-15");
  MemorySamplingPlan plan = choose_memory_sampling(sysfs.root(), {.period = 1000, .load_latency_cycles = 50});
  ASSERT_EQ(plan.events.size(), 2u) << plan.reason;
  EXPECT_EQ(plan.events[0].attr.config, 0x01cdULL);
  EXPECT_EQ(plan.events[0].attr.config1, 50ULL);
  EXPECT_EQ(plan.events[0].attr.sample_type & (PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC),
            static_cast<uint64_t>(PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC));
  EXPECT_EQ(plan.events[0].attr.precise_ip, 2u);
  EXPECT_EQ(plan.events[1].attr.config, 0x82d0ULL);
  EXPECT_EQ(plan.events[1].attr.sample_period, 1000u);
}

TEST(CachelinePmu, ChoosesAmdIbsOrSaysWhyNot) {
  FakeSysfs amd;
  amd.write("cpu/type", "4");
  amd.write("ibs_op/type", "11");
  MemorySamplingPlan plan = choose_memory_sampling(amd.root(), {.period = 20011});
  ASSERT_EQ(plan.events.size(), 1u);
  EXPECT_EQ(plan.events[0].attr.type, 11u);
  EXPECT_EQ(plan.events[0].attr.sample_period % 16, 0u);

  FakeSysfs vm;
  vm.write("cpu/type", "4");
  vm.write("software/type", "1");
  MemorySamplingPlan none = choose_memory_sampling(vm.root());
  EXPECT_FALSE(none.available());
  EXPECT_NE(none.reason.find("mem-loads"), std::string::npos) << none.reason;
}

TEST(CachelinePmu, PageFaultStandInCarriesAddresses) {
  PerfEventChoice pf = page_fault_sampling(1);
  EXPECT_EQ(pf.attr.type, static_cast<uint32_t>(PERF_TYPE_SOFTWARE));
  EXPECT_EQ(pf.attr.config, static_cast<uint64_t>(PERF_COUNT_SW_PAGE_FAULTS));
  EXPECT_TRUE(pf.attr.sample_type & PERF_SAMPLE_ADDR);
  // Only the event differs from the PMU plan: the same sample format.
  FakeSysfs amd;
  amd.write("ibs_op/type", "11");
  EXPECT_EQ(choose_memory_sampling(amd.root()).events[0].attr.sample_type, pf.attr.sample_type);
}

// --- globals heat --------------------------------------------------------------------------

class FakeMemory final : public MemoryReader {
 public:
  std::map<uint64_t, uint8_t> bytes;  // sparse; unset bytes read as 0
  uint64_t unreadable_from = UINT64_MAX;
  Result<void> read(pid_t, uint64_t addr, std::span<uint8_t> out) override {
    if (addr >= unreadable_from) return fail("unmapped", EFAULT);
    for (size_t i = 0; i < out.size(); ++i) {
      auto it = bytes.find(addr + i);
      out[i] = it == bytes.end() ? 0 : it->second;
    }
    return {};
  }
};

TEST(CachelineGlobals, HeatCountsChangedLinesAndOrdersTheRotation) {
  std::vector<DataObject> objects = {
      {0x10000, 16, "g_counters", "g_counters", true},  // one line, changes every time
      {0x10040, 200, "g_table", "g_table", true},       // four lines, the third changes once
      {0x20000, 8, "libc_thing", "libc_thing", false},  // another module: changes twice
      {0x30000, 8, "libc_quiet", "libc_quiet", false},  // another module: never changes
  };
  FakeMemory memory;
  int round = 0;
  auto sleep = [&](std::chrono::milliseconds) {
    ++round;
    memory.bytes[0x10008] = static_cast<uint8_t>(round);
    if (round == 2) memory.bytes[0x100c0] = 1;
    if (round <= 2) memory.bytes[0x20000] = static_cast<uint8_t>(round);
  };
  HeatOptions options;
  options.snapshots = 5;
  auto heat = line_heat(1, objects, memory, options, sleep);
  EXPECT_EQ(heat.at(0x10000), 4u);
  EXPECT_EQ(heat.at(0x10040), 0u);
  EXPECT_EQ(heat.at(0x100c0), 1u);
  EXPECT_EQ(heat.at(0x20000), 2u);
  EXPECT_EQ(heat.at(0x30000), 0u);
  std::vector<uint64_t> order = rotation_order(objects, heat);
  // Changed lines by changes, then the main executable's quiet lines; the
  // quiet line of the other module is left out.
  EXPECT_EQ(order, (std::vector<uint64_t>{0x10000, 0x20000, 0x100c0, 0x10040, 0x10080, 0x10100}));
}

TEST(CachelineGlobals, UnreadableRangesAndBudgetsAreLeftOut) {
  std::vector<DataObject> objects = {{0x10000, 64, "a", "a", true}, {0x90000, 64, "b", "b", false}};
  FakeMemory memory;
  memory.unreadable_from = 0x90000;
  auto heat = line_heat(1, objects, memory, HeatOptions{}, [](std::chrono::milliseconds) {});
  EXPECT_TRUE(heat.contains(0x10000));
  EXPECT_FALSE(heat.contains(0x90000));
  HeatOptions tiny;
  tiny.max_bytes = 64;  // room for the main executable's line only
  memory.unreadable_from = UINT64_MAX;
  auto cut = line_heat(1, objects, memory, tiny, [](std::chrono::milliseconds) {});
  EXPECT_EQ(cut.size(), 1u);
  EXPECT_TRUE(cut.contains(0x10000));
}

TEST(CachelineDwarf, NamesTheMemberAtAnOffset) {
  static_assert(offsetof(DwarfProbe, counter) == 40 && offsetof(DwarfProbe, lock) == 48 &&
                offsetof(DwarfProbe, tail) == 88);
  g_dwarf_probe.head = 1;  // used, so it stays in the binary
  auto fields = DataFields::open("/proc/self/exe");
  ASSERT_TRUE(fields) << fields.error().message();
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 0), ".head");
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 4), ".head");
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 12), ".inner[0].b[0]");
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 32), ".inner[1].b[1]");
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 44), ".counter");  // std::atomic<long>: no deeper
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 56), ".lock");     // std::mutex's _M_mutex is not shown
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 88), ".tail");
  EXPECT_EQ(fields->get()->field_at("g_dwarf_probe", 90), std::nullopt);  // padding
  EXPECT_EQ(fields->get()->field_at("no_such_variable", 0), std::nullopt);
}

TEST(CachelineDwarf, AFileWithoutDwarfIsAnError) { EXPECT_FALSE(DataFields::open("/nonexistent/file")); }

TEST(CachelineCandidates, ContendedLocksBecomeHintsByKind) {
  EXPECT_EQ(candidate_origin(LockKind::pthread_mutex), CandidateOrigin::lock);
  EXPECT_EQ(candidate_origin(LockKind::futex_other), CandidateOrigin::futex);
  EXPECT_EQ(candidate_origin(LockKind::go_mutex), CandidateOrigin::go_mutex);
  EXPECT_EQ(candidate_origin(LockKind::go_rwmutex), CandidateOrigin::go_mutex);
  EXPECT_EQ(to_string(CandidateOrigin::go_mutex), "go_mutex");
}

TEST(CachelineGlobals, SymbolMatchingAcceptsRawDemangledAndUnqualifiedNames) {
  DataObject o{0x1000, 8, "(anonymous namespace)::g_stats", "_ZN12_GLOBAL__N_17g_statsE", true};
  EXPECT_TRUE(symbol_matches(o, "g_stats"));
  EXPECT_TRUE(symbol_matches(o, "_ZN12_GLOBAL__N_17g_statsE"));
  EXPECT_TRUE(symbol_matches(o, "(anonymous namespace)::g_stats"));
  EXPECT_FALSE(symbol_matches(o, "stats"));
  EXPECT_FALSE(symbol_matches(o, "g_stat"));
}

}  // namespace
}  // namespace syncscope::collectors
