// Runtime struct offsets: the per-version table against DWARF of a real Go
// 1.19 binary, the table rows themselves, waitReason names and classes, and a
// live check that the offsets read real goroutines out of a running process.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "probes/go/byte_view.h"
#include "probes/go/go_binary.h"
#include "probes/go/offsets.h"

namespace syncscope::probes::go {
namespace {

std::string workload(const std::string& name) {
  const char* build = std::getenv("SYNCSCOPE_BUILD");
  return std::string(build && *build ? build : "build") + "/workloads/" + name;
}

#define REQUIRE_WORKLOAD(path)                                                                        \
  if (!std::filesystem::exists(path))                                                                  \
  FAIL() << "missing " << (path) << ": build the Go workloads first (make workloads, or make test); " \
         << "SYNCSCOPE_BUILD names the build directory"

GoVersion go(int minor, int patch = 0) {
  GoVersion v;
  v.major = 1;
  v.minor = minor;
  v.patch = patch;
  return v;
}

TEST(GoOffsets, Go119TableRowMatchesDwarf) {
  const std::string path = workload("gomutex");
  REQUIRE_WORKLOAD(path);
  auto dwarf = read_dwarf_runtime(path);
  ASSERT_TRUE(dwarf) << dwarf.error().message();
  EXPECT_EQ(dwarf->offsets.source, OffsetSource::dwarf);
  auto table = offsets_for_version(go(19, 8));
  ASSERT_TRUE(table) << table.error().message();
  EXPECT_EQ(table->source, OffsetSource::version_table);
  EXPECT_EQ(dwarf->offsets, *table) << "runtime2.go of Go 1.19 and the table disagree";
  // The numbers everyone hard-codes for 1.17-1.22.
  EXPECT_EQ(dwarf->offsets.g_goid, 152u);
  EXPECT_EQ(dwarf->offsets.m_curg, 192u);
  EXPECT_EQ(dwarf->offsets.g_m, 48u);
  ASSERT_TRUE(dwarf->allgs);
  ASSERT_TRUE(dwarf->allglen);
  EXPECT_TRUE(dwarf->sched);
}

TEST(GoOffsets, StrippedBinaryUsesTheTableAndAgreesWithDwarf) {
  const std::string plain_path = workload("gomutex");
  const std::string stripped_path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(plain_path);
  REQUIRE_WORKLOAD(stripped_path);
  auto plain = GoBinary::open(plain_path);
  auto stripped = GoBinary::open(stripped_path);
  ASSERT_TRUE(plain && stripped);
  EXPECT_TRUE(plain->has_dwarf());
  EXPECT_FALSE(stripped->has_dwarf());
  auto a = plain->runtime_offsets();
  auto b = stripped->runtime_offsets();
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(a->source, OffsetSource::dwarf);
  EXPECT_EQ(b->source, OffsetSource::version_table);
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(read_dwarf_runtime(stripped_path));

  // Globals: from .symtab, equal to what DWARF says; gone when stripped.
  auto dwarf = read_dwarf_runtime(plain_path);
  ASSERT_TRUE(dwarf);
  EXPECT_EQ(plain->allgs_address(), dwarf->allgs);
  EXPECT_EQ(plain->allglen_address(), dwarf->allglen);
  EXPECT_FALSE(stripped->allgs_address());
}

TEST(GoOffsets, VersionTableRows) {
  struct Want {
    int minor;
    uint32_t goid, status, waitreason, gopc, startpc, sched_bp, curg;
  };
  for (const Want& w : {
           Want{16, 152, 144, 176, 280, 296, 104, 192}, Want{17, 152, 144, 176, 296, 312, 104, 192},
           Want{18, 152, 144, 176, 296, 312, 104, 192}, Want{19, 152, 144, 176, 296, 312, 104, 192},
           Want{20, 152, 144, 176, 296, 312, 104, 192}, Want{21, 152, 144, 176, 280, 296, 104, 192},
           Want{22, 152, 144, 176, 280, 296, 104, 192}, Want{23, 160, 152, 184, 288, 304, 104, 192},
           Want{24, 160, 152, 184, 288, 304, 104, 192}, Want{25, 152, 144, 176, 280, 296, 96, 184},
           Want{26, 152, 144, 176, 288, 304, 96, 184},
       }) {
    auto o = offsets_for_version(go(w.minor));
    ASSERT_TRUE(o) << "1." << w.minor << ": " << o.error().message();
    EXPECT_EQ(o->g_goid, w.goid) << w.minor;
    EXPECT_EQ(o->g_atomicstatus, w.status) << w.minor;
    EXPECT_EQ(o->g_waitreason, w.waitreason) << w.minor;
    EXPECT_EQ(o->g_gopc, w.gopc) << w.minor;
    EXPECT_EQ(o->g_startpc, w.startpc) << w.minor;
    EXPECT_EQ(o->g_sched_bp, w.sched_bp) << w.minor;
    EXPECT_EQ(o->m_curg, w.curg) << w.minor;
    EXPECT_EQ(o->g_stack_lo, 0u);
    EXPECT_EQ(o->g_stack_hi, 8u);
    EXPECT_EQ(o->g_m, 48u);
    EXPECT_EQ(o->g_sched_sp, 56u);
    EXPECT_EQ(o->g_sched_pc, 64u);
    EXPECT_FALSE(o->origin.empty());
  }
  EXPECT_FALSE(offsets_for_version(go(15)));
  EXPECT_FALSE(offsets_for_version(go(27)));
  GoVersion two;
  two.major = 2;
  EXPECT_FALSE(offsets_for_version(two));
}

TEST(GoOffsets, GStatusNames) {
  EXPECT_EQ(g_status_name(kGrunnable), "runnable");
  EXPECT_EQ(g_status_name(kGrunning), "running");
  EXPECT_EQ(g_status_name(kGsyscall), "syscall");
  EXPECT_EQ(g_status_name(kGwaiting), "waiting");
  EXPECT_EQ(g_status_name(kGscan | kGwaiting), "waiting");
  EXPECT_EQ(g_status_name(kGdead), "dead");
  EXPECT_EQ(g_status_name(kGpreempted), "preempted");
  EXPECT_EQ(g_status_name(kGcopystack), "copystack");
  EXPECT_EQ(g_status_name(kGidle), "idle");
  EXPECT_EQ(g_status_name(5), "unknown");
  EXPECT_EQ(g_status_name(77), "unknown");
}

TEST(GoOffsets, WaitReasonClasses) {
  EXPECT_EQ(classify_wait_reason(""), WaitClass::none);
  EXPECT_EQ(classify_wait_reason("chan receive"), WaitClass::chan);
  EXPECT_EQ(classify_wait_reason("chan send (nil chan)"), WaitClass::chan);
  EXPECT_EQ(classify_wait_reason("chan receive (durable)"), WaitClass::chan);
  EXPECT_EQ(classify_wait_reason("select"), WaitClass::select);
  EXPECT_EQ(classify_wait_reason("select (no cases)"), WaitClass::select);
  EXPECT_EQ(classify_wait_reason("sync.Mutex.Lock"), WaitClass::mutex);
  EXPECT_EQ(classify_wait_reason("sync.RWMutex.RLock"), WaitClass::mutex);
  EXPECT_EQ(classify_wait_reason("semacquire"), WaitClass::mutex);
  EXPECT_EQ(classify_wait_reason("sleep"), WaitClass::sleep);
  EXPECT_EQ(classify_wait_reason("IO wait"), WaitClass::io);
  EXPECT_EQ(classify_wait_reason("GC assist marking"), WaitClass::gc);
  EXPECT_EQ(classify_wait_reason("GC worker (idle)"), WaitClass::gc);
  EXPECT_EQ(classify_wait_reason("sync.WaitGroup.Wait"), WaitClass::other);
  EXPECT_EQ(classify_wait_reason("something new in Go 1.30"), WaitClass::other);
  EXPECT_EQ(wait_class_name(WaitClass::mutex), "mutex");
  EXPECT_EQ(wait_class_name(WaitClass::none), "none");
}

TEST(GoOffsets, WaitReasonTablesPerVersion) {
  auto v119 = wait_reason_names_for_version(go(19));
  ASSERT_EQ(v119.size(), 27u);
  EXPECT_EQ(v119[14], "chan receive");
  EXPECT_EQ(v119[18], "semacquire");
  auto v120 = wait_reason_names_for_version(go(20));
  ASSERT_EQ(v120.size(), 32u);
  EXPECT_EQ(v120[21], "sync.Mutex.Lock");
  auto v124 = wait_reason_names_for_version(go(24));
  EXPECT_EQ(v124.size(), 18u);  // only the part 1.23 and 1.25 agree on
  auto v126 = wait_reason_names_for_version(go(26));
  ASSERT_EQ(v126.size(), 47u);
  EXPECT_EQ(v126[18], "select");  // 1.26 regrouped channel/select reasons
  EXPECT_EQ(v126[22], "sync.Mutex.Lock");
  EXPECT_TRUE(wait_reason_names_for_version(go(15)).empty());
  EXPECT_TRUE(wait_reason_names_for_version(go(27)).empty());
  EXPECT_TRUE(is_known_wait_reason("GOMAXPROCS updater (idle)"));
  EXPECT_FALSE(is_known_wait_reason("end of file"));
}

TEST(GoOffsets, WaitReasonsReadFromTheStrippedBinary) {
  const std::string path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(path);
  auto bin = GoBinary::open(path);
  ASSERT_TRUE(bin) << bin.error().message();
  EXPECT_TRUE(bin->wait_reasons_from_binary());
  EXPECT_EQ(bin->wait_reason_names(), wait_reason_names_for_version(go(19)));
  EXPECT_EQ(bin->wait_class(14), WaitClass::chan);
  EXPECT_EQ(bin->wait_class(9), WaitClass::select);
  EXPECT_EQ(bin->wait_class(0), WaitClass::none);
  EXPECT_EQ(bin->wait_reason(250), "");
}

TEST(GoOffsets, WaitReasonScanOnSyntheticData) {
  // runtime.waitReasonStrings: {nil,0} {p,17} {p,7} {p,12}, then another
  // string array that must not be taken for more wait reasons.
  const uint64_t base = 0x600000;
  std::string strings = "GC assist markingIO waitchan receiveend of file@-keyword";
  std::vector<std::pair<uint64_t, uint64_t>> headers = {{0, 0}, {0, 17}, {17, 7}, {24, 12}, {36, 11}, {47, 9}};
  std::string data(8, '\x01');  // something before the array
  const uint64_t strings_at = base + 8 + headers.size() * 16;
  for (auto [off, len] : headers) {
    uint64_t ptr = len ? strings_at + off : 0;
    for (int i = 0; i < 8; ++i) data.push_back(static_cast<char>((ptr >> (8 * i)) & 0xff));
    for (int i = 0; i < 8; ++i) data.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  }
  data += strings;
  auto bytes = as_bytes(data);
  FlatAddressSpace space(bytes, base);
  auto names = find_wait_reason_strings(bytes, base, space);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0], "");
  EXPECT_EQ(names[1], "GC assist marking");
  EXPECT_EQ(names[3], "chan receive");
  EXPECT_TRUE(find_wait_reason_strings(bytes.first(40), base, space).empty());
}

// The offsets must read real goroutines: start goleak, wait until it has
// leaked a batch, then walk runtime.allgs from outside with
// process_vm_readv and find the leaked goroutines parked in "chan receive",
// started at main.leakyWorker.
TEST(GoOffsets, ReadsLiveGoroutinesFromOutside) {
  const std::string path = workload("goleak");
  REQUIRE_WORKLOAD(path);
  auto bin = GoBinary::open(path);
  ASSERT_TRUE(bin) << bin.error().message();
  auto offsets = bin->runtime_offsets();
  ASSERT_TRUE(offsets) << offsets.error().message();
  auto allgs = bin->allgs_address();
  auto allglen = bin->allglen_address();
  auto worker = bin->find_function("main.leakyWorker");
  ASSERT_TRUE(allgs && allglen && worker);

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(path.c_str(), path.c_str(), "-rate", "200", "-interval", "100ms", "-duration", "20s", nullptr);
    _exit(127);
  }
  close(out[1]);
  // Wait for the second quiet point: a batch of 20 has parked.
  std::string seen;
  int reports = 0;
  char buf[256];
  while (reports < 3) {
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    reports = 0;
    for (size_t at = seen.find("goroutines="); at != std::string::npos; at = seen.find("goroutines=", at + 1)) ++reports;
  }
  ASSERT_GE(reports, 3) << seen;

  auto read_remote = [&](uint64_t addr, void* dst, size_t len) {
    iovec local{dst, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    return process_vm_readv(child, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
  };
  uint64_t slice[3] = {};
  uint64_t count = 0;
  bool ok = read_remote(*allgs, slice, sizeof(slice)) && read_remote(*allglen, &count, sizeof(count));
  size_t leaked = 0;
  size_t goid_ok = 0;
  if (ok) {
    EXPECT_EQ(count, slice[1]);  // allglen mirrors len(allgs)
    std::vector<uint64_t> gs(std::min<uint64_t>(count, 100000));
    ok = read_remote(slice[0], gs.data(), gs.size() * 8);
    for (uint64_t g : gs) {
      unsigned char raw[512];
      if (!ok || !read_remote(g, raw, sizeof(raw))) continue;
      auto field = [&](uint32_t off, size_t size) {
        uint64_t v = 0;
        std::memcpy(&v, raw + off, size);
        return v;
      };
      const auto status = static_cast<uint32_t>(field(offsets->g_atomicstatus, 4));
      const auto reason = static_cast<uint8_t>(field(offsets->g_waitreason, 1));
      const uint64_t startpc = field(offsets->g_startpc, 8);
      const uint64_t goid = field(offsets->g_goid, 8);
      const uint64_t lo = field(offsets->g_stack_lo, 8);
      const uint64_t hi = field(offsets->g_stack_hi, 8);
      // `go leakyWorker(ch, &wg)` starts a compiler-made closure
      // (main.leakBatch.func1; .gowrap1 from Go 1.22) that calls the worker.
      auto start = bin->symbolize(startpc);
      const bool from_batch = start && (start->function == "main.leakyWorker" ||
                                        start->function.starts_with("main.leakBatch.func") ||
                                        start->function.starts_with("main.leakBatch.gowrap"));
      if ((status & ~uint32_t{kGscan}) == kGwaiting && from_batch) {
        ++leaked;
        EXPECT_EQ(bin->wait_reason(reason), "chan receive");
        EXPECT_EQ(bin->wait_class(reason), WaitClass::chan);
        auto creator = bin->symbolize(field(offsets->g_gopc, 8));
        EXPECT_TRUE(creator && creator->function == "main.leakBatch") << (creator ? creator->function : "?");
        if (goid > 1 && lo < hi && hi - lo >= 2048) ++goid_ok;
      }
    }
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(out[0]);
  ASSERT_TRUE(ok) << "process_vm_readv failed: " << std::strerror(errno);
  EXPECT_GE(leaked, 20u);
  EXPECT_EQ(goid_ok, leaked);
}

}  // namespace
}  // namespace syncscope::probes::go
