// The SLO engine end to end with a fake clock, a scripted SLI and a
// recording notifier; and the burn-rate math cross-checked against the same
// SLO written as Prometheus rules and run through `promtool test rules`.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "agent/metrics/exposition.h"
#include "agent/slo/engine.h"
#include "tests/support/exposition_check.h"
#include "tests/support/promtool_series.h"
#include "tests/support/temp_dir.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using testing::TempDir;

// Readings by SLO name; absent → nullopt.
class ScriptedSli final : public SliSource {
 public:
  std::optional<SliReading> read(const config::SloConfig& slo) const override {
    auto it = readings.find(slo.name);
    if (it == readings.end()) return std::nullopt;
    return it->second;
  }
  // Adds events to an SLO's cumulative counters.
  void add(const std::string& slo, uint64_t good, uint64_t bad) {
    auto& reading = readings[slo];
    if (!std::holds_alternative<EventCounters>(reading)) reading = EventCounters{};
    auto& counters = std::get<EventCounters>(reading);
    counters.good_total += good;
    counters.bad_total += bad;
  }
  std::map<std::string, SliReading> readings;
};

class RecordingNotifier final : public notify::Notifier {
 public:
  void circuit_event(const notify::CircuitNotification& n) override { circuits.push_back(n); }
  void alert_state(const notify::AlertNotification& a) override { alerts.push_back(a); }
  std::vector<notify::CircuitNotification> circuits;
  std::vector<notify::AlertNotification> alerts;
};

class FixedEvidence final : public EvidenceSource {
 public:
  nlohmann::json evidence(const config::SloConfig& slo) const override {
    ++calls;
    return {{"slo", slo.name}, {"slowest_cgroups", {{{"cgroup", "/crowded"}, {"p99_us", 8400}}}}};
  }
  mutable int calls = 0;
};

// The SLO of issue 5, as the config parser produces it.
config::SloConfig crowded_runq() {
  config::SloConfig slo;
  slo.name = "crowded-runq";
  slo.target = {config::TargetSelector::Kind::cgroup, "/crowded"};
  slo.sli.kind = config::Sli::Kind::runq_latency;
  slo.sli.threshold = 1ms;
  slo.objective = 99.0;
  slo.window = 1h;
  slo.alerting.page = {{20s, 4s, 5}};
  slo.circuit.min_open = 5s;
  slo.circuit.close_after = 10s;
  slo.circuit.notify = {"breaker", "am"};
  return slo;
}

nlohmann::json status_of(const SloEngine& engine, size_t index = 0) {
  return nlohmann::json::parse(engine.status_json())["slos"][index];
}

class SloEngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<SloEngine> make(std::vector<config::SloConfig> slos, std::string state_dir = "") {
    return std::make_unique<SloEngine>(slos, sli, clock, notifier, &evidence, std::move(state_dir));
  }
  // The first evaluation: the SLI's counters become the baseline.
  void baseline(SloEngine& engine, const std::string& slo = "crowded-runq") {
    sli.add(slo, 0, 0);
    engine.evaluate();
  }
  // One evaluation second: events happen, then the engine looks.
  void second(SloEngine& engine, uint64_t good, uint64_t bad, const std::string& slo = "crowded-runq") {
    clock.advance(1s);
    sli.add(slo, good, bad);
    engine.evaluate();
  }
  // crowded-runq from its baseline: 40 healthy seconds, then 8 burning ones
  // (20 % bad), which open its circuit.
  void burn_until_open(SloEngine& engine) {
    baseline(engine);
    for (int i = 0; i < 40; ++i) second(engine, 100, 0);
    for (int i = 0; i < 8; ++i) second(engine, 80, 20);
  }

  FakeClock clock;
  ScriptedSli sli;
  RecordingNotifier notifier;
  FixedEvidence evidence;
};

TEST_F(SloEngineTest, IssueConfigOpensHalfOpensAndCloses) {
  auto engine = make({crowded_runq()});
  baseline(*engine);
  for (int i = 0; i < 30; ++i) second(*engine, 100, 0);
  EXPECT_TRUE(notifier.circuits.empty());
  EXPECT_TRUE(notifier.alerts.empty());

  // 20 % bad: the 4 s window burns at 20×; the 20 s one crosses 5 after 6 s.
  int seconds_to_open = 0;
  while (notifier.circuits.empty() && seconds_to_open < 30) {
    second(*engine, 80, 20);
    ++seconds_to_open;
  }
  EXPECT_EQ(seconds_to_open, 6);  // 6 × 20 / 2000 = 6 % → burn 6 > 5; 5 s gives exactly 5, not above
  ASSERT_EQ(notifier.circuits.size(), 1u);
  const notify::CircuitNotification& open = notifier.circuits[0];
  EXPECT_EQ(open.type, "circuit.open");
  EXPECT_EQ(open.sequence, 1u);
  EXPECT_EQ(open.circuit, "crowded-runq/cgroup=/crowded");
  EXPECT_EQ(open.slo_name, "crowded-runq");
  EXPECT_EQ(open.window, "1h");
  EXPECT_EQ(open.target, "cgroup=/crowded");
  EXPECT_EQ(open.timestamp, clock.wall_now());
  ASSERT_TRUE(open.open_until);
  EXPECT_EQ(*open.open_until, clock.wall_now() + 5s);
  ASSERT_EQ(open.burn_rates.size(), 2u);
  EXPECT_EQ(open.burn_rates[0].first, "4s");
  EXPECT_DOUBLE_EQ(open.burn_rates[0].second, 20.0);
  EXPECT_EQ(open.burn_rates[1].first, "20s");
  EXPECT_NEAR(open.burn_rates[1].second, 6.0, 1e-9);
  EXPECT_EQ(open.evidence["slowest_cgroups"][0]["cgroup"], "/crowded");
  EXPECT_EQ(open.notifiers, (std::vector<std::string>{"breaker", "am"}));
  ASSERT_FALSE(notifier.alerts.empty());
  EXPECT_TRUE(notifier.alerts.back().firing);
  EXPECT_EQ(notifier.alerts.back().severity, "page");

  // The burn goes on for 6 s: lease renewals every 3 s (min_open / 2, rounded
  // up to whole evaluations), as circuit.open with higher sequences.
  for (int i = 0; i < 6; ++i) second(*engine, 80, 20);
  ASSERT_EQ(notifier.circuits.size(), 3u);
  EXPECT_EQ(notifier.circuits[1].type, "circuit.open");
  EXPECT_EQ(notifier.circuits[1].reason, "burn continues");
  EXPECT_EQ(notifier.circuits[2].sequence, 3u);
  EXPECT_EQ(*notifier.circuits[2].open_until, clock.wall_now() + 5s);

  // Healthy again; min_open has long passed.
  int seconds_to_half = 0;
  while (notifier.circuits.size() == 3 && seconds_to_half < 30) {
    second(*engine, 100, 0);
    ++seconds_to_half;
  }
  EXPECT_EQ(seconds_to_half, 3);  // the 4 s window is down to 5× (not above) after 3 s
  EXPECT_EQ(notifier.circuits.back().type, "circuit.half_open");
  EXPECT_FALSE(notifier.circuits.back().open_until);
  EXPECT_FALSE(notifier.alerts.back().firing);  // the page alert resolved once
  const size_t alert_calls = notifier.alerts.size();

  for (int i = 0; i < 9; ++i) second(*engine, 100, 0);
  EXPECT_EQ(notifier.circuits.back().type, "circuit.half_open");
  second(*engine, 100, 0);
  EXPECT_EQ(notifier.circuits.back().type, "circuit.close");
  EXPECT_EQ(notifier.circuits.back().sequence, 5u);
  EXPECT_EQ(notifier.alerts.size(), alert_calls);  // nothing more for a quiet alert
  EXPECT_EQ(evidence.calls, 5);

  const nlohmann::json status = status_of(*engine);
  EXPECT_EQ(status["circuit"]["state"], "closed");
  EXPECT_EQ(status["circuit"]["sequence"], 5);
  EXPECT_EQ(status["alerts"]["page"], false);
}

TEST_F(SloEngineTest, TooFewEventsNeverAlert) {
  auto engine = make({crowded_runq()});
  baseline(*engine);
  // 4 events/s, all bad: burn 100×, but only 80 events in the 20 s window.
  for (int i = 0; i < 60; ++i) second(*engine, 0, 4);
  EXPECT_TRUE(notifier.circuits.empty());
  EXPECT_EQ(status_of(*engine)["rules"][0]["firing"], false);
  EXPECT_EQ(status_of(*engine)["burn_rates"]["20s"], 100.0);
  // 5 events/s reaches min_events = 100.
  second(*engine, 0, 5);
  for (int i = 0; i < 20 && notifier.circuits.empty(); ++i) second(*engine, 0, 5);
  EXPECT_FALSE(notifier.circuits.empty());
}

TEST_F(SloEngineTest, DefaultPolicyScaledToAnHourRaisesTicketsWithoutOpening) {
  config::SloConfig slo = crowded_runq();
  slo.alerting = {};  // the SRE workbook table, scaled to 1 h: 5s/1s, 30s/3s, 6m/30s
  auto engine = make({slo});
  baseline(*engine);
  for (int i = 0; i < 10; ++i) second(*engine, 98, 2);  // burn 2: above 1, below 6
  EXPECT_TRUE(notifier.circuits.empty());
  ASSERT_FALSE(notifier.alerts.empty());
  EXPECT_EQ(notifier.alerts.back().severity, "ticket");
  EXPECT_TRUE(notifier.alerts.back().firing);
  const auto status = nlohmann::ordered_json::parse(engine->status_json())["slos"][0];
  EXPECT_EQ(status["alerts"]["ticket"], true);
  EXPECT_EQ(status["alerts"]["page"], false);
  std::vector<std::string> windows;
  for (const auto& [window, rate] : status["burn_rates"].items()) windows.push_back(window);
  EXPECT_EQ(windows, (std::vector<std::string>{"1s", "3s", "5s", "30s", "6m"}));
}

TEST_F(SloEngineTest, CounterResetCountsFromZero) {
  auto engine = make({crowded_runq()});
  sli.readings["crowded-runq"] = EventCounters{1000, 10};
  engine->evaluate();  // baseline: nothing counted
  clock.advance(1s);
  sli.readings["crowded-runq"] = EventCounters{1100, 10};
  engine->evaluate();
  clock.advance(1s);
  sli.readings["crowded-runq"] = EventCounters{5, 1};  // the collector restarted
  engine->evaluate();
  clock.advance(1s);
  sli.readings.clear();  // target gone: no events, baseline kept
  engine->evaluate();
  EXPECT_EQ(status_of(*engine)["events"]["good"], 105);
  EXPECT_EQ(status_of(*engine)["events"]["bad"], 1);
}

TEST_F(SloEngineTest, LockWaitRatioTurnsSecondsIntoEvents) {
  config::SloConfig slo = crowded_runq();
  slo.name = "api-locks";
  slo.sli.kind = config::Sli::Kind::lock_wait_ratio;
  slo.sli.max_ratio = 0.02;
  slo.min_events = 1;
  auto engine = make({slo});
  sli.readings["api-locks"] = WaitRatio{10'000'000, 1'000'000'000};  // 1 %: good
  engine->evaluate();
  clock.advance(1s);
  engine->evaluate();
  clock.advance(3s);  // a late evaluation covers 3 seconds
  sli.readings["api-locks"] = WaitRatio{150'000'000, 3'000'000'000};  // 5 %: bad
  engine->evaluate();
  clock.advance(1s);
  sli.readings["api-locks"] = WaitRatio{0, 0};  // an empty interval
  engine->evaluate();
  EXPECT_EQ(status_of(*engine)["events"]["good"], 2);
  EXPECT_EQ(status_of(*engine)["events"]["bad"], 3);
}

TEST_F(SloEngineTest, GoroutinesAboveMaxOrGrowingTooFast) {
  config::SloConfig slo = crowded_runq();
  slo.name = "go-api";
  slo.sli.kind = config::Sli::Kind::goroutines;
  slo.sli.max_goroutines = 1000;
  slo.sli.max_growth_per_min = 120;
  auto engine = make({slo});
  // Flat at 500 for 20 s: good.
  for (int i = 0; i < 20; ++i) {
    sli.readings["go-api"] = GoroutineCount{500};
    engine->evaluate();
    clock.advance(1s);
  }
  EXPECT_EQ(status_of(*engine)["events"]["good"], 20);
  // Growing 10/s: measured over the last minute of history (20 flat seconds
  // included) it passes 120/min after 5 s.
  for (int i = 1; i <= 10; ++i) {
    sli.readings["go-api"] = GoroutineCount{500 + 10u * static_cast<uint64_t>(i)};
    engine->evaluate();
    clock.advance(1s);
  }
  const auto growing = status_of(*engine)["events"];
  EXPECT_GT(growing["bad"].get<int>(), 0);
  // Above max, flat: bad.
  const int bad_before = growing["bad"].get<int>();
  sli.readings["go-api"] = GoroutineCount{5000};
  engine->evaluate();
  EXPECT_EQ(status_of(*engine)["events"]["bad"], bad_before + 1);
}

TEST_F(SloEngineTest, MetricsExposeExactlyTheDocumentedFamilies) {
  auto engine = make({crowded_runq()});
  baseline(*engine);
  for (int i = 0; i < 10; ++i) second(*engine, 90, 10);
  std::vector<metrics::Family> families;
  engine->collect(families);
  ASSERT_EQ(families.size(), 5u);
  EXPECT_EQ(families[0].name, "syncscope_slo_burn_rate");
  EXPECT_EQ(families[0].samples[0].labels, (metrics::Labels{{"slo", "crowded-runq"}, {"window", "4s"}}));
  EXPECT_DOUBLE_EQ(families[0].samples[0].value, 10.0);
  EXPECT_EQ(families[0].samples[1].labels, (metrics::Labels{{"slo", "crowded-runq"}, {"window", "20s"}}));
  EXPECT_EQ(families[1].name, "syncscope_slo_error_budget_remaining_ratio");
  EXPECT_NEAR(families[1].samples[0].value, 1.0 - 10.0, 1e-9);  // 10 % bad over 10 s of the hour
  EXPECT_EQ(families[2].name, "syncscope_slo_objective_ratio");
  EXPECT_EQ(families[2].samples[0].labels, (metrics::Labels{{"slo", "crowded-runq"}}));
  EXPECT_DOUBLE_EQ(families[2].samples[0].value, crowded_runq().objective / 100);
  EXPECT_EQ(families[3].name, "syncscope_slo_events_total");
  EXPECT_EQ(families[3].type, metrics::Type::counter);
  EXPECT_EQ(families[3].samples[0].labels, (metrics::Labels{{"slo", "crowded-runq"}, {"outcome", "good"}}));
  EXPECT_EQ(families[3].samples[0].value, 900);
  EXPECT_EQ(families[3].samples[1].value, 100);
  EXPECT_EQ(families[4].name, "syncscope_circuit_state");
  ASSERT_EQ(families[4].samples.size(), 3u);
  for (const auto& sample : families[4].samples) {
    EXPECT_EQ(sample.labels[1], (std::pair<std::string, std::string>{"target", "cgroup=/crowded"}));
    EXPECT_EQ(sample.value, sample.labels[2].second == "open" ? 1 : 0) << sample.labels[2].second;
  }
  const auto checked = testing::promtool_check_metrics(metrics::render_text(families));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
}

TEST_F(SloEngineTest, StatusJson) {
  auto engine = make({crowded_runq()});
  EXPECT_TRUE(nlohmann::json::parse(engine->status_json())["evaluated_at"].is_null());
  EXPECT_TRUE(status_of(*engine)["circuit"]["since"].is_null());
  baseline(*engine);
  for (int i = 0; i < 8; ++i) second(*engine, 80, 20);
  const nlohmann::json all = nlohmann::json::parse(engine->status_json());
  EXPECT_EQ(all["evaluated_at"], "2027-01-15T08:00:08.000Z");
  const nlohmann::json& s = all["slos"][0];
  EXPECT_EQ(s["name"], "crowded-runq");
  EXPECT_EQ(s["target"], "cgroup=/crowded");
  EXPECT_EQ(s["sli"], "runq_latency");
  EXPECT_EQ(s["objective"], 99.0);
  EXPECT_EQ(s["window"], "1h");
  EXPECT_EQ(s["min_events"], 100);
  EXPECT_EQ(s["events"]["good"], 640);
  EXPECT_EQ(s["events"]["bad"], 160);
  EXPECT_NEAR(s["error_budget_remaining"].get<double>(), -19.0, 1e-9);
  EXPECT_EQ(s["burn_rates"]["4s"], 20.0);
  EXPECT_EQ(s["rules"][0], (nlohmann::json{{"severity", "page"}, {"long", "20s"}, {"short", "4s"},
                                            {"burn_rate", 5.0}, {"firing", true}}));
  EXPECT_EQ(s["alerts"]["page"], true);
  EXPECT_EQ(s["circuit"]["key"], "crowded-runq/cgroup=/crowded");
  EXPECT_EQ(s["circuit"]["state"], "open");
  // 100 events at 20 % bad in the first second already meet min_events: open
  // at +1 s, lease renewed at +4 s and +7 s for 5 s.
  EXPECT_EQ(s["circuit"]["since"], "2027-01-15T08:00:01.000Z");
  EXPECT_EQ(s["circuit"]["open_until"], "2027-01-15T08:00:12.000Z");
  EXPECT_EQ(s["circuit"]["sequence"], 3);
}

TEST_F(SloEngineTest, RestartResumesBudgetCircuitAndSequence) {
  TempDir dir;
  {
    auto engine = make({crowded_runq()}, dir.path());
    burn_until_open(*engine);
    ASSERT_EQ(notifier.circuits.size(), 1u);
    EXPECT_EQ(status_of(*engine)["circuit"]["state"], "open");
  }  // shutdown saves
  EXPECT_TRUE(fs::exists(dir.path() + "/slo/crowded-runq.counts"));
  EXPECT_TRUE(fs::exists(dir.path() + "/slo/crowded-runq.json"));

  clock.advance(2s);  // down for 2 s
  auto engine = make({crowded_runq()}, dir.path());
  nlohmann::json status = status_of(*engine);
  EXPECT_EQ(status["circuit"]["state"], "open");
  EXPECT_EQ(status["circuit"]["sequence"], 1);
  sli.readings.clear();  // a new collector: counters from zero
  baseline(*engine);
  status = status_of(*engine);
  EXPECT_EQ(status["events"]["good"], 4640);  // the hour's history survived
  EXPECT_EQ(status["events"]["bad"], 160);
  // Healthy from now on. The 4 s window still holds the last bad seconds
  // before the stop, so the lease may be renewed once more; then half-open.
  // Either way the sequence continues where the first run left it.
  for (int i = 0; i < 30 && notifier.circuits.back().type != "circuit.half_open"; ++i) second(*engine, 100, 0);
  ASSERT_GE(notifier.circuits.size(), 2u);
  EXPECT_EQ(notifier.circuits.back().type, "circuit.half_open");
  for (size_t i = 0; i < notifier.circuits.size(); ++i) EXPECT_EQ(notifier.circuits[i].sequence, i + 1);
}

// A SIGKILL after the new sequence was persisted but before the notifier's
// outbox had the notification: the state file says so, and the next run sends
// the circuit's state once, under that sequence; a clean restart sends nothing.
TEST_F(SloEngineTest, TransitionNeverQueuedBeforeAKillIsSentAfterRestart) {
  TempDir dir;
  {
    auto engine = make({crowded_runq()}, dir.path());
    burn_until_open(*engine);
    ASSERT_EQ(notifier.circuits.size(), 1u);
  }
  const std::string state_file = dir.path() + "/slo/crowded-runq.json";
  nlohmann::json state = nlohmann::json::parse(std::ifstream(state_file));
  EXPECT_EQ(state["queued_sequence"], 1);

  // A clean restart: nothing is sent again (a lease renewal would come with a new sequence).
  {
    auto engine = make({crowded_runq()}, dir.path());
    baseline(*engine);
    for (size_t i = 1; i < notifier.circuits.size(); ++i) EXPECT_GT(notifier.circuits[i].sequence, 1u);
  }

  // The file as a kill between the two writes leaves it.
  state = nlohmann::json::parse(std::ifstream(state_file));
  const uint64_t last = state["sequence"].get<uint64_t>();
  ASSERT_EQ(state["queued_sequence"].get<uint64_t>(), last);
  state["queued_sequence"] = last - 1;
  std::ofstream(state_file) << state.dump();
  notifier.circuits.clear();
  auto engine = make({crowded_runq()}, dir.path());
  sli.readings.clear();
  baseline(*engine);
  ASSERT_EQ(notifier.circuits.size(), 1u);
  EXPECT_EQ(notifier.circuits[0].type, "circuit.open");
  EXPECT_EQ(notifier.circuits[0].sequence, last);
  EXPECT_TRUE(notifier.circuits[0].open_until.has_value());
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(state_file))["queued_sequence"].get<uint64_t>(), last);
  second(*engine, 100, 0);  // sent once only: anything later has a new sequence
  for (size_t i = 1; i < notifier.circuits.size(); ++i) EXPECT_GT(notifier.circuits[i].sequence, last);
}

TEST_F(SloEngineTest, PeriodicSavesAreStaggered) {
  TempDir dir;
  std::vector<config::SloConfig> slos;
  for (int i = 0; i < 4; ++i) {
    slos.push_back(crowded_runq());
    slos.back().name = "slo/" + std::to_string(i);  // a name that is no file name
  }
  SloEngine engine(slos, sli, clock, notifier, nullptr, dir.path(), EngineOptions{8s});
  std::vector<size_t> saved_after;
  for (int s = 1; s <= 8; ++s) {
    clock.advance(1s);
    engine.evaluate();
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir.path() + "/slo")) n += entry.path().extension() == ".counts";
    saved_after.push_back(n);
  }
  EXPECT_EQ(saved_after, (std::vector<size_t>{0, 1, 1, 2, 2, 3, 3, 4}));
  EXPECT_TRUE(fs::exists(dir.path() + "/slo/slo%2F0.counts"));
}

// 1000 SLOs with the default 30-day policy, evaluated once a second for a
// minute: every one counts every second's events (what this costs is
// tests/bench/slo.py's to measure, not a test's).
TEST_F(SloEngineTest, ThousandSlosAreEachCountedEverySecond) {
  std::vector<config::SloConfig> slos;
  for (int i = 0; i < 1000; ++i) {
    config::SloConfig slo;
    slo.name = "slo-" + std::to_string(i);
    slo.target = {config::TargetSelector::Kind::unit, "svc" + std::to_string(i) + ".service"};
    slo.window = std::chrono::hours(24 * 30);
    slo.circuit.notify = {"breaker"};
    slos.push_back(slo);
    sli.readings[slo.name] = EventCounters{};
  }
  auto engine = make(slos);
  engine->evaluate();  // the baseline
  constexpr int kRounds = 60;
  for (int round = 0; round < kRounds; ++round) {
    clock.advance(1s);
    int i = 0;
    for (auto& [name, reading] : sli.readings) {
      auto& counters = std::get<EventCounters>(reading);
      counters.good_total += 1000 + static_cast<uint64_t>(i);  // per SLO, so a mix-up shows
      counters.bad_total += 1;
      ++i;
    }
    engine->evaluate();
  }
  const nlohmann::json all = nlohmann::json::parse(engine->status_json());
  ASSERT_EQ(all["slos"].size(), 1000u);
  std::map<std::string, uint64_t> expected_good;
  int i = 0;
  for (const auto& [name, reading] : sli.readings) expected_good[name] = kRounds * (1000 + static_cast<uint64_t>(i++));
  for (const auto& status : all["slos"]) {
    const std::string name = status["name"];
    EXPECT_EQ(status["events"]["good"], expected_good.at(name)) << name;
    EXPECT_EQ(status["events"]["bad"], kRounds) << name;
  }
  EXPECT_TRUE(notifier.circuits.empty());  // a burn rate of about 1 opens no circuit
}

// ---------------------------------------------------------------------------
// Cross-check with Prometheus.

fs::path rules_dir() {
  return testing::find_source_file("tests/unit/slo_rules/crowded_runq.test.yaml").parent_path();
}

// The text between the first pair of single quotes after `key:` on a line.
std::optional<std::string> quoted_value(const std::string& line, std::string_view key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t open = line.find('\'', at);
  const size_t close = open == std::string::npos ? open : line.find('\'', open + 1);
  if (close == std::string::npos) return std::nullopt;
  return line.substr(open + 1, close - open - 1);
}

// outcome → values, from the input_series of the promtool test file.
std::map<std::string, std::vector<double>> read_input_series(const fs::path& file) {
  std::ifstream in(file);
  std::map<std::string, std::vector<double>> series;
  std::string line, outcome;
  while (std::getline(in, line)) {
    if (auto name = quoted_value(line, "series:")) {
      const size_t at = name->find("outcome=\"");
      outcome = at == std::string::npos ? "" : name->substr(at + 9, name->find('"', at + 9) - at - 9);
    } else if (auto values = quoted_value(line, "values:"); values && !outcome.empty()) {
      series[outcome] = testing::expand_series(*values);
    }
  }
  return series;
}

TEST(SloPromtoolCrossCheck, PromtoolTestRulesPasses) {
  const fs::path dir = rules_dir();
  ASSERT_FALSE(dir.empty()) << "tests/unit/slo_rules not found (run from the source tree or set SYNCSCOPE_SOURCE_DIR)";
  const std::string command = "promtool test rules " + (dir / "crowded_runq.test.yaml").string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  EXPECT_NE(output.find("SUCCESS"), std::string::npos) << output;
}

TEST(SloPromtoolCrossCheck, EngineFiresAtThePromtoolEvaluation) {
  // The evaluation at which crowded_runq.test.yaml expects the alert (and at
  // whose predecessor it expects none).
  constexpr int kPromtoolFiresAt = 69;
  const fs::path dir = rules_dir();
  ASSERT_FALSE(dir.empty());
  const auto read = notify::read_whole_file((dir / "crowded_runq.test.yaml").string());
  ASSERT_TRUE(read.has_value()) << read.error().message();
  const std::string& text = *read;
  ASSERT_NE(text.find("eval_time: " + std::to_string(kPromtoolFiresAt) + "s"), std::string::npos);
  ASSERT_NE(text.find("eval_time: " + std::to_string(kPromtoolFiresAt - 1) + "s"), std::string::npos);

  const auto series = read_input_series(dir / "crowded_runq.test.yaml");
  ASSERT_EQ(series.count("good"), 1u);
  ASSERT_EQ(series.count("bad"), 1u);
  const std::vector<double>& good = series.at("good");
  const std::vector<double>& bad = series.at("bad");
  ASSERT_EQ(good.size(), bad.size());
  ASSERT_GT(good.size(), static_cast<size_t>(kPromtoolFiresAt));

  // Sample t of the series is the counter the engine reads at its
  // evaluation t seconds after the start: one scrape per evaluation.
  FakeClock clock;
  ScriptedSli sli;
  RecordingNotifier notifier;
  SloEngine engine({crowded_runq()}, sli, clock, notifier, nullptr, "");
  std::optional<int> fired_at;
  for (size_t t = 0; t < good.size(); ++t) {
    sli.readings["crowded-runq"] =
        EventCounters{static_cast<uint64_t>(good[t]), static_cast<uint64_t>(bad[t])};
    engine.evaluate();
    const bool firing = !notifier.alerts.empty() && notifier.alerts.back().firing;
    if (firing && !fired_at) {
      fired_at = static_cast<int>(t);
      EXPECT_EQ(notifier.circuits.size(), 1u);  // the circuit opens at the same evaluation
      // The same number promtool's promql_expr_test expects at 69 s.
      EXPECT_DOUBLE_EQ(notifier.alerts.back().burn_rates[1].second, 5.3999999999999995);
    }
    clock.advance(1s);
  }
  ASSERT_TRUE(fired_at) << "the engine never fired";
  // ±1 evaluation: Prometheus 2.x selects samples in [t - 20s, t] (20 deltas,
  // exactly the engine's (t - 20 s, t]) and the ratio of two increase()es
  // cancels their common extrapolation, so today the two agree to the
  // evaluation. Prometheus 3 makes range selectors left-open ((t - 20s, t]:
  // 19 deltas) and a real scrape is not phase-aligned with the engine's
  // evaluation, each of which can move the crossing by one interval.
  EXPECT_NEAR(*fired_at, kPromtoolFiresAt, 1) << "engine fired at " << *fired_at << " s";
  std::printf("[ info     ] promtool fires at %d s, the engine at %d s\n", kPromtoolFiresAt, *fired_at);
}

}  // namespace
}  // namespace syncscope::slo
