#include "agent/loader/probe_report.h"

#include <nlohmann/json.hpp>

namespace syncscope::loader {

void ProbeReport::set(const std::string& collector, std::vector<ProbeStatus> rows, std::string summary) {
  std::lock_guard lock(mu_);
  collectors_[collector] = CollectorRows{std::move(summary), std::move(rows)};
}

void ProbeReport::clear(const std::string& collector) {
  std::lock_guard lock(mu_);
  collectors_.erase(collector);
}

size_t ProbeReport::attached_count() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, c] : collectors_)
    for (const ProbeStatus& row : c.rows) n += row.attached ? 1 : 0;
  return n;
}

void ProbeReport::collect(std::vector<metrics::Family>& out) const {
  metrics::Family probes = metrics::gauge(
      "syncscope_probes", "BPF attachments per collector by state (attached, not_attached); /debug/probes says why.");
  metrics::Family up = metrics::gauge(
      "syncscope_collector_up", "1 when the collector has at least one probe attached, 0 when it has none.");
  std::lock_guard lock(mu_);
  for (const auto& [name, c] : collectors_) {
    if (c.rows.empty() && c.summary == kDisabledSummary) continue;
    size_t attached = 0;
    for (const ProbeStatus& row : c.rows) attached += row.attached ? 1 : 0;
    probes.add({{"collector", name}, {"state", "attached"}}, static_cast<double>(attached));
    probes.add({{"collector", name}, {"state", "not_attached"}}, static_cast<double>(c.rows.size() - attached));
    up.add({{"collector", name}}, attached > 0 ? 1.0 : 0.0);
  }
  out.push_back(std::move(probes));
  out.push_back(std::move(up));
}

nlohmann::json ProbeReport::to_json() const {
  std::lock_guard lock(mu_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, c] : collectors_) {
    nlohmann::json attached = nlohmann::json::array();
    nlohmann::json not_attached = nlohmann::json::array();
    for (const ProbeStatus& row : c.rows) {
      nlohmann::json entry = {{"program", row.program}, {"kind", row.kind}, {"target", row.target}};
      if (!row.detail.empty()) entry[row.attached ? "detail" : "reason"] = row.detail;
      (row.attached ? attached : not_attached).push_back(std::move(entry));
    }
    out[name] = {{"summary", c.summary}, {"attached", attached}, {"not_attached", not_attached}};
  }
  return out;
}

}  // namespace syncscope::loader
