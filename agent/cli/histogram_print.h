// Terminal histograms in libbpf-tools' layout (runqlat, biolatency …), as pure
// functions over the kernel's log-linear slots so they are golden-tested.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/lib/histogram.h"

namespace syncscope::cli {

// One power-of-two row: values low..high inclusive.
struct Log2Row {
  uint64_t low = 0;
  uint64_t high = 0;
  bool high_is_infinite = false;  // the overflow row
  uint64_t count = 0;
};

// Merges the four sub-buckets of each octave into runqlat's rows ("0 -> 1",
// "2 -> 3", "4 -> 7", …), up to the last non-empty one.
std::vector<Log2Row> log2_rows(const std::array<uint64_t, LL_SLOTS>& slots, uint32_t min_shift);

// "     usecs               : count    distribution\n         0 -> 1 …"
std::string render_log2_histogram(const std::vector<Log2Row>& rows, const std::string& unit);

// Every sub-bucket with its real bounds, for thresholds between powers of two.
std::string render_fine_histogram(const std::array<uint64_t, LL_SLOTS>& slots, uint32_t min_shift,
                                  const std::string& unit);

}  // namespace syncscope::cli
