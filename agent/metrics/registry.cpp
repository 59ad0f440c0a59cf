#include <map>

#include "agent/metrics/metric.h"

namespace syncscope::metrics {

std::vector<Family> Registry::collect() const {
  std::vector<Family> gathered;
  {
    std::lock_guard lock(mu_);
    for (const MetricSource* source : sources_) source->collect(gathered);
  }
  // Merge families of the same name (two collectors may both report, e.g.,
  // syncscope_lock_wait_seconds for different lock kinds) and order by name
  // so scrapes are stable.
  std::map<std::string, Family> by_name;
  for (Family& family : gathered) {
    auto [it, inserted] = by_name.try_emplace(family.name, std::move(family));
    if (!inserted) {
      for (Sample& s : family.samples) it->second.samples.push_back(std::move(s));
    }
  }
  std::vector<Family> merged;
  merged.reserve(by_name.size());
  for (auto& [name, family] : by_name) merged.push_back(std::move(family));
  return merged;
}

}  // namespace syncscope::metrics
