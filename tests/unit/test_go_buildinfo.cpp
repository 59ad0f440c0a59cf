// Go version detection: the version-string parser, both .go.buildinfo
// layouts on synthetic blobs (inline 1.18+, pointer-based 1.13–1.17 in both
// byte orders), hostile inputs, and the real Go 1.19 workloads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "probes/go/buildinfo.h"
#include "probes/go/go_binary.h"

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

std::vector<std::byte> bytes_of(std::string_view s) {
  auto b = as_bytes(s);
  return {b.begin(), b.end()};
}

void append_uvarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// The module-info sentinels are 16 arbitrary bytes on each side; the parser
// only checks the framing ('\n' 17 bytes from the end).
std::string framed_modinfo() {
  return std::string(16, 'S') +
         "path\tsyncscope/workloads/gomutex\nmod\tsyncscope/workloads/gomutex\t(devel)\t\nbuild\t-compiler=gc\n" +
         std::string(16, 'E');
}

std::string inline_blob(std::string_view version, std::string_view modinfo) {
  std::string blob(kBuildInfoMagic);
  blob.push_back(8);     // pointer size
  blob.push_back(0x2);   // inline strings, little endian
  blob.resize(32, '\0');
  append_uvarint(&blob, version.size());
  blob += version;
  append_uvarint(&blob, modinfo.size());
  blob += modinfo;
  return blob;
}

TEST(GoVersion, ParsesReleasesAndPrereleases) {
  auto v = parse_go_version("go1.19.8");
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->major, 1);
  EXPECT_EQ(v->minor, 19);
  EXPECT_EQ(v->patch, 8);
  EXPECT_EQ(v->short_string(), "1.19.8");

  auto no_patch = parse_go_version("go1.20");
  ASSERT_TRUE(no_patch);
  EXPECT_EQ(no_patch->minor, 20);
  EXPECT_EQ(no_patch->patch, 0);

  auto rc = parse_go_version("go1.22rc1");
  ASSERT_TRUE(rc);
  EXPECT_EQ(rc->minor, 22);

  auto experiment = parse_go_version("go1.21.0 X:loopvar");
  ASSERT_TRUE(experiment);
  EXPECT_EQ(experiment->minor, 21);
  EXPECT_EQ(experiment->raw, "go1.21.0 X:loopvar");

  auto devel = parse_go_version("devel go1.23-4a1b2c3d Tue Jan 2 15:04:05 2024 +0000");
  ASSERT_TRUE(devel);
  EXPECT_EQ(devel->minor, 23);

  EXPECT_TRUE(v->at_least(1, 19));
  EXPECT_TRUE(v->at_least(1, 19, 8));
  EXPECT_FALSE(v->at_least(1, 19, 9));
  EXPECT_FALSE(v->at_least(1, 20));
}

TEST(GoVersion, RejectsNonVersions) {
  for (std::string_view bad : {"", "go", "go1", "go1.", "gox.19", "1.19.8", "go1.19.8.9", "go1.19x", "go123456.1",
                               "devel +abcdef", "go1.19.", "GO1.19"}) {
    EXPECT_FALSE(parse_go_version(bad)) << bad;
  }
}

TEST(GoBuildInfo, InlineLayoutOfGo118AndLater) {
  auto blob = bytes_of(inline_blob("go1.21.3", framed_modinfo()));
  auto info = parse_buildinfo(blob);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->version, "go1.21.3");
  EXPECT_TRUE(info->inline_strings);
  EXPECT_EQ(info->ptr_size, 8u);
  EXPECT_FALSE(info->big_endian);
  EXPECT_EQ(info->main_path, "syncscope/workloads/gomutex");
  EXPECT_EQ(info->module_path, "syncscope/workloads/gomutex");
  EXPECT_EQ(info->module_version, "(devel)");
}

TEST(GoBuildInfo, InlineLayoutWithoutModuleInfo) {
  auto blob = bytes_of(inline_blob("go1.18", ""));
  auto info = parse_buildinfo(blob);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->version, "go1.18");
  EXPECT_TRUE(info->module_path.empty());
}

// Pre-1.18: the header holds pointers to Go string headers {data, len}.
// Builds an image at `base`: header | version header | modinfo header | data.
std::vector<std::byte> pointer_image(unsigned ptr_size, bool big_endian, uint64_t base, std::string_view version,
                                     std::string_view modinfo) {
  std::string img(kBuildInfoMagic);
  img.push_back(static_cast<char>(ptr_size));
  img.push_back(big_endian ? 0x1 : 0x0);
  img.resize(32, '\0');
  const uint64_t version_hdr = base + 32;
  const uint64_t modinfo_hdr = version_hdr + 2 * ptr_size;
  const uint64_t version_data = modinfo_hdr + 2 * ptr_size;
  const uint64_t modinfo_data = version_data + version.size();
  auto put = [&](size_t at, uint64_t value) {
    for (unsigned i = 0; i < ptr_size; ++i) {
      const unsigned shift = big_endian ? 8 * (ptr_size - 1 - i) : 8 * i;
      img[at + i] = static_cast<char>((value >> shift) & 0xff);
    }
  };
  img.resize(32 + 4 * ptr_size, '\0');
  put(16, version_hdr);
  put(16 + ptr_size, modinfo_hdr);
  put(32, version_data);
  put(32 + ptr_size, version.size());
  put(32 + 2 * ptr_size, modinfo_data);
  put(32 + 3 * ptr_size, modinfo.size());
  img += version;
  img += modinfo;
  return bytes_of(img);
}

TEST(GoBuildInfo, PointerLayoutOfGo113To117BothByteOrders) {
  for (auto [ptr_size, big] : {std::pair{8u, false}, std::pair{4u, true}, std::pair{4u, false}, std::pair{8u, true}}) {
    const uint64_t base = 0x5a0000;
    auto img = pointer_image(ptr_size, big, base, "go1.16.15", framed_modinfo());
    FlatAddressSpace space(img, base);
    auto info = parse_buildinfo(img, &space);
    ASSERT_TRUE(info) << ptr_size << " " << big << ": " << info.error().message();
    EXPECT_EQ(info->version, "go1.16.15");
    EXPECT_FALSE(info->inline_strings);
    EXPECT_EQ(info->big_endian, big);
    EXPECT_EQ(info->module_path, "syncscope/workloads/gomutex");
    // Without the memory image the pointers cannot be followed.
    EXPECT_FALSE(parse_buildinfo(img));
  }
}

TEST(GoBuildInfo, DanglingPointersAreErrors) {
  auto img = pointer_image(8, false, 0x1000, "go1.17", "");
  FlatAddressSpace elsewhere(img, 0x900000);  // pointers lead nowhere
  EXPECT_FALSE(parse_buildinfo(img, &elsewhere));
}

TEST(GoBuildInfo, TruncatedAndGarbageInputsFailCleanly) {
  auto blob = bytes_of(inline_blob("go1.21.3", framed_modinfo()));
  for (size_t n = 0; n < 40; ++n) {
    auto r = parse_buildinfo(std::span<const std::byte>(blob).first(n));
    EXPECT_FALSE(r) << "prefix of " << n << " bytes";
  }
  for (size_t n = 40; n <= blob.size(); ++n) (void)parse_buildinfo(std::span<const std::byte>(blob).first(n));

  // A huge varint length.
  std::string huge(kBuildInfoMagic);
  huge += "\x08\x02";
  huge.resize(32, '\0');
  huge += "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
  EXPECT_FALSE(parse_buildinfo(bytes_of(huge)));

  std::mt19937 rng(7);
  std::vector<std::byte> noise(256);
  for (int round = 0; round < 2000; ++round) {
    for (auto& b : noise) b = static_cast<std::byte>(rng());
    // Keep the magic half the time so the body parsers run too.
    if (round % 2 == 0) std::memcpy(noise.data(), kBuildInfoMagic.data(), kBuildInfoMagic.size());
    FlatAddressSpace space(noise, 0);
    (void)parse_buildinfo(noise, &space);
  }
  EXPECT_FALSE(parse_buildinfo(bytes_of("not a buildinfo blob at all, just text....")));
}

TEST(GoBuildInfo, FindsMagicOnlyAt16ByteAlignment) {
  std::string data(64, 'x');
  data.replace(3, kBuildInfoMagic.size(), kBuildInfoMagic);  // misaligned: ignored
  EXPECT_FALSE(find_buildinfo(as_bytes(data)));
  data.replace(32, kBuildInfoMagic.size(), kBuildInfoMagic);
  auto at = find_buildinfo(as_bytes(data));
  ASSERT_TRUE(at);
  EXPECT_EQ(*at, 32u);
}

TEST(GoBuildInfo, ParsesGoBuildIdNote) {
  std::string id = "abc/def/ghi";
  std::string note;
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) note.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  u32(4);                 // namesz "Go\0\0"
  u32(static_cast<uint32_t>(id.size()));
  u32(4);                 // NT_GOBUILDID
  note += std::string("Go\0\0", 4);
  note += id;
  note.resize((note.size() + 3) & ~size_t{3}, '\0');
  auto parsed = parse_go_buildid_note(as_bytes(note));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(parse_go_buildid_note(as_bytes(note.substr(0, 10))));
  EXPECT_FALSE(parse_go_buildid_note(as_bytes(std::string(12, '\xff'))));
}

TEST(GoBuildInfo, RealGo119Workloads) {
  const std::string plain = workload("gomutex");
  const std::string stripped = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(plain);
  REQUIRE_WORKLOAD(stripped);
  auto a = GoBinary::open(plain);
  ASSERT_TRUE(a) << a.error().message();
  auto b = GoBinary::open(stripped);
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_TRUE(a->version());
  ASSERT_TRUE(b->version());
  // This machine builds with Debian's golang-go 1.19.
  EXPECT_EQ(a->version()->major, 1);
  EXPECT_EQ(a->version()->minor, 19);
  EXPECT_EQ(*a->version(), *b->version());
  ASSERT_TRUE(a->build_info());
  EXPECT_TRUE(a->build_info()->inline_strings);
  EXPECT_EQ(a->build_info()->main_path, "syncscope/workloads/gomutex");
  EXPECT_EQ(a->build_info()->module_path, "syncscope/workloads/gomutex");
  EXPECT_FALSE(a->build_id().empty());
  EXPECT_EQ(a->build_id(), b->build_id());
  EXPECT_TRUE(a->has_symtab());
  EXPECT_FALSE(b->has_symtab());
}

TEST(GoBinaryOpen, RejectsNonGoAndMissingFiles) {
  EXPECT_FALSE(GoBinary::open("/nonexistent/definitely/not/here"));
  auto self = GoBinary::open("/proc/self/exe");  // the C++ test binary itself
  ASSERT_FALSE(self);
  EXPECT_NE(self.error().message().find("not a usable Go binary"), std::string::npos) << self.error().message();
}

}  // namespace
}  // namespace syncscope::probes::go
