#include "probes/go/buildinfo.h"

#include "agent/core/format.h"
#include <string>

namespace syncscope::probes::go {
namespace {

constexpr uint8_t kFlagBigEndian = 0x1;
constexpr uint8_t kFlagInline = 0x2;
// A version or module string longer than this is corruption, not a build.
constexpr uint64_t kMaxStringLength = 1 << 20;

// Reads up to 4 decimal digits at s[*pos]; Go's version numbers are small and
// a bound keeps hostile input from overflowing an int.
std::optional<int> read_number(std::string_view s, size_t* pos) {
  size_t start = *pos;
  int value = 0;
  while (*pos < s.size() && *pos - start < 4 && s[*pos] >= '0' && s[*pos] <= '9') {
    value = value * 10 + (s[*pos] - '0');
    ++*pos;
  }
  if (*pos == start) return std::nullopt;
  if (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') return std::nullopt;
  return value;
}

// Reads one uvarint-prefixed string of the inline (1.18+) layout.
std::optional<std::string_view> read_inline_string(const ByteView& view, uint64_t* offset) {
  auto length = view.uvarint(offset);
  if (!length || *length > kMaxStringLength) return std::nullopt;
  auto text = view.text(*offset, *length);
  if (!text) return std::nullopt;
  *offset += *length;
  return text;
}

// Follows a pointer to a Go string header {data *byte, len int} (pre-1.18).
Result<std::string> read_string_header(const AddressSpace& image, uint64_t header_vaddr, unsigned ptr_size,
                                       bool big_endian, std::string_view what) {
  auto data = image.read_pointer(header_vaddr, ptr_size, big_endian);
  auto length = image.read_pointer(header_vaddr + ptr_size, ptr_size, big_endian);
  if (!data || !length) return fail(fmt::format("buildinfo: {} string header at {:#x} is not in the file", what, header_vaddr));
  if (*length > kMaxStringLength) return fail(fmt::format("buildinfo: {} string length {} is implausible", what, *length));
  if (*length == 0) return std::string();
  auto bytes = image.read(*data, *length);
  if (!bytes) return fail(fmt::format("buildinfo: {} string data at {:#x} is not in the file", what, *data));
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

// The module info is framed by 16 bytes of sentinel on each side; the text in
// between is lines of "path\t…", "mod\tpath\tversion\tsum", "dep\t…", "build\t…".
void parse_modinfo(std::string_view modinfo, BuildInfo* info) {
  if (modinfo.size() < 33 || modinfo[modinfo.size() - 17] != '\n') return;
  modinfo = modinfo.substr(16, modinfo.size() - 32);
  while (!modinfo.empty()) {
    size_t eol = modinfo.find('\n');
    std::string_view line = modinfo.substr(0, eol);
    modinfo = eol == std::string_view::npos ? std::string_view() : modinfo.substr(eol + 1);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) continue;
    std::string_view key = line.substr(0, tab);
    std::string_view rest = line.substr(tab + 1);
    if (key == "path") {
      info->main_path = std::string(rest);
    } else if (key == "mod") {
      size_t tab2 = rest.find('\t');
      info->module_path = std::string(rest.substr(0, tab2));
      if (tab2 != std::string_view::npos) {
        std::string_view after = rest.substr(tab2 + 1);
        info->module_version = std::string(after.substr(0, after.find('\t')));
      }
    }
  }
}

}  // namespace

std::string GoVersion::short_string() const { return fmt::format("{}.{}.{}", major, minor, patch); }

Result<GoVersion> parse_go_version(std::string_view text) {
  std::string_view s = text;
  if (s.starts_with("devel ")) s.remove_prefix(6);
  if (!s.starts_with("go")) return fail(fmt::format("Go version \"{}\": does not start with \"go\"", text));
  size_t pos = 2;
  GoVersion v;
  auto major = read_number(s, &pos);
  if (!major || pos >= s.size() || s[pos] != '.') return fail(fmt::format("Go version \"{}\": no major.minor", text));
  ++pos;
  auto minor = read_number(s, &pos);
  if (!minor) return fail(fmt::format("Go version \"{}\": no minor number", text));
  v.major = *major;
  v.minor = *minor;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    auto patch = read_number(s, &pos);
    if (!patch) return fail(fmt::format("Go version \"{}\": bad patch number", text));
    v.patch = *patch;
  }
  // Whatever follows (rc1, beta2, " X:…", "-abcdef …") does not change the
  // runtime layout we key on, but it must not be more digits or letters glued
  // to a number we misread.
  if (pos < s.size()) {
    char c = s[pos];
    bool ok = c == ' ' || c == '-' || c == '+' || s.substr(pos).starts_with("rc") || s.substr(pos).starts_with("beta");
    if (!ok) return fail(fmt::format("Go version \"{}\": unexpected text after the number", text));
  }
  v.raw = std::string(text);
  return v;
}

Result<BuildInfo> parse_buildinfo(std::span<const std::byte> blob, const AddressSpace* image) {
  ByteView view(blob);
  auto magic = view.text(0, kBuildInfoMagic.size());
  if (!magic || *magic != kBuildInfoMagic) return fail("buildinfo: no \"\\xff Go buildinf:\" magic");
  if (!view.contains(0, kBuildInfoHeaderSize)) return fail("buildinfo: header truncated");
  BuildInfo info;
  info.ptr_size = *view.u8(14);
  uint8_t flags = *view.u8(15);
  info.big_endian = (flags & kFlagBigEndian) != 0;
  info.inline_strings = (flags & kFlagInline) != 0;

  if (info.inline_strings) {
    uint64_t offset = kBuildInfoHeaderSize;
    auto version = read_inline_string(view, &offset);
    if (!version) return fail("buildinfo: inline version string truncated");
    info.version = std::string(*version);
    // The module info is absent in binaries not built in module mode; a
    // missing or truncated one only costs us the module path.
    if (auto modinfo = read_inline_string(view, &offset)) parse_modinfo(*modinfo, &info);
  } else {
    if (info.ptr_size != 4 && info.ptr_size != 8) return fail(fmt::format("buildinfo: pointer size {} is not 4 or 8", info.ptr_size));
    if (!image) return fail("buildinfo: pre-Go 1.18 layout needs the binary's memory image to follow its pointers");
    ByteView ordered(blob, info.big_endian);
    auto version_ptr = ordered.word(16, info.ptr_size);
    auto modinfo_ptr = ordered.word(16 + info.ptr_size, info.ptr_size);
    if (!version_ptr || !modinfo_ptr) return fail("buildinfo: pointer header truncated");
    info.version = TRY(read_string_header(*image, *version_ptr, info.ptr_size, info.big_endian, "version"));
    if (auto modinfo = read_string_header(*image, *modinfo_ptr, info.ptr_size, info.big_endian, "modinfo")) {
      parse_modinfo(*modinfo, &info);
    }
  }
  if (info.version.empty()) return fail("buildinfo: empty Go version string");
  return info;
}

std::optional<size_t> find_buildinfo(std::span<const std::byte> data) {
  const std::string_view hay(reinterpret_cast<const char*>(data.data()), data.size());
  for (size_t pos = hay.find(kBuildInfoMagic); pos != std::string_view::npos; pos = hay.find(kBuildInfoMagic, pos + 1)) {
    if (pos % 16 == 0) return pos;
  }
  return std::nullopt;
}

Result<std::string> parse_go_buildid_note(std::span<const std::byte> note, bool big_endian) {
  // Elf_Nhdr {namesz, descsz, type} then the name and the desc, each padded
  // to 4 bytes. A section may in principle hold several notes; walk them.
  constexpr uint32_t kGoBuildIdNoteType = 4;
  ByteView view(note, big_endian);
  uint64_t offset = 0;
  while (view.contains(offset, 12)) {
    uint32_t namesz = *view.u32(offset);
    uint32_t descsz = *view.u32(offset + 4);
    uint32_t type = *view.u32(offset + 8);
    uint64_t name_off = offset + 12;
    uint64_t desc_off = name_off + ((static_cast<uint64_t>(namesz) + 3) & ~uint64_t{3});
    uint64_t next = desc_off + ((static_cast<uint64_t>(descsz) + 3) & ~uint64_t{3});
    auto name = view.text(name_off, namesz);
    auto desc = view.text(desc_off, descsz);
    if (!name || !desc) break;
    std::string_view owner = *name;
    while (!owner.empty() && owner.back() == '\0') owner.remove_suffix(1);  // "Go\0\0"
    if (type == kGoBuildIdNoteType && owner == "Go") {
      std::string_view id = *desc;
      while (!id.empty() && id.back() == '\0') id.remove_suffix(1);
      return std::string(id);
    }
    offset = next;
  }
  return fail("no Go build ID note");
}

}  // namespace syncscope::probes::go
