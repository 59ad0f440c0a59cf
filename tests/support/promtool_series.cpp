#include "tests/support/promtool_series.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace syncscope::testing {

std::filesystem::path find_source_file(const std::string& relative) {
  namespace fs = std::filesystem;
  std::vector<fs::path> roots;
  if (const char* root = std::getenv("SYNCSCOPE_SOURCE_DIR")) roots.push_back(root);
  roots.push_back(fs::path(__FILE__).parent_path().parent_path().parent_path());  // tests/support/ → the tree
  roots.push_back(".");
  for (const fs::path& root : roots)
    if (fs::path file = root / relative; fs::exists(file)) return fs::absolute(file);
  return {};
}

std::vector<double> expand_series(const std::string& values) {
  std::vector<double> out;
  std::istringstream words(values);
  std::string word;
  while (words >> word) {
    const size_t x = word.find('x');
    const size_t sign = word.find_first_of("+-", 1);  // not a leading minus
    const bool stepped = sign != std::string::npos && (x == std::string::npos || sign < x);
    const int count = x == std::string::npos ? 0 : std::stoi(word.substr(x + 1));
    const double start = std::stod(word.substr(0, std::min(sign, x)));
    const double step = stepped ? std::stod(word.substr(sign, x - sign)) : 0;  // keeps its sign
    for (int i = 0; i <= count; ++i) out.push_back(start + step * i);
  }
  return out;
}

}  // namespace syncscope::testing
