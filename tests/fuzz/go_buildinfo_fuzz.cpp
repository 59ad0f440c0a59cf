// libFuzzer target for the Go buildinfo, version and build-ID note parsers.
// The input doubles as the memory image the pre-1.18 layout's pointers are
// followed into.
// fuzz-sources: probes/go/buildinfo.cpp agent/core/log.cpp
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "probes/go/buildinfo.h"

using namespace syncscope::probes::go;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  FlatAddressSpace image(bytes, 0x1000);
  (void)parse_buildinfo(bytes, &image);
  (void)parse_buildinfo(bytes);
  (void)find_buildinfo(bytes);
  (void)parse_go_buildid_note(bytes);
  (void)parse_go_buildid_note(bytes, true);
  (void)parse_go_version(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
