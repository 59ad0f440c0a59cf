// Symbolizer on this very process (real /proc, real ELF files) and with fake
// process/ELF sources for caching, refresh and exit behaviour.
#include "probes/symbolizer.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>

// A function without .size (as hand-written assembly often is).
asm(R"(
  .text
  .p2align 4
  .globl syncscope_test_unsized
  .type syncscope_test_unsized, @function
syncscope_test_unsized:
  nop
  nop
  ret
)");

namespace syncscope_test_sym {
__attribute__((noinline, used)) int poke(int x) {
  asm volatile(".rept 16\n nop\n .endr" ::: "memory");  // long enough for in-body offsets
  return x ^ 0x5a;
}
struct alignas(64) Shared {
  long a[8];
  long b[8];
};
Shared g_shared = {{1, 2, 3}, {4, 5, 6}};
}  // namespace syncscope_test_sym

extern "C" {
__attribute__((noinline, used)) int syncscope_test_symbolize_target(int x) {
  asm volatile(".rept 16\n nop\n .endr" ::: "memory");  // long enough for in-body offsets
  return x * 5;
}
__attribute__((used)) char syncscope_test_sym_bss[1 << 20];
void syncscope_test_unsized();
}

namespace syncscope::probes {
namespace {

uint64_t addr_of(const void* p) { return reinterpret_cast<uint64_t>(p); }
template <typename F>
uint64_t code_addr(F* f) {
  return reinterpret_cast<uint64_t>(reinterpret_cast<void*>(f));
}

// libc's own definition: under ASan, RTLD_DEFAULT finds the interceptors.
void* libc_symbol(const char* name) {
  static void* handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr);
  return dlsym(handle, name);
}

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

const Symbol* exe_symbol(std::string_view name) {
  static auto exe = ElfFile::open("/proc/self/exe");
  return exe ? (*exe)->find_symbol(name) : nullptr;
}

TEST(Symbolizer, NamesFunctionsOfThisProcess) {
  const uint64_t ips[] = {code_addr(&syncscope_test_symbolize_target) + 5, code_addr(&syncscope_test_sym::poke) + 2};
  Symbolizer::Options exact;
  exact.return_addresses = false;
  Symbolizer plain(std::make_shared<ProcfsProcessSource>(), std::make_shared<FilesystemElfSource>(), exact);
  auto frames = plain.symbolize(getpid(), ips);
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 2u);
  EXPECT_EQ((*frames)[0].address, ips[0]);
  EXPECT_EQ((*frames)[0].symbol, "syncscope_test_symbolize_target");
  EXPECT_EQ((*frames)[0].offset, 5u);
  EXPECT_FALSE((*frames)[0].is_guess);
  EXPECT_EQ((*frames)[0].module, self_exe());
  EXPECT_EQ((*frames)[1].symbol, "syncscope_test_sym::poke(int)") << "demangled";
  EXPECT_EQ((*frames)[1].offset, 2u);
}

TEST(Symbolizer, ReturnAddressesAreLookedUpOneByteEarlier) {
  const Symbol* poke = exe_symbol("_ZN18syncscope_test_sym4pokeEi");
  ASSERT_NE(poke, nullptr);
  // A return address right after the last byte of poke (a call at its very
  // end) still belongs to poke.
  uint64_t end = code_addr(&syncscope_test_sym::poke) + poke->size;
  const uint64_t ips[] = {code_addr(&syncscope_test_symbolize_target), end};
  Symbolizer symbolizer;
  auto frames = symbolizer.symbolize(getpid(), ips);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].symbol, "syncscope_test_symbolize_target");
  EXPECT_EQ((*frames)[0].offset, 0u);
  EXPECT_EQ((*frames)[1].symbol, "syncscope_test_sym::poke(int)");
  EXPECT_EQ((*frames)[1].offset, poke->size);
}

TEST(Symbolizer, UnsizedSymbolsAreGuesses) {
  Symbolizer symbolizer;
  const uint64_t ips[] = {code_addr(&syncscope_test_unsized) + 1};
  auto frames = symbolizer.symbolize(getpid(), ips);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].symbol, "syncscope_test_unsized");
  EXPECT_EQ((*frames)[0].offset, 1u);
  EXPECT_TRUE((*frames)[0].is_guess);
  EXPECT_NE((*frames)[0].to_string().find("[guess]"), std::string::npos);
}

TEST(Symbolizer, LibcLocalFunctionsComeFromTheDebugFile) {
  auto libc = ElfFile::open("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(libc);
  auto debug = (*libc)->open_debug_file();
  if (!debug) GTEST_SKIP() << debug.error().message();
  const Symbol* wait = (*debug)->find_symbol("__lll_lock_wait");
  ASSERT_NE(wait, nullptr);
  Dl_info info{};
  ASSERT_NE(dladdr(libc_symbol("pthread_mutex_lock"), &info), 0);
  const uint64_t base = addr_of(info.dli_fbase);
  const uint64_t ips[] = {base + wait->value + 3, addr_of(libc_symbol("pthread_mutex_lock")) + 0x20};

  Symbolizer symbolizer;
  auto frames = symbolizer.symbolize(getpid(), ips);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].symbol, "__lll_lock_wait");
  EXPECT_EQ((*frames)[0].offset, 3u);
  EXPECT_FALSE((*frames)[0].is_guess);
  EXPECT_TRUE((*frames)[0].module.ends_with("libc.so.6"));
  EXPECT_EQ((*frames)[1].symbol, "pthread_mutex_lock");
  EXPECT_EQ((*frames)[1].offset, 0x20u);
  EXPECT_EQ((*frames)[0].to_string(), "__lll_lock_wait+0x3 (libc.so.6)");
}

TEST(Symbolizer, NamesDataHeapAndStack) {
  Symbolizer symbolizer;
  auto global = symbolizer.symbolize_data(getpid(), addr_of(&syncscope_test_sym::g_shared.b[0]));
  ASSERT_TRUE(global) << global.error().message();
  EXPECT_EQ(*global, "syncscope_test_sym::g_shared+0x40");

  auto bss_tail = symbolizer.symbolize_data(getpid(), addr_of(&syncscope_test_sym_bss[sizeof syncscope_test_sym_bss - 1]));
  ASSERT_TRUE(bss_tail) << bss_tail.error().message();
  EXPECT_EQ(*bss_tail, "syncscope_test_sym_bss+0xfffff");

  auto small = std::make_unique<char[]>(64);
  auto big = std::make_unique<char[]>(16 << 20);
  EXPECT_EQ(symbolizer.symbolize_data(getpid(), addr_of(small.get())).value_or("?"), "heap");
  EXPECT_EQ(symbolizer.symbolize_data(getpid(), addr_of(big.get())).value_or("?"), "heap");
  EXPECT_EQ(symbolizer.symbolize_data(getpid(), addr_of(__builtin_frame_address(0))).value_or("?"), "stack");
  EXPECT_FALSE(symbolizer.symbolize_data(getpid(), 0x10)) << "unmapped";
}

TEST(Symbolizer, ThreadStacksAreStacks) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false, release = false;
  uint64_t frame = 0;
  pid_t tid = 0;
  std::thread worker([&] {
    std::unique_lock lock(mu);
    frame = addr_of(__builtin_frame_address(0));
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    ready = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return ready; });
  }
  // Wait until the worker sleeps in futex(): only then does /proc show its SP.
  std::string line = "running";
  for (int i = 0; i < 200 && line.starts_with("running"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
    std::getline(in, line);
  }
  Symbolizer symbolizer;
  auto name = symbolizer.symbolize_data(getpid(), frame);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  worker.join();
  ASSERT_TRUE(name) << name.error().message();
  EXPECT_EQ(*name, "stack") << "/proc/self/task/" << tid << "/syscall: " << line;
}

TEST(Symbolizer, ExitedProcessIsAnErrorNotACrash) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  Symbolizer symbolizer;
  const uint64_t ips[] = {code_addr(&syncscope_test_symbolize_target)};
  auto frames = symbolizer.symbolize(child, ips);
  ASSERT_FALSE(frames);
  EXPECT_EQ(frames.error().sys_errno(), ESRCH);
  EXPECT_NE(frames.error().message().find("exited"), std::string::npos) << frames.error().message();
  EXPECT_FALSE(symbolizer.symbolize_data(child, 0x1000));
}

TEST(Symbolizer, FrameToString) {
  EXPECT_EQ((Frame{0x7f00, "/usr/lib/x86_64-linux-gnu/libc.so.6", "pthread_mutex_lock", 0x1a, false}.to_string()),
            "pthread_mutex_lock+0x1a (libc.so.6)");
  EXPECT_EQ((Frame{0x7f00, "/opt/app/libfoo.so", "", 0x1234, false}.to_string()), "libfoo.so+0x1234");
  EXPECT_EQ((Frame{0xdead, "", "", 0, false}.to_string()), "[unknown] 0xdead");
}

TEST(Symbolizer, TruncatedStacks) {
  auto frame = [](std::string symbol, std::string module = "/bin/app") {
    return Frame{0x1000, std::move(module), std::move(symbol), 0, false};
  };
  EXPECT_TRUE(stack_looks_truncated({}));
  std::vector<Frame> two = {frame("__lll_lock_wait"), frame("pthread_mutex_lock")};
  EXPECT_TRUE(stack_looks_truncated(two)) << "two frames ending inside libc";
  std::vector<Frame> thread = {frame("work"), frame("start_thread")};
  EXPECT_FALSE(stack_looks_truncated(thread));
  std::vector<Frame> go = {frame("sync.(*Mutex).lockSlow"), frame("runtime.goexit.abi0")};
  EXPECT_FALSE(stack_looks_truncated(go));
  std::vector<Frame> deep = {frame("a"), frame("b"), frame("c"), frame("main")};
  EXPECT_FALSE(stack_looks_truncated(deep)) << "deep enough to trust";
  std::vector<Frame> garbage = {frame("a"), frame("b"), frame("c"), frame("", "")};
  EXPECT_TRUE(stack_looks_truncated(garbage)) << "last frame unmapped: the frame-pointer walk ran off";
}

// --- fakes --------------------------------------------------------------------

class FakeProcesses final : public ProcessSource {
 public:
  Result<std::vector<Mapping>> maps(int pid) override {
    ++reads;
    auto it = by_pid.find(pid);
    if (it == by_pid.end()) return fail("process " + std::to_string(pid) + " exited", ESRCH);
    return it->second;
  }
  std::vector<uint64_t> thread_stack_pointers(int) override { return {}; }

  std::map<int, std::vector<Mapping>> by_pid;
  int reads = 0;
};

// Opens real files, but identifies them by the inode the fake maps claim and
// counts every open.
class CountingFiles final : public ElfSource {
 public:
  Result<FileIdentity> identify(int, const Mapping& m) override { return FileIdentity{1, m.inode, 0, 0}; }
  Result<std::unique_ptr<ElfFile>> open(int, const Mapping& m) override {
    ++opens;
    return ElfFile::open(m.path);
  }
  Result<std::unique_ptr<ElfFile>> open_debug(const ElfFile& binary) override {
    ++debug_opens;
    return binary.open_debug_file();
  }
  int opens = 0;
  int debug_opens = 0;
};

std::vector<Mapping> self_maps_with_inode_offset(uint64_t inode_offset) {
  auto maps = read_maps(getpid());
  EXPECT_TRUE(maps);
  std::vector<Mapping> out = maps ? *maps : std::vector<Mapping>{};
  for (Mapping& m : out)
    if (m.is_file()) m.inode += inode_offset;
  return out;
}

TEST(SymbolizerCache, ModulesAreParsedOncePerFileAndSharedByBuildId) {
  auto processes = std::make_shared<FakeProcesses>();
  auto files = std::make_shared<CountingFiles>();
  processes->by_pid[1001] = self_maps_with_inode_offset(0);
  processes->by_pid[1002] = self_maps_with_inode_offset(0);
  processes->by_pid[1003] = self_maps_with_inode_offset(1'000'000);  // "another copy" of the same files
  Symbolizer symbolizer(processes, files, {});

  const uint64_t ips[] = {code_addr(&syncscope_test_symbolize_target)};
  for (int pid : {1001, 1002}) {
    auto frames = symbolizer.symbolize(pid, ips);
    ASSERT_TRUE(frames) << frames.error().message();
    EXPECT_EQ((*frames)[0].symbol, "syncscope_test_symbolize_target");
  }
  EXPECT_EQ(files->opens, 1) << "same file in two processes: one parse";
  EXPECT_EQ(symbolizer.module_count(), 1u);

  auto frames = symbolizer.symbolize(1003, ips);
  ASSERT_TRUE(frames);
  EXPECT_EQ((*frames)[0].symbol, "syncscope_test_symbolize_target");
  EXPECT_EQ(files->opens, 2) << "a new identity has to be opened to read its build-id";
  EXPECT_EQ(symbolizer.module_count(), 1u) << "...and then shares the module with the same build-id";
  EXPECT_EQ(files->debug_opens, 0) << "the test binary has .symtab";
}

TEST(SymbolizerCache, StrippedBinariesBorrowTheDebugFileOnce) {
  auto processes = std::make_shared<FakeProcesses>();
  auto files = std::make_shared<CountingFiles>();
  processes->by_pid[1] = self_maps_with_inode_offset(0);
  const uint64_t ips[] = {addr_of(libc_symbol("pthread_mutex_lock")) + 1,
                          addr_of(libc_symbol("pthread_mutex_unlock")) + 1};
  Symbolizer::Options exact;
  exact.return_addresses = false;
  Symbolizer plain(processes, files, exact);
  auto frames = plain.symbolize(1, ips);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].symbol, "pthread_mutex_lock");
  EXPECT_EQ((*frames)[1].symbol, "pthread_mutex_unlock");
  EXPECT_EQ(files->debug_opens, 1) << "libc.so.6 has no .symtab: its debug file is opened once";
}

TEST(SymbolizerCache, MapsRefreshOnMissAndOutliveTheProcess) {
  auto processes = std::make_shared<FakeProcesses>();
  auto files = std::make_shared<CountingFiles>();
  FakeClock clock;
  // At first the process has not mapped the module yet (think dlopen later).
  auto early = parse_maps("00001000-00002000 rw-p 00000000 00:00 0 [heap]\n");
  ASSERT_TRUE(early);
  processes->by_pid[7] = *early;
  Symbolizer symbolizer(processes, files, {}, clock);
  const uint64_t ips[] = {code_addr(&syncscope_test_symbolize_target)};

  auto before = symbolizer.symbolize(7, ips);
  ASSERT_TRUE(before);
  EXPECT_EQ((*before)[0].module, "");
  EXPECT_EQ(processes->reads, 1);

  processes->by_pid[7] = self_maps_with_inode_offset(0);
  auto after = symbolizer.symbolize(7, ips);
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)[0].symbol, "syncscope_test_symbolize_target") << "an unknown address re-reads the maps";
  EXPECT_EQ(processes->reads, 2);

  auto again = symbolizer.symbolize(7, ips);
  ASSERT_TRUE(again);
  EXPECT_EQ(processes->reads, 2) << "fresh maps that cover every address are reused";

  // The process exits; events that arrive late still resolve from the cache.
  processes->by_pid.erase(7);
  clock.advance(std::chrono::seconds(5));
  auto late = symbolizer.symbolize(7, ips);
  ASSERT_TRUE(late) << late.error().message();
  EXPECT_EQ((*late)[0].symbol, "syncscope_test_symbolize_target");
  EXPECT_EQ(processes->reads, 3);

  symbolizer.forget(7);
  auto forgotten = symbolizer.symbolize(7, ips);
  ASSERT_FALSE(forgotten);
  EXPECT_EQ(forgotten.error().sys_errno(), ESRCH);
}

TEST(SymbolizerCache, UnreadableModulesYieldModuleOffsets) {
  auto processes = std::make_shared<FakeProcesses>();
  auto files = std::make_shared<CountingFiles>();
  auto maps = parse_maps(
      "00400000-00401000 r-xp 00002000 08:01 5 /nonexistent/app\n"
      "7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]\n");
  ASSERT_TRUE(maps);
  processes->by_pid[9] = *maps;
  Symbolizer::Options exact;
  exact.return_addresses = false;
  Symbolizer symbolizer(processes, files, exact);
  const uint64_t ips[] = {0x400010, 0x7f0000000020, 0x10};
  auto frames = symbolizer.symbolize(9, ips);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].module, "/nonexistent/app");
  EXPECT_EQ((*frames)[0].symbol, "");
  EXPECT_EQ((*frames)[0].offset, 0x2010u) << "file offset when the file cannot be read";
  EXPECT_EQ((*frames)[0].to_string(), "app+0x2010");
  EXPECT_EQ((*frames)[1].module, "[vdso]");
  EXPECT_EQ((*frames)[2].module, "");
  EXPECT_EQ(symbolizer.symbolize_data(9, 0x400010).value_or("?"), "app+0x2010");
}

}  // namespace
}  // namespace syncscope::probes
