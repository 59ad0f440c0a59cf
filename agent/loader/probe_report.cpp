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
