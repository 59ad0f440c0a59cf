// libFuzzer target for the Go pclntab reader: the agent parses .gopclntab of
// any Go binary it is pointed at, stripped or hostile ones included, so no
// input may crash it, hang it or read out of bounds.
// fuzz-sources: probes/go/pclntab.cpp agent/core/log.cpp
#include <cstddef>
#include <cstdint>
#include <span>

#include "probes/go/pclntab.h"

using namespace syncscope::probes::go;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  (void)parse_pclntab_header(bytes);
  // With and without a caller-supplied text start (the Go 1.26 path).
  for (auto options : {PclnTable::Options{}, PclnTable::Options{0x401000}}) {
    auto table = PclnTable::parse(bytes, options);
    if (!table) continue;
    size_t queried = 0;
    for (const auto& fn : table->functions()) {
      if (++queried > 256) break;  // keep each input fast
      (void)table->find_function(fn.name);
      (void)table->function_for_pc(fn.entry);
      (void)table->source_line(fn.entry);
      (void)table->source_line(fn.end ? fn.end - 1 : 0);
      (void)table->source_line(fn.entry + (fn.end - fn.entry) / 2);
    }
    (void)table->function_for_pc(0);
    (void)table->function_for_pc(~0ull);
  }
  if (size < 64 * 1024) (void)find_pclntab_candidates(bytes);
  return 0;
}
