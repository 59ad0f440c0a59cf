// ProbeReport as a metric source: syncscope_probes and syncscope_collector_up,
// which the agent-health alert (dashboards/rules) and dashboards read.
#include <gtest/gtest.h>

#include "agent/loader/probe_report.h"
#include "agent/metrics/exposition.h"

namespace syncscope::loader {
namespace {

TEST(ProbeReport, ExportsAttachStatusPerCollector) {
  ProbeReport report;
  report.set("sched", {{"tp_btf_sched_switch", "tp_btf", "sched_switch", true, ""},
                       {"raw_tp_sched_switch", "raw_tp", "sched_switch", false, "tp_btf chosen"}});
  report.set("locks", {}, "failed: no syscalls:sys_enter_futex tracepoint");
  report.set("cachelines", {}, std::string(ProbeReport::kDisabledSummary));
  std::vector<metrics::Family> families;
  report.collect(families);
  EXPECT_EQ(metrics::render_text(families),
            "# HELP syncscope_probes BPF attachments per collector by state (attached, not_attached); "
            "/debug/probes says why.\n"
            "# TYPE syncscope_probes gauge\n"
            "syncscope_probes{collector=\"locks\",state=\"attached\"} 0\n"
            "syncscope_probes{collector=\"locks\",state=\"not_attached\"} 0\n"
            "syncscope_probes{collector=\"sched\",state=\"attached\"} 1\n"
            "syncscope_probes{collector=\"sched\",state=\"not_attached\"} 1\n"
            "# HELP syncscope_collector_up 1 when the collector has at least one probe attached, 0 when it has "
            "none.\n"
            "# TYPE syncscope_collector_up gauge\n"
            "syncscope_collector_up{collector=\"locks\"} 0\n"
            "syncscope_collector_up{collector=\"sched\"} 1\n");
}

}  // namespace
}  // namespace syncscope::loader
