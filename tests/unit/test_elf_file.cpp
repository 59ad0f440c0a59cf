// ElfFile against real files: this test binary (/proc/self/exe), the system
// libc and its Debian debug file, and broken files for the error paths.
#include "probes/elf_file.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "probes/proc_maps.h"

extern "C" __attribute__((noinline, used)) int syncscope_test_elf_target(int x) {
  asm volatile(".rept 16\n nop\n .endr" ::: "memory");  // a body with room for in-body offsets
  return x * 3 + 1;
}

struct ElfTestCounters {
  long hits[8];
  long misses[8];
};
// .data (initialized), .bss (zero) and .data.rel.ro (a relocated const pointer).
extern "C" {
alignas(64) ElfTestCounters syncscope_test_data_counters = {{1, 2, 3, 4, 5, 6, 7, 8}, {9}};
alignas(64) ElfTestCounters syncscope_test_bss_counters;
__attribute__((used)) long* const syncscope_test_relro_ptr = &syncscope_test_data_counters.hits[0];
}

namespace syncscope::probes {
namespace {

constexpr const char* kLibc = "/lib/x86_64-linux-gnu/libc.so.6";

std::unique_ptr<ElfFile> open_or_die(const std::string& path) {
  auto elf = ElfFile::open(path);
  EXPECT_TRUE(elf) << elf.error().message();
  return elf ? std::move(*elf) : nullptr;
}

// run-time address - ELF vaddr of the object holding `addr`.
uintptr_t bias_of(const void* addr, const ElfFile& elf) {
  Dl_info info{};
  EXPECT_NE(dladdr(addr, &info), 0);
  return elf.position_independent() ? reinterpret_cast<uintptr_t>(info.dli_fbase) : 0;
}

// libc's own definition: under ASan, RTLD_DEFAULT finds the interceptors.
void* libc_symbol(const char* name, const char* version = nullptr) {
  static void* handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr);
  return version ? dlvsym(handle, name, version) : dlsym(handle, name);
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "syncscope_elf_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(ElfFile, TestBinaryHasSymbolsAndBuildId) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  EXPECT_EQ(exe->machine(), EM_X86_64);
  EXPECT_TRUE(exe->type() == ElfType::shared || exe->type() == ElfType::executable);
  EXPECT_TRUE(exe->has_symtab());
  EXPECT_EQ(exe->build_id().size(), 40u) << "Debian's gcc links with --build-id (sha1)";
  EXPECT_FALSE(exe->load_segments().empty());
}

TEST(ElfFile, SymbolValueMatchesRuntimeAddress) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  const Symbol* sym = exe->find_symbol("syncscope_test_elf_target");
  ASSERT_NE(sym, nullptr);
  auto addr = reinterpret_cast<uintptr_t>(&syncscope_test_elf_target);
  EXPECT_EQ(sym->value, addr - bias_of(reinterpret_cast<void*>(addr), *exe));
  EXPECT_EQ(sym->type, SymbolType::func);
  EXPECT_EQ(sym->binding, SymbolBinding::global);
  EXPECT_EQ(sym->table, SymbolTable::symtab);
  EXPECT_EQ(sym->section_name, ".text");
  EXPECT_GT(sym->size, 0u);

  auto inside = exe->function_at(sym->value + 3);
  ASSERT_TRUE(inside);
  EXPECT_EQ(inside->symbol->name, "syncscope_test_elf_target");
  EXPECT_EQ(inside->offset, 3u);
  EXPECT_TRUE(inside->exact);
}

TEST(ElfFile, ReadReturnsTheBytesTheProcessExecutes) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  const Symbol* sym = exe->find_symbol("syncscope_test_elf_target");
  ASSERT_NE(sym, nullptr);
  auto bytes = exe->read(sym->value, sym->size);
  ASSERT_TRUE(bytes) << bytes.error().message();
  EXPECT_EQ(std::memcmp(bytes->data(), reinterpret_cast<const void*>(&syncscope_test_elf_target), sym->size), 0);
}

TEST(ElfFile, OffsetConversionAgreesWithProcMaps) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  const Symbol* sym = exe->find_symbol("syncscope_test_elf_target");
  ASSERT_NE(sym, nullptr);
  auto maps = read_maps(getpid());
  ASSERT_TRUE(maps) << maps.error().message();
  auto addr = reinterpret_cast<uint64_t>(&syncscope_test_elf_target);
  const Mapping* m = find_mapping(*maps, addr);
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->executable);

  auto offset = exe->vaddr_to_offset(sym->value);
  ASSERT_TRUE(offset) << offset.error().message();
  EXPECT_EQ(*offset, m->file_offset(addr)) << "the uprobe offset must be where the kernel maps the code from";
  auto back = exe->offset_to_vaddr(*offset);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, sym->value);
}

TEST(ElfFile, DataObjectsAreWritableGlobals) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  auto objects = exe->data_objects();
  auto named = [&](std::string_view name) -> const Symbol* {
    for (const Symbol* s : objects)
      if (s->name == name) return s;
    return nullptr;
  };
  const Symbol* data = named("syncscope_test_data_counters");
  const Symbol* bss = named("syncscope_test_bss_counters");
  ASSERT_NE(data, nullptr);
  ASSERT_NE(bss, nullptr);
  EXPECT_EQ(data->size, sizeof(ElfTestCounters));
  EXPECT_EQ(data->section_name, ".data");
  EXPECT_EQ(bss->section_name, ".bss");
  EXPECT_EQ(data->value % 64, 0u);
  EXPECT_EQ(named("syncscope_test_relro_ptr"), nullptr) << "RELRO data is never written";
  EXPECT_TRUE(std::ranges::is_sorted(objects, {}, [](const Symbol* s) { return s->value; }));

  // A data address → object + offset, checked against the real address.
  auto misses = reinterpret_cast<uintptr_t>(&syncscope_test_data_counters.misses[1]);
  auto match = exe->object_at(misses - bias_of(&syncscope_test_data_counters, *exe));
  ASSERT_TRUE(match);
  EXPECT_EQ(match->symbol->name, "syncscope_test_data_counters");
  EXPECT_EQ(match->offset, offsetof(ElfTestCounters, misses) + sizeof(long));
  EXPECT_FALSE(exe->function_at(data->value)) << "data is not code";
}

TEST(ElfFile, SectionsByName) {
  auto exe = open_or_die("/proc/self/exe");
  ASSERT_TRUE(exe);
  const Section* text = exe->section(".text");
  ASSERT_NE(text, nullptr);
  EXPECT_TRUE(text->executable());
  EXPECT_TRUE(text->has_file_bytes());
  auto bytes = exe->section_bytes(*text);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->size(), text->size);

  const Section* bss = exe->section(".bss");
  ASSERT_NE(bss, nullptr);
  EXPECT_TRUE(bss->writable());
  EXPECT_FALSE(bss->has_file_bytes());
  EXPECT_FALSE(exe->section_bytes(*bss));
  EXPECT_EQ(exe->section(".no_such_section"), nullptr);

  auto bss_read = exe->read(bss->vaddr + bss->size - 1, 1);
  ASSERT_FALSE(bss_read);
  EXPECT_NE(bss_read.error().message().find("bss"), std::string::npos) << bss_read.error().message();
}

TEST(ElfFile, LibcDynsymVersionsMatchTheDynamicLinker) {
  auto libc = open_or_die(kLibc);
  ASSERT_TRUE(libc);
  EXPECT_EQ(libc->type(), ElfType::shared);
  EXPECT_FALSE(libc->has_symtab()) << "Debian strips libc.so.6";

  void* lock = libc_symbol("pthread_mutex_lock");
  ASSERT_NE(lock, nullptr);
  uintptr_t bias = bias_of(lock, *libc);
  const Symbol* plain = libc->find_symbol("pthread_mutex_lock");
  const Symbol* versioned = libc->find_symbol("pthread_mutex_lock@@GLIBC_2.2.5");
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(versioned, nullptr);
  EXPECT_EQ(plain->value, reinterpret_cast<uintptr_t>(lock) - bias);
  EXPECT_EQ(versioned->value, plain->value);
  EXPECT_EQ(plain->table, SymbolTable::dynsym);
  EXPECT_EQ(plain->version, "GLIBC_2.2.5");
  EXPECT_EQ(plain->full_name(), "pthread_mutex_lock@@GLIBC_2.2.5");

  // pthread_cond_wait has a default (2.3.2) and a compat (2.2.5) version at
  // different addresses; each must match what ld.so hands out.
  const Symbol* cond_default = libc->find_symbol("pthread_cond_wait");
  const Symbol* cond_compat = libc->find_symbol("pthread_cond_wait@GLIBC_2.2.5");
  ASSERT_NE(cond_default, nullptr);
  ASSERT_NE(cond_compat, nullptr);
  EXPECT_TRUE(cond_default->default_version);
  EXPECT_FALSE(cond_compat->default_version);
  EXPECT_NE(cond_default->value, cond_compat->value);
  EXPECT_EQ(cond_default->value, reinterpret_cast<uintptr_t>(libc_symbol("pthread_cond_wait")) - bias);
  EXPECT_EQ(cond_compat->value,
            reinterpret_cast<uintptr_t>(libc_symbol("pthread_cond_wait", "GLIBC_2.2.5")) - bias);
  EXPECT_EQ(libc->find_symbol("pthread_mutex_lock@@GLIBC_9.99"), nullptr);

  auto at = libc->function_at(plain->value + 0x10);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->symbol->name, "pthread_mutex_lock") << "the exported name wins over __pthread_mutex_lock";
}

TEST(ElfFile, LibcDebugFileFoundByBuildId) {
  auto libc = open_or_die(kLibc);
  ASSERT_TRUE(libc);
  ASSERT_EQ(libc->build_id().size(), 40u);
  auto path = libc->debug_file_path();
  if (!path) GTEST_SKIP() << "libc6-dbg not installed: " << path.error().message();
  EXPECT_EQ(*path, "/usr/lib/debug/.build-id/" + libc->build_id().substr(0, 2) + "/" + libc->build_id().substr(2) +
                       ".debug");
  auto debug = libc->open_debug_file();
  ASSERT_TRUE(debug) << debug.error().message();
  EXPECT_EQ((*debug)->build_id(), libc->build_id());
  EXPECT_TRUE((*debug)->has_symtab());

  const Symbol* wait = (*debug)->find_symbol("__lll_lock_wait");
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(wait->binding, SymbolBinding::local);
  EXPECT_EQ(wait->type, SymbolType::func);
  EXPECT_EQ(libc->find_symbol("__lll_lock_wait"), nullptr) << "local: not exported";
  // The debug file has no code: reads must fail and name the file.
  auto code = (*debug)->read(wait->value, 4);
  ASSERT_FALSE(code);
  EXPECT_NE(code.error().message().find(*path), std::string::npos);
  EXPECT_TRUE(libc->read(wait->value, 4)) << "the library itself has the bytes";

  // .gnu_debuglink names the same file, and our CRC32 must match the one the
  // linker recorded.
  ASSERT_TRUE(libc->debuglink());
  EXPECT_EQ(libc->debuglink()->name, libc->build_id().substr(2) + ".debug");
  auto crc = debuglink_crc32(*path);
  ASSERT_TRUE(crc);
  EXPECT_EQ(*crc, libc->debuglink()->crc);
}

TEST(ElfFile, DebuglinkNextToTheBinaryIsFoundAndCrcChecked) {
  auto libc = open_or_die(kLibc);
  ASSERT_TRUE(libc && libc->debuglink());
  auto debug_path = libc->debug_file_path();
  if (!debug_path) GTEST_SKIP() << debug_path.error().message();
  namespace fs = std::filesystem;
  fs::path dir = fs::path(::testing::TempDir()) / ("syncscope_debuglink_" + std::to_string(getpid()));
  fs::create_directories(dir / ".debug");
  fs::copy_file(kLibc, dir / "libc.so.6", fs::copy_options::overwrite_existing);
  fs::copy_file(*debug_path, dir / ".debug" / libc->debuglink()->name, fs::copy_options::overwrite_existing);
  auto copy = open_or_die((dir / "libc.so.6").string());
  ASSERT_TRUE(copy);
  auto found = copy->debug_file_path("/nonexistent-debug-root");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(*found, (dir / ".debug" / libc->debuglink()->name).string());

  // A file with the right name but the wrong contents fails the CRC check.
  fs::copy_file(kLibc, dir / ".debug" / libc->debuglink()->name, fs::copy_options::overwrite_existing);
  auto wrong = copy->debug_file_path("/nonexistent-debug-root");
  EXPECT_FALSE(wrong);
  fs::remove_all(dir);
}

TEST(ElfFile, BrokenFilesFailWithTheFileName) {
  struct Case {
    std::string name;
    std::string bytes;
    std::string expect;
  };
  std::string libc_bytes = slurp(kLibc);
  ASSERT_GT(libc_bytes.size(), 1u << 20);
  std::string bad_shoff = libc_bytes.substr(0, 4096);
  // e_shoff → far past the end of a 4 KiB file.
  uint64_t shoff = 0x7fffffff;
  std::memcpy(bad_shoff.data() + offsetof(Elf64_Ehdr, e_shoff), &shoff, sizeof shoff);
  std::vector<Case> cases = {
      {"empty", "", "too small"},
      {"text", "this is not an ELF file, just some words in a row", "not an ELF file"},
      {"truncated", libc_bytes.substr(0, 64 * 1024), ""},
      {"bad_shoff", bad_shoff, ""},
  };
  for (const Case& c : cases) {
    std::string path = write_temp(c.name, c.bytes);
    auto elf = ElfFile::open(path);
    EXPECT_FALSE(elf) << c.name << " opened";
    if (!elf) {
      EXPECT_NE(elf.error().message().find(path), std::string::npos) << elf.error().message();
      if (!c.expect.empty()) {
        EXPECT_NE(elf.error().message().find(c.expect), std::string::npos) << elf.error().message();
      }
    }
    std::filesystem::remove(path);
  }
  auto missing = ElfFile::open("/nonexistent/file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().sys_errno(), ENOENT);
  EXPECT_FALSE(ElfFile::open("/tmp")) << "a directory";
}

// Random corruption of a real ELF must give an error or a usable object,
// never a crash or an out-of-bounds read (this runs under ASan too).
TEST(ElfFile, SurvivesRandomCorruption) {
  std::string original = slurp("/bin/true");
  ASSERT_GT(original.size(), 1024u);
  std::mt19937 rng(1234);
  std::string path = write_temp("fuzz", "");
  int opened = 0;
  for (int round = 0; round < 300; ++round) {
    std::string bytes = original;
    int flips = 1 + static_cast<int>(rng() % 16);
    for (int k = 0; k < flips; ++k) {
      // Bias the damage towards the headers, where the offsets live.
      size_t at = (rng() % 2) ? rng() % 512 : rng() % bytes.size();
      bytes[at] = static_cast<char>(rng());
    }
    if (round % 7 == 0) bytes.resize(rng() % bytes.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    auto elf = ElfFile::open(path);
    if (!elf) {
      EXPECT_NE(elf.error().message().find(path), std::string::npos) << elf.error().message();
      continue;
    }
    ++opened;
    const ElfFile& f = **elf;
    for (const Symbol& s : f.symbols()) {
      (void)f.function_at(s.value);
      (void)f.object_at(s.value + 1);
      (void)f.read(s.value, std::min<uint64_t>(s.size, 64));
      (void)f.vaddr_to_offset(s.value);
    }
    for (const Section& s : f.sections()) (void)f.section_bytes(s);
    (void)f.data_objects();
    (void)f.debug_file_path("/nonexistent");
  }
  EXPECT_GT(opened, 0) << "some mutations should still parse";
  std::filesystem::remove(path);
}

TEST(ElfFile, BuildIdDebugPath) {
  EXPECT_EQ(build_id_debug_path("93ac61ec"), "/usr/lib/debug/.build-id/93/ac61ec.debug");
  EXPECT_EQ(build_id_debug_path("abcd", "/d"), "/d/.build-id/ab/cd.debug");
  EXPECT_EQ(build_id_debug_path(""), "");
}

}  // namespace
}  // namespace syncscope::probes
