// The exposition writers against golden text, and the rendered output of the
// real collectors' metric shapes against promtool.
#include <gtest/gtest.h>

#include "agent/collectors/sched.h"
#include "agent/metrics/exposition.h"
#include "agent/metrics/metric.h"
#include "tests/support/exposition_check.h"

namespace syncscope::metrics {
namespace {

std::vector<Family> sample_families() {
  std::vector<Family> families;
  families.push_back(counter("syncscope_events_lost_total", "Events dropped.")
                         .add({{"source", "futex"}}, 3)
                         .add({{"source", "odd\"name\\with\nnewline"}}, 0));
  families.push_back(gauge("syncscope_build_info", "Build.").add({{"version", "1.0"}}, 1));
  Histogram h;
  h.buckets = {{0.001, 1}, {0.0025, 3}, {0.5, 4}};
  h.count = 5;
  h.sum = 1.25;
  families.push_back(histogram("syncscope_runq_latency_seconds", "Waits.").add_histogram({{"cgroup", "/a"}}, h));
  families.push_back(gauge("syncscope_ratio", "A ratio.").add({}, 0.125).add({{"k", "inf"}}, INFINITY));
  return families;
}

TEST(Exposition, TextFormatGolden) {
  EXPECT_EQ(render_text(sample_families()),
            "# HELP syncscope_events_lost_total Events dropped.\n"
            "# TYPE syncscope_events_lost_total counter\n"
            "syncscope_events_lost_total{source=\"futex\"} 3\n"
            "syncscope_events_lost_total{source=\"odd\\\"name\\\\with\\nnewline\"} 0\n"
            "# HELP syncscope_build_info Build.\n"
            "# TYPE syncscope_build_info gauge\n"
            "syncscope_build_info{version=\"1.0\"} 1\n"
            "# HELP syncscope_runq_latency_seconds Waits.\n"
            "# TYPE syncscope_runq_latency_seconds histogram\n"
            "syncscope_runq_latency_seconds_bucket{cgroup=\"/a\",le=\"0.001\"} 1\n"
            "syncscope_runq_latency_seconds_bucket{cgroup=\"/a\",le=\"0.0025\"} 3\n"
            "syncscope_runq_latency_seconds_bucket{cgroup=\"/a\",le=\"0.5\"} 4\n"
            "syncscope_runq_latency_seconds_bucket{cgroup=\"/a\",le=\"+Inf\"} 5\n"
            "syncscope_runq_latency_seconds_sum{cgroup=\"/a\"} 1.25\n"
            "syncscope_runq_latency_seconds_count{cgroup=\"/a\"} 5\n"
            "# HELP syncscope_ratio A ratio.\n"
            "# TYPE syncscope_ratio gauge\n"
            "syncscope_ratio 0.125\n"
            "syncscope_ratio{k=\"inf\"} +Inf\n");
}

TEST(Exposition, OpenMetricsGolden) {
  std::vector<Family> families;
  families.push_back(counter("syncscope_events_lost_total", "Events \"dropped\".").add({{"source", "futex"}}, 3));
  Histogram h;
  h.buckets = {{1, 2}};
  h.count = 2;
  h.sum = 0.5;
  families.push_back(histogram("syncscope_runq_length", "Length.").add_histogram({{"cpu", "0"}}, h));
  EXPECT_EQ(render_openmetrics(families),
            "# HELP syncscope_events_lost Events \\\"dropped\\\".\n"
            "# TYPE syncscope_events_lost counter\n"
            "syncscope_events_lost_total{source=\"futex\"} 3\n"
            "# HELP syncscope_runq_length Length.\n"
            "# TYPE syncscope_runq_length histogram\n"
            "syncscope_runq_length_bucket{cpu=\"0\",le=\"1\"} 2\n"
            "syncscope_runq_length_bucket{cpu=\"0\",le=\"+Inf\"} 2\n"
            "syncscope_runq_length_sum{cpu=\"0\"} 0.5\n"
            "syncscope_runq_length_count{cpu=\"0\"} 2\n"
            "# EOF\n");
}

TEST(Exposition, ContentNegotiation) {
  EXPECT_TRUE(wants_openmetrics(
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
  EXPECT_FALSE(wants_openmetrics("text/plain;version=0.0.4"));
  EXPECT_FALSE(wants_openmetrics(""));
}

TEST(Exposition, ValueFormatting) {
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(-2), "-2");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(1e-9), "1e-09");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(NAN), "NaN");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
}

TEST(Exposition, RegistryMergesFamiliesAcrossSources) {
  struct Source : MetricSource {
    std::string kind;
    explicit Source(std::string k) : kind(std::move(k)) {}
    void collect(std::vector<Family>& out) const override {
      out.push_back(counter("syncscope_lock_contentions_total", "Contended.").add({{"kind", kind}}, 1));
    }
  };
  Source futex("futex"), go("go_mutex");
  Registry registry;
  registry.add(&futex);
  registry.add(&go);
  auto families = registry.collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.size(), 2u);
  registry.remove(&go);
  EXPECT_EQ(registry.collect()[0].samples.size(), 1u);
}

// The run-queue histogram as the sched collector exports it (all 89 finite
// buckets) passes promtool and the checks promtool does not make.
TEST(Exposition, RealHistogramShapesPassPromtoolAndInvariants) {
  collectors::RunqHistogram runq;
  for (uint32_t i = 0; i < LL_SLOTS; ++i) runq.slots[i] = i % 3;
  runq.sum_ns = 123456789;
  std::vector<Family> families = sample_families();
  families.push_back(
      histogram("syncscope_test_runq_seconds", "Run-queue shape.").add_histogram({{"cgroup", "/"}}, runq.to_metric()));
  std::string text = render_text(families);
  auto problems = testing::check_histograms(text);
  EXPECT_TRUE(problems.empty()) << problems.front();
  auto promtool = testing::promtool_check_metrics(text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
}

TEST(Exposition, InvariantCheckerCatchesBrokenHistograms) {
  std::string broken =
      "# TYPE h histogram\n"
      "h_bucket{le=\"1\"} 3\n"
      "h_bucket{le=\"0.5\"} 2\n"
      "h_bucket{le=\"+Inf\"} 4\n"
      "h_count 5\n"
      "h_sum 1\n";
  auto problems = testing::check_histograms(broken);
  EXPECT_EQ(problems.size(), 3u);  // order, decreasing count, _count != +Inf
}

}  // namespace
}  // namespace syncscope::metrics
