// The Prometheus rules shipped for users (dashboards/rules/syncscope.rules.yaml)
// against the agent's own SLO engine: the input series of
// dashboards/rules/tests/syncscope.rules.test.yaml, fed second by second to a
// SloEngine with the default 30-day policy, must make the engine fire within
// the same minute in which `promtool test rules` expects the rule's alert
// (not firing at the earlier eval_time, firing at the later one). The same
// pattern as tests/unit/slo_rules (crowded_runq), for the shipped rules.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "agent/core/log.h"
#include "agent/slo/engine.h"
#include "tests/support/promtool_series.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SeriesSli final : public SliSource {
 public:
  std::optional<SliReading> read(const config::SloConfig& slo) const override {
    auto it = readings.find(slo.name);
    if (it == readings.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, SliReading> readings;
};

class NoNotifier final : public notify::Notifier {
 public:
  void circuit_event(const notify::CircuitNotification&) override {}
  void alert_state(const notify::AlertNotification&) override {}
};

fs::path test_file() { return testing::find_source_file("dashboards/rules/tests/syncscope.rules.test.yaml"); }

// "SLO/outcome" → per-minute values, for syncscope_slo_events_total series.
std::map<std::string, std::vector<double>> read_series(const fs::path& file) {
  std::ifstream in(file);
  std::map<std::string, std::vector<double>> series;
  std::string line, key;
  auto label = [](const std::string& text, const std::string& name) {
    const size_t at = text.find(name + "=\"");
    if (at == std::string::npos) return std::string();
    const size_t from = at + name.size() + 2;
    return text.substr(from, text.find('"', from) - from);
  };
  while (std::getline(in, line)) {
    if (line.find("series: 'syncscope_slo_events_total{") != std::string::npos) {
      key = label(line, "slo") + "/" + label(line, "outcome");
    } else if (line.find("series:") != std::string::npos) {
      key.clear();
    } else if (const size_t at = line.find("values: '"); at != std::string::npos && !key.empty()) {
      series[key] = testing::expand_series(line.substr(at + 9, line.rfind('\'') - at - 9));
    }
  }
  return series;
}

config::SloConfig default_policy(const std::string& name) {
  config::SloConfig slo;
  slo.name = name;
  slo.target = {config::TargetSelector::Kind::cgroup, "/"};
  slo.objective = 99.0;  // syncscope_slo_objective_ratio 0.99 in the promtool test file
  slo.window = std::chrono::hours(24 * 30);
  slo.min_events = 100;
  return slo;
}

// Runs the engine one evaluation per second over the per-minute counters
// (linear within each minute, as the series are) and returns the second at
// which each severity first fires.
std::map<std::string, int> first_firing(const std::string& name, const std::vector<double>& good,
                                        const std::vector<double>& bad) {
  FakeClock clock;
  SeriesSli sli;
  NoNotifier notifier;
  SloEngine engine({default_policy(name)}, sli, clock, notifier, nullptr, "");
  std::map<std::string, int> fired;
  const size_t minutes = std::min(good.size(), bad.size());
  for (size_t second = 0; second + 60 < minutes * 60; ++second) {
    const size_t m = second / 60;
    const double f = static_cast<double>(second % 60) / 60.0;
    sli.readings[name] = EventCounters{static_cast<uint64_t>(good[m] + (good[m + 1] - good[m]) * f),
                                       static_cast<uint64_t>(bad[m] + (bad[m + 1] - bad[m]) * f)};
    engine.evaluate();
    const auto alerts = nlohmann::json::parse(engine.status_json())["slos"][0]["alerts"];
    for (const char* severity : {"page", "ticket"})
      if (alerts[severity].get<bool>() && !fired.count(severity)) fired[severity] = static_cast<int>(second);
    clock.advance(1s);
  }
  return fired;
}

TEST(SloRulesAgreement, EngineFiresInTheMinutePromtoolDoes) {
  const fs::path file = test_file();
  ASSERT_FALSE(file.empty()) << "dashboards/rules/tests/syncscope.rules.test.yaml not found "
                                "(run from the source tree or set SYNCSCOPE_SOURCE_DIR)";
  const auto series = read_series(file);
  ASSERT_TRUE(series.count("api-runq/good") && series.count("api-runq/bad")) << file;
  ASSERT_TRUE(series.count("quiet/good") && series.count("quiet/bad")) << file;

  // The eval_times of the test file: not firing at the first, firing at the second.
  struct Expectation {
    std::string slo, severity;
    int not_yet_minute, fired_minute;
  };
  const Expectation expectations[] = {
      {"api-runq", "page", 163, 164},    // SyncscopeSLOBudgetBurnFast, 1h/5m > 14.4
      {"api-runq", "ticket", 126, 127},  // SyncscopeSLOBudgetBurnSlow, 3d/6h > 1
      {"quiet", "page", 99, 100},        // min_events: the 100th event in 6h
  };
  std::map<std::string, std::map<std::string, int>> fired;
  // Hours of simulated circuit renewals would flood the test log.
  const log::Level level = log::min_level();
  log::set_min_level(log::Level::error);
  for (const char* slo : {"api-runq", "quiet"})
    fired[slo] = first_firing(slo, series.at(std::string(slo) + "/good"), series.at(std::string(slo) + "/bad"));
  log::set_min_level(level);
  for (const Expectation& e : expectations) {
    ASSERT_TRUE(fired[e.slo].count(e.severity)) << e.slo << " " << e.severity << " never fired";
    const int at = fired[e.slo][e.severity];
    std::printf("[ info     ] %s %s: promtool fires in (%dm, %dm], the engine at %dm%02ds\n", e.slo.c_str(),
                e.severity.c_str(), e.not_yet_minute, e.fired_minute, at / 60, at % 60);
    EXPECT_GT(at, e.not_yet_minute * 60) << e.slo << " " << e.severity;
    EXPECT_LE(at, e.fired_minute * 60) << e.slo << " " << e.severity;
  }
}

}  // namespace
}  // namespace syncscope::slo
