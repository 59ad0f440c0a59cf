// The goroutine reader on synthetic memory images: allgs found in decoded
// code, gs read and classified, system goroutines left out as
// runtime.NumGoroutine leaves them out, top-K creators with "other", the
// exported families, and process_vm_readv on this process itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent/collectors/goroutines.h"
#include "probes/go/runtime_reader.h"

namespace syncscope::probes::go {
namespace {

// `mov r64, [rip + target]` at `at` (7 bytes): REX.W 8B modrm(00 reg 101) disp32.
void mov_rip(std::vector<uint8_t>& code, uint64_t base, uint8_t reg, uint64_t target) {
  const uint64_t at = base + code.size();
  const auto disp = static_cast<int32_t>(target - (at + 7));
  code.insert(code.end(), {0x48, 0x8b, static_cast<uint8_t>(0x05 | (reg << 3))});
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(static_cast<uint32_t>(disp) >> (8 * i)));
}

// `lea rax, [rip + target]` (7 bytes).
void lea_rip(std::vector<uint8_t>& code, uint64_t base, uint64_t target) {
  const uint64_t at = base + code.size();
  const auto disp = static_cast<int32_t>(target - (at + 7));
  code.insert(code.end(), {0x48, 0x8d, 0x05});
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(static_cast<uint32_t>(disp) >> (8 * i)));
}

TEST(FindSliceHeaderLoad, ForEachGShape) {
  // lock(&allglock); ptr, len := allgs.ptr, allgs.len; …
  constexpr uint64_t text = 0x435dc0, allglock = 0x589b98, allgs = 0x55ac80;
  std::vector<uint8_t> code = {0x49, 0x3b, 0x66, 0x10};  // cmp rsp, [r14+0x10]
  lea_rip(code, text, allglock);
  code.insert(code.end(), {0xe8, 0, 0, 0, 0});  // call
  mov_rip(code, text, 1, allgs);      // mov rcx, [allgs]
  mov_rip(code, text, 2, allgs + 8);  // mov rdx, [allgs+8]
  code.push_back(0xc3);
  EXPECT_EQ(find_slice_header_load(code, text), allgs);
}

TEST(FindSliceHeaderLoad, AppendLoadsLenAndCapFirst) {
  // allgs = append(allgs, gp): len and cap are loaded before the pointer.
  constexpr uint64_t text = 0x435c40, allgs = 0x55ac80;
  std::vector<uint8_t> code;
  mov_rip(code, text, 1, allgs + 8);
  mov_rip(code, text, 2, allgs + 16);
  mov_rip(code, text, 0, allgs);
  EXPECT_EQ(find_slice_header_load(code, text), allgs);
}

TEST(FindSliceHeaderLoad, NoAdjacentLoads) {
  constexpr uint64_t text = 0x1000;
  std::vector<uint8_t> code;
  mov_rip(code, text, 1, 0x5000);
  mov_rip(code, text, 2, 0x5010);
  lea_rip(code, text, 0x5008);
  code.insert(code.end(), {0xff, 0xff, 0xff});  // garbage is stepped over
  EXPECT_EQ(find_slice_header_load(code, text), std::nullopt);
}

// A process image: allgs at 0x1000, its array at 0x2000, gs from 0x10000.
struct FakeProcess {
  RuntimeOffsets offsets = *offsets_for_version(GoVersion{1, 19, 8, "go1.19.8"});
  ImageMemory memory;
  RuntimeLayout layout{0x1000, 0, offsets};
  std::vector<uint64_t> gs;

  struct G {
    int64_t goid;
    uint32_t status;
    uint8_t waitreason = 0;
    uint64_t gopc = 0;
    uint64_t startpc = 0;
  };
  void build(const std::vector<G>& goroutines, bool null_entry = false) {
    memory.map(0x1000, std::vector<std::byte>(24));
    const size_t n = goroutines.size() + (null_entry ? 1 : 0);
    memory.map(0x2000, std::vector<std::byte>(n * 8));
    memory.poke(0x1000, 0x2000);
    memory.poke(0x1008, n);
    memory.poke(0x1010, n + 4);
    size_t slot = 0;
    for (size_t i = 0; i < goroutines.size(); ++i, ++slot) {
      if (null_entry && slot == 1) ++slot;  // allgs[1] = nil
      const uint64_t g = 0x10000 + i * 0x400;
      gs.push_back(g);
      memory.map(g, std::vector<std::byte>(0x400));
      memory.poke(0x2000 + slot * 8, g);
      memory.poke(g + offsets.g_goid, static_cast<uint64_t>(goroutines[i].goid));
      memory.poke(g + offsets.g_atomicstatus, goroutines[i].status, 4);
      memory.poke(g + offsets.g_waitreason, goroutines[i].waitreason, 1);
      memory.poke(g + offsets.g_gopc, goroutines[i].gopc);
      memory.poke(g + offsets.g_startpc, goroutines[i].startpc);
    }
  }
};

// Symbols: functions at fixed pcs, wait reasons of go1.19.
class TableSymbols final : public GoroutineSymbols {
 public:
  std::map<uint64_t, std::string> functions{{0x100, "runtime.main"},     {0x200, "runtime.bgsweep"},
                                            {0x300, "main.leakBatch"},   {0x400, "main.leakyWorker"},
                                            {0x500, "main.serve"},       {0x600, "net/http.(*Server).Serve"}};
  std::string function_at(uint64_t pc) const override {
    auto it = functions.find(pc & ~0xffULL);
    return it == functions.end() ? "" : it->second;
  }
  WaitClass wait_class(uint8_t waitreason) const override {
    static const auto names = wait_reason_names_for_version(GoVersion{1, 19, 8, "go1.19.8"});
    return classify_wait_reason(waitreason < names.size() ? names[waitreason] : "");
  }
};

constexpr uint8_t kChanReceive = 14, kSemacquire = 18, kGcWorkerIdle = 24, kIoWait = 2;

TEST(ReadGoroutines, ReadsEveryGAndSkipsNilEntries) {
  FakeProcess p;
  p.build({{1, kGrunning, 0, 0x110, 0x100},
           {2, kGwaiting, kGcWorkerIdle, 0x110, 0x200},
           {7, kGwaiting, kChanReceive, 0x310, 0x400},
           {9, kGdead, 0, 0x310, 0x400}},
          /*null_entry=*/true);
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->allglen, 5u);
  ASSERT_EQ(scan->goroutines.size(), 4u);
  EXPECT_EQ(scan->goroutines[2].goid, 7);
  EXPECT_EQ(scan->goroutines[2].status, kGwaiting);
  EXPECT_EQ(scan->goroutines[2].waitreason, kChanReceive);
  EXPECT_EQ(scan->goroutines[2].gopc, 0x310u);
  EXPECT_EQ(scan->goroutines[2].startpc, 0x400u);
  EXPECT_EQ(scan->goroutines[2].g, p.gs[2]);
  EXPECT_EQ(scan->unreadable, 0u);
  EXPECT_TRUE(validate_first_scan(*scan, AllgsLocation{0x1000, "test"}));
}

TEST(ReadGoroutines, NeighbouringGsAreReadInOnePiece) {
  // 100 gs packed 416 bytes apart in one heap span, listed out of order.
  FakeProcess p;
  constexpr uint64_t kSpan = 0x100000, kSize = 416, kCount = 100;
  p.memory.map(0x1000, std::vector<std::byte>(24));
  p.memory.map(0x2000, std::vector<std::byte>(kCount * 8));
  p.memory.map(kSpan, std::vector<std::byte>(kCount * kSize));
  p.memory.poke(0x1000, 0x2000);
  p.memory.poke(0x1008, kCount);
  p.memory.poke(0x1010, kCount);
  for (uint64_t i = 0; i < kCount; ++i) {
    const uint64_t g = kSpan + ((i * 37) % kCount) * kSize;
    p.memory.poke(0x2000 + i * 8, g);
    p.memory.poke(g + p.offsets.g_goid, i + 1);
    p.memory.poke(g + p.offsets.g_atomicstatus, kGrunnable, 4);
  }
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_TRUE(scan);
  ASSERT_EQ(scan->goroutines.size(), kCount);
  for (uint64_t i = 0; i < kCount; ++i) EXPECT_EQ(scan->goroutines[i].goid, static_cast<int64_t>(i + 1));
  // header, array, header again, then 100 * 416 bytes in 64 KiB pieces.
  EXPECT_LE(scan->read_calls, 3u + 1u) << "gs next to each other should be read together";
}

TEST(ReadGoroutines, AGFreedMidScanIsCountedNotFatal) {
  FakeProcess p;
  p.build({{1, kGrunning, 0, 0, 0x100}, {2, kGrunnable, 0, 0x310, 0x400}});
  p.memory.poke(0x2008, 0xdead0000);  // points nowhere
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->goroutines.size(), 1u);
  EXPECT_EQ(scan->unreadable, 1u);
}

TEST(ReadGoroutines, RefusesWhatIsNotASlice) {
  FakeProcess p;
  p.build({{1, kGrunning, 0, 0, 0x100}});
  p.memory.poke(0x1008, 100);  // len 100 > cap 5
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_FALSE(scan);
  EXPECT_NE(scan.error().message().find("0x1000"), std::string::npos) << scan.error().message();
  EXPECT_NE(scan.error().message().find("not a []*g"), std::string::npos);
}

TEST(ReadGoroutines, WrongGuessFailsValidation) {
  FakeProcess p;
  p.build({{42, kGrunning, 0, 0, 0x100}});
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_TRUE(scan);
  auto valid = validate_first_scan(*scan, AllgsLocation{0x1000, "decoded runtime.forEachG"});
  ASSERT_FALSE(valid);
  EXPECT_NE(valid.error().message().find("goid 42"), std::string::npos) << valid.error().message();
}

TEST(ReadGoroutines, ExitedProcessIsESRCH) {
  FakeProcess p;
  p.build({{1, kGrunning, 0, 0, 0x100}});
  p.memory.exited = true;
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_FALSE(scan);
  EXPECT_EQ(scan.error().sys_errno(), ESRCH);
}

TEST(GoroutineState, StatusAndWaitClass) {
  EXPECT_EQ(goroutine_state(kGrunning, WaitClass::none), GoroutineState::running);
  EXPECT_EQ(goroutine_state(kGrunning | kGscan, WaitClass::none), GoroutineState::running);
  EXPECT_EQ(goroutine_state(kGrunnable, WaitClass::none), GoroutineState::runnable);
  EXPECT_EQ(goroutine_state(kGpreempted, WaitClass::none), GoroutineState::runnable);
  EXPECT_EQ(goroutine_state(kGcopystack, WaitClass::none), GoroutineState::running);
  EXPECT_EQ(goroutine_state(kGsyscall, WaitClass::none), GoroutineState::syscall);
  EXPECT_EQ(goroutine_state(kGwaiting | kGscan, WaitClass::chan), GoroutineState::waiting_chan);
  EXPECT_EQ(goroutine_state(kGwaiting, WaitClass::mutex), GoroutineState::waiting_sync);
  EXPECT_EQ(goroutine_state(kGwaiting, WaitClass::io), GoroutineState::waiting_io);
  EXPECT_EQ(goroutine_state(kGwaiting, WaitClass::none), GoroutineState::waiting_other);
  EXPECT_EQ(goroutine_state(kGdead, WaitClass::none), std::nullopt);
  EXPECT_EQ(goroutine_state(kGidle, WaitClass::none), std::nullopt);
  EXPECT_EQ(goroutine_state(77, WaitClass::none), std::nullopt);
}

TEST(Summarize, CountsUserGoroutinesLikeNumGoroutine) {
  FakeProcess p;
  p.build({{1, kGwaiting, kSemacquire, 0x110, 0x100},      // runtime.main: a user goroutine
           {2, kGwaiting, kGcWorkerIdle, 0x110, 0x200},    // runtime.bgsweep: system
           {3, kGwaiting, kChanReceive, 0x310, 0x400},
           {4, kGwaiting, kChanReceive, 0x310, 0x400},
           {5, kGwaiting, kChanReceive, 0x310, 0x400},
           {6, kGwaiting, kIoWait, 0x510, 0x600},
           {8, kGrunnable, 0, 0x510, 0x600},
           {11, kGdead, 0, 0x310, 0x400}});
  auto scan = read_goroutines(p.memory, p.layout);
  ASSERT_TRUE(scan);
  TableSymbols symbols;
  GoroutineSummary s = summarize(*scan, symbols);
  EXPECT_EQ(s.live, 6u);
  EXPECT_EQ(s.system, 1u);
  EXPECT_EQ(s.max_goid, 11);
  EXPECT_EQ(s.by_state[static_cast<size_t>(GoroutineState::waiting_chan)], 3u);
  EXPECT_EQ(s.by_state[static_cast<size_t>(GoroutineState::waiting_sync)], 1u);
  EXPECT_EQ(s.by_state[static_cast<size_t>(GoroutineState::waiting_io)], 1u);
  EXPECT_EQ(s.by_state[static_cast<size_t>(GoroutineState::runnable)], 1u);
  EXPECT_EQ(s.by_creator.at("main.leakBatch"), 3u);
  EXPECT_EQ(s.by_creator.at("main.serve"), 2u);
  EXPECT_EQ(s.by_creator.at("runtime.main"), 1u);
}

TEST(TopCreators, KeepsKAndSumsTheRest) {
  std::map<std::string, uint64_t> by{{"a", 5}, {"b", 9}, {"c", 1}, {"d", 2}};
  auto rows = top_creators(by, 2);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::pair<std::string, uint64_t>{"b", 9}));
  EXPECT_EQ(rows[1], (std::pair<std::string, uint64_t>{"a", 5}));
  EXPECT_EQ(rows[2], (std::pair<std::string, uint64_t>{"other", 3}));
  EXPECT_EQ(top_creators(by, 4).size(), 4u);  // nothing left over: no "other" row
}

TEST(ProcessMemory, ReadsThisProcessAndFailsUnmappedPiecesAlone) {
  static const char kText[] = "goroutines";
  uint64_t value = 0x1122334455667788;
  std::array<std::byte, 8> a{}, b{}, c{};
  std::array<RemoteRead, 3> reads = {RemoteRead{reinterpret_cast<uint64_t>(&value), a},
                                     RemoteRead{8, b},  // the zero page is never mapped
                                     RemoteRead{reinterpret_cast<uint64_t>(kText), c}};
  ProcessMemory memory(::getpid());
  ASSERT_TRUE(memory.read(reads));
  EXPECT_TRUE(reads[0].ok);
  EXPECT_FALSE(reads[1].ok);
  EXPECT_TRUE(reads[2].ok);
  uint64_t got = 0;
  std::memcpy(&got, a.data(), 8);
  EXPECT_EQ(got, value);
  EXPECT_EQ(std::memcmp(c.data(), kText, 8), 0);
}

TEST(ProcessMemory, GoneProcessIsESRCH) {
  // A pid above pid_max never exists.
  ProcessMemory memory(0x7ffffff0);
  std::array<std::byte, 8> buf{};
  std::array<RemoteRead, 1> reads = {RemoteRead{0x1000, buf}};
  auto r = memory.read(reads);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno(), ESRCH);
}

TEST(GoroutineFamilies, BoundedLabelsAndOtherRows) {
  collectors::GoProcessSample a;
  a.identity = {10, "api", "/usr/bin/api", "/system.slice/api.service"};
  a.process_label = "api[10]";
  a.summary.live = 4;
  a.summary.by_state[static_cast<size_t>(GoroutineState::waiting_chan)] = 3;
  a.summary.by_state[static_cast<size_t>(GoroutineState::running)] = 1;
  a.summary.by_creator = {{"main.a", 2}, {"main.b", 1}, {"main.c", 1}};
  collectors::GoProcessSample b = a;
  b.identity.pid = 11;
  b.identity.cgroup = "/x";
  b.process_label = "other";
  collectors::GoProcessSample c = b;
  c.identity.pid = 12;
  c.identity.cgroup = "/y";
  std::vector<metrics::Family> out;
  collectors::goroutine_families({a, b, c}, {{{"/system.slice/api.service", "api[10]"}, 40}, {{"other", "other"}, 90}}, 1, out);
  ASSERT_EQ(out.size(), 3u);
  auto value = [&](const metrics::Family& f, const metrics::Labels& labels) -> std::optional<double> {
    for (const auto& s : f.samples)
      if (s.labels == labels) return s.value;
    return std::nullopt;
  };
  EXPECT_EQ(out[0].name, "syncscope_goroutines");
  EXPECT_EQ(out[0].samples.size(), 2 * kGoroutineStateCount);  // every state of both rows, zeros included
  EXPECT_EQ(value(out[0], {{"cgroup", "/system.slice/api.service"}, {"process", "api[10]"}, {"state", "waiting_chan"}}), 3);
  EXPECT_EQ(value(out[0], {{"cgroup", "other"}, {"process", "other"}, {"state", "waiting_chan"}}), 6);
  EXPECT_EQ(out[1].name, "syncscope_goroutines_created_total");
  EXPECT_EQ(value(out[1], {{"cgroup", "other"}, {"process", "other"}}), 90);
  EXPECT_EQ(out[2].name, "syncscope_goroutines_by_creator");
  EXPECT_EQ(value(out[2], {{"cgroup", "/system.slice/api.service"}, {"process", "api[10]"}, {"function", "main.a"}}), 2);
  EXPECT_EQ(value(out[2], {{"cgroup", "/system.slice/api.service"}, {"process", "api[10]"}, {"function", "other"}}), 2);
  EXPECT_EQ(value(out[2], {{"cgroup", "other"}, {"process", "other"}, {"function", "main.a"}}), 4);
  EXPECT_EQ(out[2].samples.size(), 4u);  // top 1 + "other" per row
}

}  // namespace
}  // namespace syncscope::probes::go
