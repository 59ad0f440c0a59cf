// libFuzzer target for the /proc/PID/maps parser: the text comes from the
// kernel, but paths in it are chosen by whoever named the mapped files (spaces,
// " (deleted)", brackets, escapes), and tests feed hand-written maps too.
// fuzz-sources: probes/proc_maps.cpp probes/elf_file.cpp
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "probes/proc_maps.h"

using namespace syncscope::probes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto maps = parse_maps(text, "fuzz");
  if (!maps) return 0;
  for (const Mapping& m : *maps) {
    (void)find_mapping(*maps, m.start);
    (void)find_mapping(*maps, m.end);
    (void)find_mapping(*maps, m.end ? m.end - 1 : 0);
    (void)m.file_offset(m.start);
    (void)host_path(1, m);
  }
  (void)find_mapping(*maps, 0);
  (void)find_mapping(*maps, ~uint64_t{0});
  (void)executable_file_mappings(*maps);
  return 0;
}
