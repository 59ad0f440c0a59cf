// Window counters, burn-rate math, the default policy table and persistence.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "agent/slo/burn_rate.h"
#include "tests/support/temp_dir.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kStart = 1'800'000'000;

using testing::TempDir;

TEST(SloWindowCounter, ExactPerSecondWindows) {
  WindowCounter counter(20s, kStart);
  for (int64_t t = 1; t <= 30; ++t) counter.add(kStart + t, 10, t > 25 ? 1 : 0);
  // (now-4, now]: seconds 27..30, each 10 good and 1 bad.
  EXPECT_EQ(counter.window(kStart + 30, 4s), (EventCounts{40, 4}));
  EXPECT_EQ(counter.window(kStart + 30, 20s), (EventCounts{200, 5}));
  EXPECT_EQ(counter.window(kStart + 30, 1s), (EventCounts{10, 1}));
  EXPECT_EQ(counter.cumulative(), (EventCounts{300, 5}));
}

TEST(SloWindowCounter, HistoryBeforeStartIsEmpty) {
  WindowCounter counter(1h, kStart);
  counter.add(kStart + 1, 5, 5);
  EXPECT_EQ(counter.window(kStart + 1, 1h), (EventCounts{5, 5}));
}

TEST(SloWindowCounter, GapsCountAsNoEvents) {
  WindowCounter counter(1h, kStart);
  counter.add(kStart + 1, 100, 0);
  counter.add(kStart + 1000, 0, 7);  // nothing for ~17 minutes
  EXPECT_EQ(counter.window(kStart + 1000, 5s), (EventCounts{0, 7}));
  EXPECT_EQ(counter.window(kStart + 1000, 1h), (EventCounts{100, 7}));
  // A gap longer than every ring.
  counter.add(kStart + 10'000, 1, 0);
  EXPECT_EQ(counter.window(kStart + 10'000, 1h), (EventCounts{1, 0}));
}

TEST(SloWindowCounter, ClockSteppingBackBooksIntoLatestSecond) {
  WindowCounter counter(60s, kStart);
  counter.add(kStart + 10, 1, 0);
  counter.add(kStart + 5, 0, 1);
  EXPECT_EQ(counter.latest_second(), kStart + 10);
  EXPECT_EQ(counter.window(kStart + 10, 1s), (EventCounts{1, 1}));
}

TEST(SloWindowCounter, CoarseRingsStayCloseAtSteadyRate) {
  // A 30-day SLO, 3 days of a steady 100 events/s with 1% bad.
  WindowCounter counter(std::chrono::hours(24 * 30), kStart);
  const int64_t end = kStart + 3 * 86400;
  for (int64_t t = kStart + 1; t <= end; ++t) counter.add(t, 99, 1);
  for (std::chrono::seconds window : {5min, 30min, 60min, 360min, 1440min, 4320min}) {
    const EventCounts counts = counter.window(end, window);
    const double expected = 100.0 * static_cast<double>(window.count());
    EXPECT_NEAR(static_cast<double>(counts.total()), expected, expected * 0.002) << window.count();
    EXPECT_NEAR(burn_rate(counts, 99.0), 1.0, 0.01) << window.count();
  }
  // Older than the history: everything there is.
  EXPECT_EQ(counter.window(end, std::chrono::hours(24 * 30)).total(), 100u * 3 * 86400);
}

TEST(SloWindowCounter, MemoryIsBoundedForLongWindows) {
  WindowCounter month(std::chrono::hours(24 * 30), kStart);
  EXPECT_LT(month.memory_bytes(), 50u * 1024);
  WindowCounter hour(1h, kStart);
  EXPECT_LT(hour.memory_bytes(), 12u * 1024);
  WindowCounter seconds(20s, kStart);
  EXPECT_LT(seconds.memory_bytes(), 1024u);
}

TEST(SloBurnRate, Math) {
  EXPECT_DOUBLE_EQ(burn_rate({99, 1}, 99.0), 1.0);
  EXPECT_NEAR(burn_rate({856, 144}, 99.0), 14.4, 1e-9);
  EXPECT_DOUBLE_EQ(burn_rate({0, 0}, 99.0), 0.0);
  EXPECT_NEAR(burn_rate({999, 1}, 99.9), 1.0, 1e-9);
  EXPECT_NEAR(error_budget_remaining({995, 5}, 99.0), 0.5, 1e-9);
  EXPECT_NEAR(error_budget_remaining({980, 20}, 99.0), -1.0, 1e-9);  // overspent
  EXPECT_DOUBLE_EQ(error_budget_remaining({0, 0}, 99.0), 1.0);
  EXPECT_TRUE(std::isinf(burn_rate({1, 1}, 100.0)));
}

TEST(SloAlertRules, DefaultTableFor30Days) {
  config::SloConfig slo;
  slo.window = std::chrono::hours(24 * 30);
  EXPECT_EQ(alert_rules(slo), (std::vector<AlertRule>{
                                  {Severity::page, 1h, 5min, 14.4},
                                  {Severity::page, 6h, 30min, 6},
                                  {Severity::ticket, 72h, 6h, 1},
                              }));
  EXPECT_EQ(lookback(slo, alert_rules(slo)), std::chrono::hours(24 * 30));
}

TEST(SloAlertRules, DefaultTableScaledToWindow) {
  config::SloConfig slo;
  slo.window = std::chrono::hours(24 * 7);  // 7/30 of the table
  EXPECT_EQ(alert_rules(slo), (std::vector<AlertRule>{
                                  {Severity::page, 840s, 70s, 14.4},
                                  {Severity::page, 5040s, 420s, 6},
                                  {Severity::ticket, 60480s, 5040s, 1},
                              }));
  slo.window = 1h;  // 5 min scales below a second: one evaluation
  EXPECT_EQ(alert_rules(slo)[0], (AlertRule{Severity::page, 5s, 1s, 14.4}));
}

TEST(SloAlertRules, CustomRulesReplaceTheTable) {
  config::SloConfig slo;
  slo.window = 1h;
  slo.alerting.page = {{20s, 4s, 5}};
  EXPECT_EQ(alert_rules(slo), (std::vector<AlertRule>{{Severity::page, 20s, 4s, 5}}));
  slo.alerting.page = {{1500ms, 300ms, 2}};  // sub-second: rounded, at least one second
  EXPECT_EQ(alert_rules(slo), (std::vector<AlertRule>{{Severity::page, 2s, 1s, 2}}));
  slo.alerting.page.clear();
  slo.alerting.ticket = {{2h, 10min, 1}};
  EXPECT_EQ(lookback(slo, alert_rules(slo)), 2h);  // a rule longer than the window
}

TEST(SloWindowCounter, SaveLoadRoundTripAcrossDowntime) {
  TempDir dir;
  const std::string path = dir.path() + "/api.counts";
  {
    WindowCounter counter(std::chrono::hours(24 * 30), kStart);
    for (int64_t t = 1; t <= 600; ++t) counter.add(kStart + t, 10, t % 10 == 0 ? 1 : 0);
    ASSERT_TRUE(counter.save(path).has_value());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  }
  // The agent was down for 100 s.
  WindowCounter restored(std::chrono::hours(24 * 30), kStart + 700);
  auto loaded = restored.load(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  EXPECT_EQ(restored.cumulative(), (EventCounts{6000, 60}));
  restored.add(kStart + 700, 1, 0);
  EXPECT_EQ(restored.window(kStart + 700, 100s), (EventCounts{1, 0}));  // the gap holds nothing
  EXPECT_EQ(restored.window(kStart + 700, 1h), (EventCounts{6001, 60}));
  // The last 5 minutes before the stop are still exact to the second.
  EXPECT_EQ(restored.window(kStart + 600, 10s), (EventCounts{100, 1}));
}

TEST(SloWindowCounter, LoadResamplesIntoAnotherLayout) {
  TempDir dir;
  const std::string path = dir.path() + "/x.counts";
  WindowCounter small(20s, kStart);
  for (int64_t t = 1; t <= 20; ++t) small.add(kStart + t, 3, 1);
  ASSERT_TRUE(small.save(path).has_value());
  WindowCounter large(std::chrono::hours(24), kStart + 20);  // the SLO window grew
  ASSERT_TRUE(large.load(path).has_value());
  EXPECT_EQ(large.window(kStart + 20, 1h), (EventCounts{60, 20}));
  EXPECT_EQ(large.window(kStart + 20, 10s), (EventCounts{30, 10}));
}

TEST(SloWindowCounter, LoadRefusesDamagedFiles) {
  TempDir dir;
  const std::string path = dir.path() + "/bad.counts";
  WindowCounter counter(60s, kStart);
  EXPECT_EQ(counter.load(path).error().sys_errno(), ENOENT);
  counter.add(kStart + 1, 1, 1);
  ASSERT_TRUE(counter.save(path).has_value());
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(40);
    file.put('\x7f');
  }
  WindowCounter other(60s, kStart);
  auto loaded = other.load(path);
  ASSERT_FALSE(loaded.has_value());
  EXPECT_NE(loaded.error().message().find(path), std::string::npos);
  EXPECT_NE(loaded.error().message().find("corrupt"), std::string::npos);
  std::ofstream(path) << "garbage";
  EXPECT_FALSE(other.load(path).has_value());
  EXPECT_EQ(other.cumulative(), (EventCounts{}));
}

}  // namespace
}  // namespace syncscope::slo
