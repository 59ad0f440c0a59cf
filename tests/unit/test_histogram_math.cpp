// The log-linear bucket math shared by the BPF programs and user space.
#include <gtest/gtest.h>

#include <cmath>

#include "agent/cli/histogram_print.h"
#include "agent/collectors/sched.h"
#include "bpf/lib/histogram.h"

namespace syncscope {
namespace {

using collectors::ll_slot_bounds;

TEST(HistogramMath, Log2MatchesDefinition) {
  for (uint64_t v : {1ULL, 2ULL, 3ULL, 4ULL, 1023ULL, 1024ULL, 1ULL << 31, (1ULL << 32) + 5, ~0ULL}) {
    uint32_t expected = 0;
    while ((v >> expected) > 1) ++expected;
    EXPECT_EQ(ll_log2_u64(v), expected) << v;
  }
}

// Every value falls in the slot whose bounds contain it, for both the agent's
// nanosecond layout and the CLI's microsecond one.
TEST(HistogramMath, EveryValueLandsInsideItsSlotBounds) {
  for (uint32_t min_shift : {0u, static_cast<uint32_t>(LL_MIN_SHIFT)}) {
    for (uint64_t v = 0; v < 200000; v += (v < 5000 ? 1 : 97)) {
      uint32_t slot = ll_slot(v, min_shift);
      ASSERT_LT(slot, static_cast<uint32_t>(LL_SLOTS));
      auto b = ll_slot_bounds(slot, min_shift);
      EXPECT_LE(b.lower, static_cast<double>(v)) << "v=" << v << " slot=" << slot;
      EXPECT_LT(static_cast<double>(v), b.upper) << "v=" << v << " slot=" << slot;
    }
  }
}

TEST(HistogramMath, FourSubBucketsPerPowerOfTwo) {
  // 4 ms .. 8 ms splits at 5, 6 and 7 ms (times 1.048576: 2^22 ns = 4.19 ms).
  EXPECT_EQ(ll_slot(1ULL << 22, LL_MIN_SHIFT) + 1, ll_slot((1ULL << 22) + (1ULL << 20), LL_MIN_SHIFT));
  auto b = ll_slot_bounds(ll_slot(5'000'000, LL_MIN_SHIFT), LL_MIN_SHIFT);
  EXPECT_DOUBLE_EQ(b.lower, 4194304.0);
  EXPECT_DOUBLE_EQ(b.upper, 5242880.0);
  EXPECT_LE((b.upper - b.lower) / b.lower, 0.25);
}

TEST(HistogramMath, UnderflowAndOverflowSlots) {
  EXPECT_EQ(ll_slot(0, LL_MIN_SHIFT), 0u);
  EXPECT_EQ(ll_slot(1023, LL_MIN_SHIFT), 0u);
  EXPECT_EQ(ll_slot(1024, LL_MIN_SHIFT), 1u);
  EXPECT_EQ(ll_slot(1ULL << 32, LL_MIN_SHIFT), static_cast<uint32_t>(LL_SLOTS - 1));
  EXPECT_EQ(ll_slot(~0ULL, LL_MIN_SHIFT), static_cast<uint32_t>(LL_SLOTS - 1));
  EXPECT_TRUE(std::isinf(ll_slot_bounds(LL_SLOTS - 1, LL_MIN_SHIFT).upper));
}

// Merging sub-buckets gives runqlat's rows exactly: 0 and 1 in row 0, then
// [2^k, 2^(k+1) - 1].
TEST(HistogramMath, Log2RowsMatchRunqlatRows) {
  std::array<uint64_t, LL_SLOTS> slots{};
  for (uint64_t v : {0ULL, 1ULL, 2ULL, 3ULL, 4ULL, 7ULL, 8ULL, 1000ULL, 1023ULL, 1024ULL})
    slots[ll_slot(v, 0)]++;
  auto rows = cli::log2_rows(slots, 0);
  ASSERT_EQ(rows.size(), 11u);
  EXPECT_EQ(rows[0].low, 0u);
  EXPECT_EQ(rows[0].high, 1u);
  EXPECT_EQ(rows[0].count, 2u);
  EXPECT_EQ(rows[1].count, 2u);  // 2, 3
  EXPECT_EQ(rows[2].count, 2u);  // 4, 7
  EXPECT_EQ(rows[3].count, 1u);  // 8
  EXPECT_EQ(rows[9].low, 512u);
  EXPECT_EQ(rows[9].high, 1023u);
  EXPECT_EQ(rows[9].count, 2u);
  EXPECT_EQ(rows[10].low, 1024u);
  EXPECT_EQ(rows[10].count, 1u);
}

TEST(HistogramMath, RendersLikeRunqlat) {
  std::array<uint64_t, LL_SLOTS> slots{};
  slots[ll_slot(1, 0)] = 3;
  slots[ll_slot(2, 0)] = 1;
  slots[ll_slot(5, 0)] = 6;
  std::string text = cli::render_log2_histogram(cli::log2_rows(slots, 0), "usecs");
  EXPECT_EQ(text,
            "     usecs               : count    distribution\n"
            "         0 -> 1          : 3        |********************                    |\n"
            "         2 -> 3          : 1        |******                                  |\n"
            "         4 -> 7          : 6        |****************************************|\n");
}

TEST(HistogramMath, MetricHistogramIsCumulativeAndCountMatchesInf) {
  collectors::RunqHistogram h;
  h.slots[0] = 2;
  h.slots[10] = 5;
  h.slots[LL_SLOTS - 1] = 1;
  h.sum_ns = 3'000'000'000;
  metrics::Histogram m = h.to_metric();
  ASSERT_EQ(m.buckets.size(), static_cast<size_t>(LL_SLOTS - 1));
  EXPECT_EQ(m.buckets.front().second, 2u);
  EXPECT_EQ(m.buckets.back().second, 7u);
  EXPECT_EQ(m.count, 8u);
  EXPECT_DOUBLE_EQ(m.sum, 3.0);
  for (size_t i = 1; i < m.buckets.size(); ++i) {
    EXPECT_LT(m.buckets[i - 1].first, m.buckets[i].first);
    EXPECT_LE(m.buckets[i - 1].second, m.buckets[i].second);
  }
}

}  // namespace
}  // namespace syncscope
