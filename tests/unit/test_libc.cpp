// glibc lock-function resolution against the real Debian libc, its debug
// file, and the call-target heuristic used when there is no debug file.
#include "probes/libc.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "probes/disasm.h"

namespace syncscope::probes {
namespace {

const LibcFunction& get(const LibcInfo& info, std::string_view name) {
  const LibcFunction* f = info.function(name);
  EXPECT_NE(f, nullptr) << name;
  static const LibcFunction none{nullptr, fail("missing")};
  return f ? *f : none;
}

// libc's own definition: under ASan, RTLD_DEFAULT finds the interceptors.
void* libc_symbol(const char* name) {
  static void* handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr);
  return dlsym(handle, name);
}

// Where this process has libc loaded.
uint64_t libc_base() {
  Dl_info info{};
  EXPECT_NE(dladdr(libc_symbol("pthread_mutex_lock"), &info), 0);
  return reinterpret_cast<uint64_t>(info.dli_fbase);
}

// The build-id debug file's answer, or nullopt when libc6-dbg is missing.
std::optional<uint64_t> debug_file_vaddr(std::string_view name) {
  auto libc = ElfFile::open("/lib/x86_64-linux-gnu/libc.so.6");
  if (!libc) return std::nullopt;
  auto debug = (*libc)->open_debug_file();
  if (!debug) return std::nullopt;
  const Symbol* s = (*debug)->find_symbol(name);
  return s ? std::optional(s->value) : std::nullopt;
}

TEST(Libc, RecognisesLibcFileNames) {
  EXPECT_TRUE(is_libc_path("/lib/x86_64-linux-gnu/libc.so.6"));
  EXPECT_TRUE(is_libc_path("libc.so.6"));
  EXPECT_TRUE(is_libc_path("/lib/x86_64-linux-gnu/libc-2.31.so"));
  EXPECT_FALSE(is_libc_path("/lib/x86_64-linux-gnu/libcap.so.2"));
  EXPECT_FALSE(is_libc_path("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
  EXPECT_FALSE(is_libc_path("/lib/libc-client.so"));
  EXPECT_FALSE(is_libc_path("/lib/libc.so.6.bak"));
  EXPECT_FALSE(is_libc_path(""));
}

TEST(Libc, FindsTheLibcOfThisProcess) {
  auto where = find_libc(getpid());
  ASSERT_TRUE(where) << where.error().message();
  EXPECT_TRUE(is_libc_path(where->mapped_path));
  EXPECT_EQ(where->open_path, "/proc/" + std::to_string(getpid()) + "/root" + where->mapped_path);
  EXPECT_GT(where->inode, 0u);

  auto gone = find_libc(0x7ffffff0);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().sys_errno(), ESRCH);
}

TEST(Libc, ResolvesEveryTargetWithTheDebugFile) {
  if (!debug_file_vaddr("__lll_lock_wait")) GTEST_SKIP() << "libc6-dbg not installed";
  LibcResolver resolver;
  auto info = resolver.resolve_system();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->build_id.size(), 40u);
  EXPECT_FALSE(info->version.empty());
  EXPECT_FALSE(info->debug_file.empty());
  ASSERT_EQ(info->functions.size(), libc_probe_targets().size());
  for (const LibcFunction& f : info->functions) {
    ASSERT_TRUE(f.resolved) << f.target->function << ": " << f.resolved.error().message();
    EXPECT_GT(f.resolved->size, 0u) << f.target->function;
  }

  const auto& wait = get(*info, "__lll_lock_wait");
  ASSERT_TRUE(wait.resolved);
  EXPECT_EQ(wait.resolved->method, ResolveMethod::debug_file);
  EXPECT_EQ(wait.resolved->vaddr, *debug_file_vaddr("__lll_lock_wait"));
  EXPECT_EQ(get(*info, "__lll_lock_wake").resolved->method, ResolveMethod::debug_file);
  EXPECT_EQ(get(*info, "__futex_abstimed_wait64").resolved->method, ResolveMethod::debug_file);
  EXPECT_EQ(get(*info, "__lll_lock_wait_private").resolved->method, ResolveMethod::dynsym);

  // The exported one is what ld.so resolves.
  if (void* p = libc_symbol("__lll_lock_wait_private")) {
    EXPECT_EQ(get(*info, "__lll_lock_wait_private").resolved->vaddr, reinterpret_cast<uint64_t>(p) - libc_base());
  }

  // The file offset must hold the code this process runs at base + vaddr.
  auto libc = ElfFile::open(info->path);
  ASSERT_TRUE(libc);
  for (const LibcFunction& f : info->functions) {
    auto offset = (*libc)->vaddr_to_offset(f.resolved->vaddr);
    ASSERT_TRUE(offset);
    EXPECT_EQ(*offset, f.resolved->file_offset);
    auto bytes = (*libc)->read(f.resolved->vaddr, 8);
    ASSERT_TRUE(bytes);
    EXPECT_EQ(std::memcmp(bytes->data(), reinterpret_cast<const void*>(libc_base() + f.resolved->vaddr), 8), 0)
        << f.target->function;
  }
}

TEST(Libc, CallTargetHeuristicMatchesTheDebugFile) {
  LibcResolver no_debug("/nonexistent-debug-root");
  auto info = no_debug.resolve_system();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_TRUE(info->debug_file.empty());
  EXPECT_FALSE(info->debug_error.empty());

  const auto& wait = get(*info, "__lll_lock_wait");
  ASSERT_TRUE(wait.resolved) << wait.resolved.error().message();
  EXPECT_EQ(wait.resolved->method, ResolveMethod::call_target);
  if (auto expected = debug_file_vaddr("__lll_lock_wait"))
    EXPECT_EQ(wait.resolved->vaddr, *expected) << "heuristic and debug file disagree";
  else
    GTEST_SKIP() << "libc6-dbg not installed: cannot cross-check " << std::hex << wait.resolved->vaddr;

  // Functions without a fallback say why they are missing.
  const auto& wake = get(*info, "__lll_lock_wake");
  ASSERT_FALSE(wake.resolved);
  EXPECT_NE(wake.resolved.error().message().find("debug file"), std::string::npos) << wake.resolved.error().message();
  EXPECT_TRUE(get(*info, "__lll_lock_wait_private").resolved) << "exported: no debug file needed";
}

// The futex-wait helpers are shared by several primitives; a uprobe on their
// entry classifies a wait by its return address. Check that with the real
// call sites: every call from a rwlock function returns into a range
// classified as that rwlock kind, and the same for condvars.
TEST(Libc, ReturnAddressesClassifyRwlockAndCondvarWaits) {
  if (!debug_file_vaddr("__futex_abstimed_wait64")) GTEST_SKIP() << "libc6-dbg not installed";
  LibcResolver resolver;
  auto info = resolver.resolve_system();
  ASSERT_TRUE(info) << info.error().message();
  auto libc = ElfFile::open(info->path);
  ASSERT_TRUE(libc);

  struct Expectation {
    const char* caller;
    const char* helper;
    WaitKind kind;
  };
  for (const Expectation& e : {Expectation{"pthread_rwlock_rdlock", "__futex_abstimed_wait64", WaitKind::rwlock_read},
                               Expectation{"pthread_rwlock_wrlock", "__futex_abstimed_wait64", WaitKind::rwlock_write},
                               Expectation{"pthread_cond_wait", "__futex_abstimed_wait_cancelable64", WaitKind::condvar},
                               Expectation{"pthread_cond_timedwait", "__futex_abstimed_wait_cancelable64",
                                           WaitKind::condvar}}) {
    const Symbol* caller = (*libc)->find_symbol(e.caller);
    ASSERT_NE(caller, nullptr) << e.caller;
    uint64_t helper = get(*info, e.helper).resolved->vaddr;
    auto insns = decode(**libc, caller->value, caller->size);
    ASSERT_TRUE(insns) << insns.error().message();
    int calls = 0;
    for (const Instruction& insn : *insns) {
      if (insn.kind != InstructionKind::call_direct || insn.target != helper) continue;
      ++calls;
      EXPECT_EQ(info->classify_return_address(insn.vaddr + insn.size), e.kind) << e.caller;
    }
    EXPECT_GT(calls, 0) << e.caller << " never calls " << e.helper;
  }
  EXPECT_EQ(info->classify_return_address(0), WaitKind::unknown);
}

TEST(Libc, CachesPerBuildId) {
  LibcResolver resolver;
  auto first = resolver.resolve_system();
  ASSERT_TRUE(first) << first.error().message();
  // The same file through another path (as a container's libc would be seen).
  std::string other = "/proc/" + std::to_string(getpid()) + "/root" + first->path;
  auto second = resolver.resolve(other);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(resolver.cache_size(), 1u);
  EXPECT_EQ(second->path, other);
  EXPECT_EQ(second->build_id, first->build_id);
  ASSERT_TRUE(get(*second, "__lll_lock_wait").resolved);
  EXPECT_EQ(get(*second, "__lll_lock_wait").resolved->vaddr, get(*first, "__lll_lock_wait").resolved->vaddr);
}

TEST(Libc, RefusesFilesThatAreNotGlibc) {
  LibcResolver resolver;
  auto exe = resolver.resolve("/proc/self/exe");
  ASSERT_FALSE(exe);
  EXPECT_NE(exe.error().message().find("not glibc"), std::string::npos) << exe.error().message();
  EXPECT_FALSE(resolver.resolve("/nonexistent/libc.so.6"));
}

TEST(Libc, CatalogIsComplete) {
  for (const LibcProbeTarget& t : libc_probe_targets()) {
    EXPECT_FALSE(t.function.empty());
    EXPECT_FALSE(t.arguments.empty()) << t.function;
  }
  EXPECT_EQ(to_string(ResolveMethod::call_target), "call-target");
  EXPECT_EQ(to_string(WaitKind::rwlock_write), "rwlock_write");
}

}  // namespace
}  // namespace syncscope::probes
