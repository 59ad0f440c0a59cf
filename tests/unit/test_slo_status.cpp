// `syncscope slo status`: the table rendered from /debug/slo (golden), and
// the --agent address forms.
#include <gtest/gtest.h>

#include "agent/cli/slo_status.h"

namespace syncscope::cli {
namespace {

TEST(SloStatus, RendersBudgetsBurnRatesAlertsAndCircuits) {
  const auto status = nlohmann::ordered_json::parse(R"({
  "evaluated_at": "2027-01-15T08:00:04.000Z",
  "slos": [
    {"name": "crowded-runq", "target": "cgroup=/crowded", "sli": "runq_latency", "objective": 99.0,
     "window": "1h", "min_events": 100, "error_budget_remaining": -0.034,
     "events": {"good": 12034, "bad": 530},
     "burn_rates": {"4s": 12.1, "20s": 5.4},
     "rules": [{"severity": "page", "long": "20s", "short": "4s", "burn_rate": 5, "firing": true}],
     "alerts": {"page": true, "ticket": false},
     "circuit": {"key": "crowded-runq/cgroup=/crowded", "state": "open", "since": "2027-01-15T08:00:00.000Z",
                 "open_until": "2027-01-15T08:00:05.000Z", "sequence": 3},
     "measurement": {"measured": true, "source": "sched: kernel row 0"}},
    {"name": "api-locks", "target": "unit=api.service", "sli": "lock_wait", "objective": 99.9,
     "window": "30d", "min_events": 100, "error_budget_remaining": 1.0,
     "events": {"good": 0, "bad": 0},
     "burn_rates": {},
     "rules": [],
     "alerts": {"page": false, "ticket": false},
     "circuit": {"key": "api-locks/unit=api.service", "state": "closed", "since": null, "open_until": null,
                 "sequence": 0},
     "measurement": {"measured": false, "source": "", "problem": "the locks collector is not running"}}
  ],
  "notifiers": {"am": {"type": "alertmanager", "url": "http://127.0.0.1:19093", "disabled": false},
                "breaker": {"type": "webhook", "url": "http://127.0.0.1:18080/hook", "disabled": true}},
  "outbox_pending": 2
})");
  EXPECT_EQ(render_slo_status(status),
            "SLO           TARGET            SLI           OBJECTIVE  WINDOW  GOOD   BAD  BUDGET LEFT  "
            "BURN RATES         ALERT  CIRCUIT\n"
            "crowded-runq  cgroup=/crowded   runq_latency  99%        1h      12034  530  -3.4%        "
            "4s=12.10 20s=5.40  page   open until 08:00:05Z (#3)\n"
            "api-locks     unit=api.service  lock_wait     99.9%      30d     0      0    100.0%       "
            "-                  -      closed\n"
            "  ! not measured: the locks collector is not running\n"
            "\n"
            "notifiers: am (alertmanager http://127.0.0.1:19093) breaker (webhook http://127.0.0.1:18080/hook, "
            "DISABLED after 410)\n"
            "outbox: 2 pending\n"
            "evaluated at 2027-01-15T08:00:04.000Z\n");
}

TEST(SloStatus, NoSlos) {
  EXPECT_EQ(render_slo_status(nlohmann::ordered_json::parse(R"({"evaluated_at": null, "slos": [], "notifiers": {},
                                                        "outbox_pending": 0})")),
            "no SLOs configured\noutbox: 0 pending\nevaluated at -\n");
}

TEST(SloStatus, AgentAddressForms) {
  EXPECT_EQ(*slo_status_url("127.0.0.1:9479"), "http://127.0.0.1:9479/debug/slo");
  EXPECT_EQ(*slo_status_url("localhost:9479/"), "http://localhost:9479/debug/slo");
  EXPECT_EQ(*slo_status_url("http://10.0.0.1:9479/metrics"), "http://10.0.0.1:9479/debug/slo");
  EXPECT_EQ(*slo_status_url("https://agent.example:443"), "https://agent.example:443/debug/slo");
  EXPECT_FALSE(slo_status_url("localhost").has_value());
  EXPECT_FALSE(slo_status_url("").has_value());
}

}  // namespace
}  // namespace syncscope::cli
