// Checks promtool does not make on a text exposition: every histogram has
// strictly increasing `le` buckets with non-decreasing counts, a +Inf bucket,
// and _count equal to the +Inf bucket. Returns the problems found (empty = ok).
#pragma once

#include <string>
#include <vector>

namespace syncscope::testing {

std::vector<std::string> check_histograms(const std::string& exposition);

// Runs `promtool check metrics` on the text; returns its output and exit code.
struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};
PromtoolResult promtool_check_metrics(const std::string& exposition);

}  // namespace syncscope::testing
