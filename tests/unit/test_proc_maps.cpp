// /proc/PID/maps parsing on literal text and on this process.
#include "probes/proc_maps.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

extern "C" __attribute__((noinline, used)) int syncscope_test_maps_target(int x) {
  asm volatile("" ::: "memory");
  return x + 7;
}
// Large enough that its tail is past the file-backed pages: an anonymous mapping.
extern "C" {
__attribute__((used)) char syncscope_test_maps_bss[1 << 20];
}

namespace syncscope::probes {
namespace {

constexpr std::string_view kMaps =
    "55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
    "55d0c8a02000-55d0c8a07000 r-xp 00002000 fe:00 247134                     /usr/bin/cat\n"
    "55d0c9f00000-55d0c9f21000 rw-p 00000000 00:00 0                          [heap]\n"
    "7f4737400000-7f4737420000 rw-p 00000000 00:00 0 \n"
    "7f47375c0000-7f47375e7000 r-xp 00001000 08:11 1234  /tmp/my lib.so (deleted)\n"
    "7f47375e7000-7f47375e8000 rw-s 00000000 00:05 99                         /SYSV00000000 (deleted)\n"
    "7f47375f0000-7f47375f1000 r--p 00000000 00:00 0                          [anon:glibc: loader malloc]\n"
    "7ffe76370000-7ffe76391000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffe763f0000-7ffe763f2000 r-xp 00000000 00:00 0                          [vdso]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(ProcMaps, ParsesEveryKindOfLine) {
  auto maps = parse_maps(kMaps);
  ASSERT_TRUE(maps) << maps.error().message();
  ASSERT_EQ(maps->size(), 10u);
  const Mapping& text = (*maps)[1];
  EXPECT_EQ(text.start, 0x55d0c8a02000u);
  EXPECT_EQ(text.end, 0x55d0c8a07000u);
  EXPECT_TRUE(text.readable && text.executable && !text.writable && !text.shared);
  EXPECT_EQ(text.offset, 0x2000u);
  EXPECT_EQ(text.dev_major, 0xfeu);
  EXPECT_EQ(text.dev_minor, 0u);
  EXPECT_EQ(text.inode, 247134u);
  EXPECT_EQ(text.path, "/usr/bin/cat");
  EXPECT_EQ(text.kind, MappingKind::file);

  EXPECT_EQ((*maps)[2].kind, MappingKind::heap);
  EXPECT_EQ((*maps)[3].kind, MappingKind::anonymous);
  EXPECT_EQ((*maps)[3].path, "");
  const Mapping& deleted = (*maps)[4];
  EXPECT_EQ(deleted.path, "/tmp/my lib.so");
  EXPECT_TRUE(deleted.deleted);
  EXPECT_EQ(deleted.dev_major, 8u);
  EXPECT_EQ(deleted.dev_minor, 0x11u);
  EXPECT_TRUE((*maps)[5].shared);
  EXPECT_TRUE((*maps)[5].deleted);
  EXPECT_EQ((*maps)[6].kind, MappingKind::special);
  EXPECT_EQ((*maps)[6].path, "[anon:glibc: loader malloc]");
  EXPECT_EQ((*maps)[7].kind, MappingKind::stack);
  EXPECT_EQ((*maps)[8].kind, MappingKind::vdso);
  EXPECT_EQ((*maps)[9].kind, MappingKind::vsyscall);
}

TEST(ProcMaps, RejectsMalformedLinesNamingTheLine) {
  auto bad = parse_maps("00400000-00401000 r-xp 00000000 08:01 5 /bin/x\nnot a mapping\n", "fake/maps");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("fake/maps:2"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(parse_maps("00401000-00400000 r-xp 00000000 08:01 5 /bin/x\n")) << "end before start";
  EXPECT_FALSE(parse_maps("00400000-00401000 r-xp zzzz 08:01 5 /bin/x\n"));
  auto empty = parse_maps("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ProcMaps, FindMappingHonoursBoundaries) {
  auto maps = parse_maps(kMaps);
  ASSERT_TRUE(maps);
  EXPECT_EQ(find_mapping(*maps, 0x55d0c8a02000)->path, "/usr/bin/cat");
  EXPECT_EQ(find_mapping(*maps, 0x55d0c8a06fff)->offset, 0x2000u);
  EXPECT_EQ(find_mapping(*maps, 0x55d0c8a07000), nullptr) << "end is exclusive; a gap follows";
  EXPECT_EQ(find_mapping(*maps, 0x1000), nullptr);
  EXPECT_EQ(find_mapping(*maps, 0x7ffe76380000)->kind, MappingKind::stack);

  auto exec = executable_file_mappings(*maps);
  ASSERT_EQ(exec.size(), 2u);
  EXPECT_EQ(exec[0].path, "/usr/bin/cat");
  EXPECT_EQ(exec[1].path, "/tmp/my lib.so");
}

TEST(ProcMaps, HostPathReachesOtherMountNamespacesAndDeletedFiles) {
  auto maps = parse_maps(kMaps);
  ASSERT_TRUE(maps);
  EXPECT_EQ(host_path(42, (*maps)[1]), "/proc/42/root/usr/bin/cat");
  EXPECT_EQ(host_path(42, (*maps)[4]), "/proc/42/map_files/7f47375c0000-7f47375e7000");
}

TEST(ProcMaps, ThisProcessMapsItsOwnCode) {
  auto maps = read_maps(getpid());
  ASSERT_TRUE(maps) << maps.error().message();
  auto addr = reinterpret_cast<uint64_t>(&syncscope_test_maps_target);
  const Mapping* m = find_mapping(*maps, addr);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->executable);
  EXPECT_EQ(m->path, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_FALSE(executable_file_mappings(*maps).empty());

  auto exe = ElfFile::open(host_path(getpid(), *m));
  ASSERT_TRUE(exe) << exe.error().message();
  const Symbol* sym = (*exe)->find_symbol("syncscope_test_maps_target");
  ASSERT_NE(sym, nullptr);
  auto vaddr = file_vaddr(*m, addr, **exe);
  ASSERT_TRUE(vaddr) << vaddr.error().message();
  EXPECT_EQ(*vaddr, sym->value);

  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(addr), &info), 0);
  auto bias = load_bias(*m, **exe);
  ASSERT_TRUE(bias);
  EXPECT_EQ(*bias, (*exe)->position_independent() ? reinterpret_cast<uint64_t>(info.dli_fbase) : 0u);
  EXPECT_FALSE(file_vaddr(*m, m->end, **exe)) << "outside the mapping";
}

TEST(ProcMaps, BssTailIsAnonymousButInsideTheModule) {
  auto maps = read_maps(getpid());
  ASSERT_TRUE(maps);
  auto tail = reinterpret_cast<uint64_t>(&syncscope_test_maps_bss[sizeof syncscope_test_maps_bss - 1]);
  const Mapping* m = find_mapping(*maps, tail);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->kind, MappingKind::anonymous) << "a 1 MiB .bss array ends past the file's pages";
  // The module's last file mapping gives the bias that reaches into it.
  const Mapping* text = find_mapping(*maps, reinterpret_cast<uint64_t>(&syncscope_test_maps_target));
  ASSERT_NE(text, nullptr);
  auto exe = ElfFile::open(host_path(getpid(), *text));
  ASSERT_TRUE(exe);
  auto bias = load_bias(*text, **exe);
  ASSERT_TRUE(bias);
  auto match = (*exe)->object_at(tail - *bias);
  ASSERT_TRUE(match);
  EXPECT_EQ(match->symbol->name, "syncscope_test_maps_bss");
  EXPECT_EQ(match->offset, sizeof syncscope_test_maps_bss - 1);
}

TEST(ProcMaps, ExitedProcessesAreReportedAsSuch) {
  auto gone = read_maps(0x7ffffff0);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().sys_errno(), ESRCH);
  EXPECT_NE(gone.error().message().find("exited"), std::string::npos) << gone.error().message();

  // A zombie's maps file exists but is empty.
  std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / ("syncscope_proc_" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "77");
  std::ofstream(root / "77" / "maps").flush();
  auto zombie = read_maps(77, root.string());
  ASSERT_FALSE(zombie);
  EXPECT_EQ(zombie.error().sys_errno(), ESRCH);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace syncscope::probes
