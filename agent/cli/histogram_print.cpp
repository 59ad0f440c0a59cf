#include "agent/cli/histogram_print.h"

#include "agent/core/format.h"

#include "agent/collectors/sched.h"

namespace syncscope::cli {
namespace {

std::string stars(uint64_t value, uint64_t max, int width) {
  int n = max ? static_cast<int>(static_cast<double>(value) * width / static_cast<double>(max)) : 0;
  if (n > width) n = width;
  std::string bar(static_cast<size_t>(n), '*');
  bar.resize(static_cast<size_t>(width), ' ');
  return bar;
}

}  // namespace

std::vector<Log2Row> log2_rows(const std::array<uint64_t, LL_SLOTS>& slots, uint32_t min_shift) {
  // Row 0 of runqlat holds 0 and 1: slot 0 (below 2^min_shift) plus the
  // first octave when min_shift is 0.
  std::vector<Log2Row> rows;
  rows.push_back(Log2Row{0, min_shift == 0 ? 1 : (1ULL << min_shift) - 1, false, slots[0]});
  for (uint32_t octave = 0; octave < LL_OCTAVES; ++octave) {
    uint64_t count = 0;
    for (uint32_t sub = 0; sub < LL_SUB_BUCKETS; ++sub) count += slots[1 + octave * LL_SUB_BUCKETS + sub];
    uint32_t e = min_shift + octave;
    if (e == 0) {
      rows[0].count += count;
      continue;
    }
    rows.push_back(Log2Row{1ULL << e, (1ULL << (e + 1)) - 1, false, count});
  }
  rows.push_back(Log2Row{1ULL << (min_shift + LL_OCTAVES), 0, true, slots[LL_SLOTS - 1]});
  while (rows.size() > 1 && rows.back().count == 0) rows.pop_back();
  return rows;
}

std::string render_log2_histogram(const std::vector<Log2Row>& rows, const std::string& unit) {
  uint64_t max = 0;
  for (const Log2Row& row : rows) max = std::max(max, row.count);
  // runqlat widens its columns when values pass 2^32.
  bool wide = !rows.empty() && rows.back().low > (1ULL << 32);
  int pad = wide ? 15 : 5, unit_width = wide ? 29 : 19, width = wide ? 20 : 10;
  std::string out = fmt::format("{:{}}{:<{}} : count    distribution\n", "", pad, unit, unit_width);
  for (const Log2Row& row : rows) {
    std::string high = row.high_is_infinite ? std::string("...") : std::to_string(row.high);
    out += fmt::format("{:>{}} -> {:<{}} : {:<8} |{}|\n", row.low, width, high, width, row.count,
                       stars(row.count, max, 40));
  }
  return out;
}

std::string render_fine_histogram(const std::array<uint64_t, LL_SLOTS>& slots, uint32_t min_shift,
                                  const std::string& unit) {
  uint64_t max = 0;
  size_t last = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    max = std::max(max, slots[i]);
    if (slots[i]) last = i;
  }
  std::string out = fmt::format("{:>12} {:>12} {:<6}: count    distribution\n", "from", "below", unit);
  for (size_t i = 0; i <= last; ++i) {
    collectors::SlotBounds b = collectors::ll_slot_bounds(static_cast<uint32_t>(i), min_shift);
    if (b.upper <= b.lower) continue;
    // Sub-buckets below 4 units hold no integers when empty by construction.
    if (b.upper - b.lower < 1 && slots[i] == 0) continue;
    out += fmt::format("{:>12.6g} {:>12.6g}       : {:<8} |{}|\n", b.lower, b.upper, slots[i], stars(slots[i], max, 40));
  }
  return out;
}

}  // namespace syncscope::cli
