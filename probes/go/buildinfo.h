// Which Go toolchain built a binary, from its `.go.buildinfo` blob.
//
// The Go linker writes a 32-byte header ("\xff Go buildinf:", pointer size,
// flags) followed by the toolchain version ("go1.21.3") and the module info
// that `go version -m` prints. Two layouts exist:
//   - Go 1.18 and later (flag bit 1 set): both strings follow the header
//     inline, each prefixed by its uvarint length;
//   - Go 1.13–1.17: the header holds two pointers to Go string headers
//     (data pointer, length) elsewhere in the image, read through an
//     AddressSpace, in the byte order given by flag bit 0.
// The parsers are pure over bytes so they can be unit-tested on synthetic
// blobs and fuzzed; go_binary.cpp finds the bytes in the ELF file.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>

#include "agent/core/result.h"
#include "probes/go/byte_view.h"

namespace syncscope::probes::go {

// A released Go version: go1.21.3 → {1, 21, 3}; go1.20 and go1.22rc1 have
// patch 0. `raw` keeps the whole string (with any " X:experiment" suffix).
struct GoVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string raw;

  bool at_least(int want_major, int want_minor, int want_patch = 0) const {
    return std::tie(major, minor, patch) >= std::tie(want_major, want_minor, want_patch);
  }
  // "1.21.3"
  std::string short_string() const;
  friend bool operator==(const GoVersion& a, const GoVersion& b) {
    return a.major == b.major && a.minor == b.minor && a.patch == b.patch;
  }
};

// Parses "go1.21.3", "go1.20", "go1.22rc1", "go1.21.0 X:loopvar". Development
// builds ("devel go1.23-abcdef …") name the release they precede, which is
// returned as x.y.0. Anything else is an error.
Result<GoVersion> parse_go_version(std::string_view text);

struct BuildInfo {
  std::string version;          // "go1.19.8"
  std::string main_path;        // "path" line: the main package, "syncscope/workloads/gomutex"
  std::string module_path;      // "mod" line: the main module's path
  std::string module_version;   // "mod" line: its version, "(devel)" for local builds
  unsigned ptr_size = 0;        // 4 or 8
  bool big_endian = false;
  bool inline_strings = false;  // the Go 1.18+ layout
};

inline constexpr std::string_view kBuildInfoMagic = "\xff Go buildinf:";
inline constexpr size_t kBuildInfoHeaderSize = 32;

// Parses a buildinfo blob that starts with the magic. `image` resolves the
// pointers of the pre-1.18 layout; without one that layout is an error.
Result<BuildInfo> parse_buildinfo(std::span<const std::byte> blob, const AddressSpace* image = nullptr);

// Offset of the buildinfo magic in `data`, searched at 16-byte alignment as
// the linker places it (the section is absent in some link modes, so the
// loader searches writable data for it).
std::optional<size_t> find_buildinfo(std::span<const std::byte> data);

// The build ID string from the contents of a `.note.go.buildid` section (an
// ELF note named "Go" of type 4).
Result<std::string> parse_go_buildid_note(std::span<const std::byte> note, bool big_endian = false);

}  // namespace syncscope::probes::go
