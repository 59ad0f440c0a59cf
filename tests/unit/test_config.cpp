// Config parsing and validation: good files parse into the expected structs,
// bad ones are refused with "FILE:LINE:COL: key.path: reason".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/config/config.h"

namespace syncscope::config {
namespace {

using ::testing::HasSubstr;

std::string error_of(std::string_view yaml) {
  auto parsed = parse(yaml, "test.yaml");
  EXPECT_FALSE(parsed.has_value()) << "expected a refusal for:\n" << yaml;
  return parsed ? "" : parsed.error().message();
}

TEST(Config, EmbeddedDefaultIsValidAndMatchesDocumentedDefaults) {
  auto config = load_default();
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->listen, "127.0.0.1:9479");
  EXPECT_EQ(config->state_dir, "/var/lib/syncscope");
  EXPECT_TRUE(config->sched.enabled);
  EXPECT_EQ(config->sched.runq_length_sample_hz, 99u);
  EXPECT_EQ(config->locks.top_k, 50u);
  EXPECT_EQ(config->cachelines.pmu, CachelinesConfig::Pmu::auto_detect);
  EXPECT_EQ(config->cachelines.window_ms, 20u);
  EXPECT_DOUBLE_EQ(config->cachelines.duty_cycle, 0.02);
  EXPECT_TRUE(config->slos.empty());
}

TEST(Config, EmptyFileMeansAllDefaults) {
  auto config = parse("", "empty.yaml");
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->listen, "127.0.0.1:9479");
  EXPECT_EQ(config->max_cgroups, 200u);
}

// The SLO config from the SLO issue must be accepted exactly as written.
TEST(Config, AcceptsTheSloIssueConfigAsWritten) {
  constexpr std::string_view yaml = R"(listen: 127.0.0.1:9479
state_dir: /var/lib/syncscope
slos:
  - name: crowded-runq
    target: { cgroup: /crowded }
    sli: { runq_latency: { threshold: 1ms } }
    objective: 99.0
    window: 1h
    alerting:
      page: [{ long: 20s, short: 4s, burn_rate: 5 }]
    circuit: { min_open: 5s, close_after: 10s, notify: [breaker, am] }
notifiers:
  breaker: { type: webhook, url: "http://127.0.0.1:18080/hook", secret_file: /etc/syncscope/hook.key }
  am: { type: alertmanager, url: "http://127.0.0.1:19093" }
)";
  auto config = parse(yaml, "slo.yaml");
  ASSERT_TRUE(config) << config.error().message();
  ASSERT_EQ(config->slos.size(), 1u);
  const SloConfig& slo = config->slos[0];
  EXPECT_EQ(slo.name, "crowded-runq");
  EXPECT_EQ(slo.target, (TargetSelector{TargetSelector::Kind::cgroup, "/crowded"}));
  EXPECT_EQ(slo.sli.kind, Sli::Kind::runq_latency);
  EXPECT_EQ(slo.sli.threshold, std::chrono::milliseconds(1));
  EXPECT_DOUBLE_EQ(slo.objective, 99.0);
  EXPECT_EQ(slo.window, std::chrono::hours(1));
  ASSERT_EQ(slo.alerting.page.size(), 1u);
  EXPECT_EQ(slo.alerting.page[0].long_window, std::chrono::seconds(20));
  EXPECT_EQ(slo.alerting.page[0].short_window, std::chrono::seconds(4));
  EXPECT_DOUBLE_EQ(slo.alerting.page[0].burn_rate, 5);
  EXPECT_EQ(slo.circuit.min_open, std::chrono::seconds(5));
  EXPECT_EQ(slo.circuit.close_after, std::chrono::seconds(10));
  EXPECT_THAT(slo.circuit.notify, ::testing::ElementsAre("breaker", "am"));
  EXPECT_EQ(slo.location.line, 4);
  ASSERT_EQ(config->notifiers.size(), 2u);
  EXPECT_EQ(config->notifiers.at("breaker").type, NotifierConfig::Type::webhook);
  EXPECT_EQ(config->notifiers.at("breaker").secret_file, "/etc/syncscope/hook.key");
  EXPECT_EQ(config->notifiers.at("am").type, NotifierConfig::Type::alertmanager);
  EXPECT_EQ(config->notifiers.at("am").url, "http://127.0.0.1:19093");
}

TEST(Config, DesignSketchIsAccepted) {
  constexpr std::string_view yaml = R"(listen: 127.0.0.1:9479
state_dir: /var/lib/syncscope
sched:      { enabled: true }
locks:      { enabled: true, targets: [{ unit: api.service }, { exe: /usr/bin/foo }], top_k: 50 }
golang:     { enabled: true }
cachelines: { enabled: true, pmu: auto, watch: { window_ms: 20, duty_cycle: 0.02 } }
slos:
  - name: api-runq
    target: { unit: api.service }
    sli: { runq_latency: { threshold: 5ms } }
    objective: 99.0
    window: 30d
    circuit: { notify: [breaker, alertmanager] }
notifiers:
  breaker:      { type: webhook, url: http://127.0.0.1:9000/hook, secret_file: /etc/syncscope/hook.key }
  alertmanager: { type: alertmanager, url: http://127.0.0.1:9093 }
)";
  auto config = parse(yaml, "design.yaml");
  ASSERT_TRUE(config) << config.error().message();
  ASSERT_EQ(config->locks.targets.size(), 2u);
  EXPECT_EQ(config->locks.targets[0].kind, TargetSelector::Kind::unit);
  EXPECT_EQ(config->locks.targets[1].value, "/usr/bin/foo");
  EXPECT_EQ(config->slos[0].window, std::chrono::hours(24 * 30));
}

TEST(Config, UnknownKeyNamesFileLineColumnAndPath) {
  EXPECT_EQ(error_of("listen: 127.0.0.1:9479\nsched:\n  enabled: true\n  frobnicate: 3\n"),
            "test.yaml:4:3: sched.frobnicate: unknown key (expected one of: enabled, runq_length_sample_hz)");
}

TEST(Config, UnknownTopLevelKey) {
  EXPECT_THAT(error_of("lisen: 127.0.0.1:9479\n"), HasSubstr("test.yaml:1:1: lisen: unknown key"));
}

TEST(Config, WrongTypeIsRefused) {
  EXPECT_EQ(error_of("sched:\n  enabled: maybe\n"), "test.yaml:2:12: sched.enabled: expected true or false, got \"maybe\"");
  EXPECT_EQ(error_of("locks:\n  top_k: [1, 2]\n"), "test.yaml:2:10: locks.top_k: expected a non-negative integer, got a list");
  EXPECT_EQ(error_of("max_cgroups: -3\n"), "test.yaml:1:14: max_cgroups: expected a non-negative integer, got \"-3\"");
  EXPECT_THAT(error_of("sched: 5\n"), HasSubstr("test.yaml:1:8: sched: expected a mapping, got \"5\""));
}

TEST(Config, BadDurationIsRefused) {
  std::string message = error_of(R"(slos:
  - name: x
    target: { cgroup: /a }
    sli: { runq_latency: { threshold: 5 } }
)");
  EXPECT_THAT(message, HasSubstr("test.yaml:4:39: slos[0].sli.runq_latency.threshold: invalid duration \"5\""));
  EXPECT_THAT(error_of("golang:\n  scan_interval: 3 fortnights\n"), HasSubstr("test.yaml:2:18: golang.scan_interval"));
}

TEST(Config, BadListenAddressIsRefused) {
  EXPECT_THAT(error_of("listen: 9479\n"), HasSubstr("test.yaml:1:9: listen: \"9479\" is not HOST:PORT"));
  EXPECT_THAT(error_of("listen: 127.0.0.1:99999\n"), HasSubstr("port must be a number from 1 to 65535"));
  EXPECT_THAT(error_of("listen: example.com:80\n"), HasSubstr("is not an IPv4 address"));
  EXPECT_TRUE(parse("listen: \"[::1]:9479\"\n", "t"));
}

TEST(Config, InvalidYamlReportsPosition) {
  EXPECT_THAT(error_of("sched: {enabled: true\n"), HasSubstr("test.yaml:2:1: invalid YAML"));
}

TEST(Config, AllErrorsAreReportedAtOnce) {
  std::string message = error_of("sched:\n  enabled: 3\nlocks:\n  top_k: x\n");
  EXPECT_THAT(message, HasSubstr("sched.enabled"));
  EXPECT_THAT(message, HasSubstr("locks.top_k"));
}

TEST(Config, SloCrossChecks) {
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { cgroup: /a }
    sli: { runq_latency: { threshold: 5ms } }
    circuit: { notify: [nobody] }
)"),
              HasSubstr("test.yaml:5:25: slos[0].circuit.notify[0]: no notifier named \"nobody\" in notifiers"));
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { cgroup: /a }
    sli: { runq_latency: { threshold: 5ms } }
  - name: a
    target: { cgroup: /b }
    sli: { runq_latency: { threshold: 5ms } }
)"),
              HasSubstr("slos[1].name: duplicate SLO name \"a\""));
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { cgroup: /a, unit: b.service }
    sli: { runq_latency: { threshold: 5ms } }
)"),
              HasSubstr("slos[0].target: a target names exactly one of"));
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { cgroup: /a }
    sli: { runq_latency: { threshold: 5ms } }
    objective: 100
)"),
              HasSubstr("slos[0].objective: expected a percentage between 0 and 100"));
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { cgroup: /a }
    sli: { runq_latency: { threshold: 5ms } }
    alerting: { page: [{ long: 4s, short: 20s, burn_rate: 5 }] }
)"),
              HasSubstr("the short window must be shorter than the long one"));
  EXPECT_THAT(error_of("slos:\n  - name: a\n    target: { cgroup: /a }\n"), HasSubstr("slos[0].sli: missing"));
  EXPECT_THAT(error_of(R"(slos:
  - name: a
    target: { pid: 42 }
    sli: { runq_latency: { threshold: 5ms } }
)"),
              HasSubstr("test.yaml:3:13: slos[0].target: runq_latency is counted per cgroup"));
}

TEST(Config, NotifierValidation) {
  EXPECT_THAT(error_of("notifiers:\n  hook: { type: webhook, url: \"http://x/h\" }\n"),
              HasSubstr("notifiers.hook.secret_file: missing"));
  EXPECT_THAT(error_of("notifiers:\n  hook: { type: pager, url: \"http://x/h\" }\n"),
              HasSubstr("notifiers.hook.type: expected webhook or alertmanager, got \"pager\""));
  EXPECT_THAT(error_of("notifiers:\n  am: { type: alertmanager, url: \"ftp://x\" }\n"),
              HasSubstr("notifiers.am.url: expected an http:// or https:// URL"));
}

TEST(Config, SelectorsAndSliKinds) {
  auto config = parse(R"(locks:
  targets: [{ comm: nginx }, { pid: 42 }, { cgroup: /system.slice }]
slos:
  - name: ratio
    target: { exe: /usr/bin/api }
    sli: { lock_wait_ratio: { max: 0.02 } }
  - name: leak
    target: { pid: 7 }
    sli: { goroutines: { max: 10000, max_growth_per_min: 50 } }
  - name: lockwait
    target: { unit: api.service }
    sli: { lock_wait: { threshold: 250us } }
)",
                      "t.yaml");
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->locks.targets[0].describe(), "comm=nginx");
  EXPECT_EQ(config->locks.targets[1].describe(), "pid=42");
  EXPECT_EQ(config->slos[0].sli.kind, Sli::Kind::lock_wait_ratio);
  EXPECT_DOUBLE_EQ(config->slos[0].sli.max_ratio, 0.02);
  EXPECT_EQ(config->slos[1].sli.max_goroutines, 10000u);
  EXPECT_DOUBLE_EQ(*config->slos[1].sli.max_growth_per_min, 50);
  EXPECT_EQ(config->slos[2].sli.threshold, std::chrono::microseconds(250));
  EXPECT_THAT(error_of("locks:\n  targets: [{ comm: averyveryverylongname }]\n"), HasSubstr("1 to 15 characters"));
}

TEST(Config, LoadFileNamesMissingFile) {
  auto config = load_file("/nonexistent/syncscope.yaml");
  ASSERT_FALSE(config);
  EXPECT_THAT(config.error().message(), HasSubstr("/nonexistent/syncscope.yaml: cannot read config"));
}

}  // namespace
}  // namespace syncscope::config
