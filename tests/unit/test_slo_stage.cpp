// The pipeline's SLO stage without collectors: start with notifiers, a
// reload that fails (the old generation keeps running), a reload that
// succeeds (state carried over through state_dir), and /debug/slo.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "agent/slo/slo_stage.h"
#include "probes/cgroup.h"
#include "tests/support/temp_dir.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

using testing::TempDir;

config::Config config_with(const std::string& state_dir, const std::string& secret_file, const std::string& slo) {
  config::Config c;
  c.state_dir = state_dir;
  config::SloConfig s;
  s.name = slo;
  s.target = {config::TargetSelector::Kind::cgroup, "/crowded"};
  s.sli.kind = config::Sli::Kind::runq_latency;
  s.sli.threshold = 1ms;
  s.window = 1h;
  s.circuit.notify = {"breaker"};
  c.slos.push_back(s);
  config::NotifierConfig hook;
  hook.name = "breaker";
  hook.type = config::NotifierConfig::Type::webhook;
  hook.url = "http://127.0.0.1:1/hook";  // nothing listens: attempts fail fast
  hook.secret_file = secret_file;
  hook.timeout = 100ms;
  c.notifiers["breaker"] = hook;
  return c;
}

TEST(SloStage, StartsReloadsAndKeepsTheOldGenerationWhenANotifierCannotStart) {
  TempDir dir;
  const std::string secret = dir.path() + "/hook.key";
  std::ofstream(secret) << "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
  probes::CgroupResolver cgroups(dir.path() + "/no-cgroup2-here");
  FakeClock clock;

  auto stage = SloStage::start(config_with(dir.path(), dir.path() + "/missing.key", "a"), cgroups, clock);
  ASSERT_FALSE(stage.has_value());
  EXPECT_NE(stage.error().message().find("missing.key"), std::string::npos) << stage.error().message();

  stage = SloStage::start(config_with(dir.path(), secret, "a"), cgroups, clock);
  ASSERT_TRUE(stage.has_value()) << stage.error().message();
  (*stage)->connect(nullptr, nullptr, nullptr);
  (*stage)->evaluate(clock.steady_now());

  auto status = nlohmann::json::parse((*stage)->status_json());
  ASSERT_EQ(status["slos"].size(), 1u);
  EXPECT_EQ(status["slos"][0]["name"], "a");
  EXPECT_EQ(status["slos"][0]["measurement"]["measured"], false);
  EXPECT_NE(status["slos"][0]["measurement"]["problem"].get<std::string>().find("sched collector"),
            std::string::npos);
  EXPECT_EQ(status["notifiers"]["breaker"]["type"], "webhook");
  EXPECT_EQ(status["outbox_pending"], 0);

  // A reload whose notifier cannot start: refused, the old SLO stays.
  auto refused = (*stage)->reload(config_with(dir.path(), dir.path() + "/missing.key", "b"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("keep running"), std::string::npos) << refused.error().message();
  (*stage)->connect(nullptr, nullptr, nullptr);
  clock.advance(1s);
  (*stage)->evaluate(clock.steady_now());
  EXPECT_EQ(nlohmann::json::parse((*stage)->status_json())["slos"][0]["name"], "a");

  // A good one: the new SLO set, its state under state_dir/slo.
  ASSERT_TRUE((*stage)->reload(config_with(dir.path(), secret, "b")).has_value());
  (*stage)->connect(nullptr, nullptr, nullptr);
  clock.advance(1s);
  (*stage)->evaluate(clock.steady_now());
  EXPECT_EQ(nlohmann::json::parse((*stage)->status_json())["slos"][0]["name"], "b");
  EXPECT_TRUE(fs::exists(dir.path() + "/slo/a.counts"));  // saved when the old engine went

  std::vector<metrics::Family> families;
  (*stage)->collect(families);
  std::set<std::string> names;
  for (const auto& f : families) names.insert(f.name);
  for (const char* name : {"syncscope_slo_burn_rate", "syncscope_slo_error_budget_remaining_ratio",
                           "syncscope_slo_events_total", "syncscope_circuit_state", "syncscope_notifications_total",
                           "syncscope_outbox_pending"})
    EXPECT_TRUE(names.contains(name)) << name;

  // The same config again: nothing to do.
  EXPECT_TRUE((*stage)->reload(config_with(dir.path(), secret, "b")).has_value());
  stage->reset();
  EXPECT_TRUE(fs::exists(dir.path() + "/slo/b.counts"));  // saved at destruction
}

TEST(SloStage, NoSlosNoStateDirectory) {
  TempDir dir;
  probes::CgroupResolver cgroups(dir.path());
  config::Config c;
  c.state_dir = dir.path() + "/state";
  auto stage = SloStage::start(c, cgroups);
  ASSERT_TRUE(stage.has_value()) << stage.error().message();
  (*stage)->connect(nullptr, nullptr, nullptr);
  (*stage)->evaluate(std::chrono::steady_clock::now());
  EXPECT_EQ(nlohmann::json::parse((*stage)->status_json())["slos"].size(), 0u);
  stage->reset();
  EXPECT_FALSE(fs::exists(c.state_dir));
}

}  // namespace
}  // namespace syncscope::slo
