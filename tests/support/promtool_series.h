// Reading promtool rule-test files from C++ tests: where the source tree is,
// and promtool's expanding notation for input series values.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace syncscope::testing {

// `relative` (e.g. "dashboards/rules/tests/syncscope.rules.test.yaml") under
// $SYNCSCOPE_SOURCE_DIR, else the source tree this test was built from, else
// the working directory; empty when none has it.
std::filesystem::path find_source_file(const std::string& relative);

// promtool's expanding notation: "a+bxn" / "a-bxn" (n+1 values a, a±b, …),
// "axn" (n+1 times a) and plain "a", space-separated.
std::vector<double> expand_series(const std::string& values);

}  // namespace syncscope::testing
