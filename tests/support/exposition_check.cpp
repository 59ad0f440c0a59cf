#include "tests/support/exposition_check.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>

#include "agent/core/format.h"

namespace syncscope::testing {
namespace {

struct Series {
  std::vector<std::pair<double, double>> buckets;  // le, value in exposition order
  bool has_inf = false;
  double inf_value = 0;
  bool has_count = false;
  double count = 0;
};

// "name{a="b",le="0.5"} 3" → name, labels without le, le, value.
bool split(const std::string& line, std::string& name, std::string& labels, std::string& le, double& value) {
  size_t brace = line.find('{');
  size_t space = line.rfind(' ');
  if (space == std::string::npos) return false;
  value = std::strtod(line.c_str() + space + 1, nullptr);
  if (line.compare(space + 1, 4, "+Inf") == 0) value = INFINITY;
  if (brace == std::string::npos || brace > space) {
    name = line.substr(0, space);
    labels.clear();
    le.clear();
    return true;
  }
  name = line.substr(0, brace);
  size_t close = line.rfind('}', space);
  std::string inside = line.substr(brace + 1, close - brace - 1);
  le.clear();
  labels.clear();
  // Label values here never contain '",' so a simple split is enough.
  std::stringstream parts(inside);
  std::string part;
  size_t pos = 0;
  while (pos < inside.size()) {
    size_t end = inside.find("\",", pos);
    part = inside.substr(pos, end == std::string::npos ? std::string::npos : end + 1 - pos);
    if (part.starts_with("le=\"")) le = part.substr(4, part.size() - 5);
    else labels += part + ",";
    if (end == std::string::npos) break;
    pos = end + 2;
  }
  return true;
}

}  // namespace

std::vector<std::string> check_histograms(const std::string& exposition) {
  std::map<std::string, std::string> types;
  std::map<std::string, Series> series;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::string name, labels, le;
    double value = 0;
    if (!split(line, name, labels, le, value)) continue;
    for (std::string_view suffix : {"_bucket", "_count"}) {
      if (!name.ends_with(suffix)) continue;
      std::string family = name.substr(0, name.size() - suffix.size());
      if (types[family] != "histogram") continue;
      Series& s = series[family + "{" + labels + "}"];
      if (suffix == "_count") {
        s.has_count = true;
        s.count = value;
      } else if (le == "+Inf") {
        s.has_inf = true;
        s.inf_value = value;
      } else {
        s.buckets.emplace_back(std::strtod(le.c_str(), nullptr), value);
      }
    }
  }
  std::vector<std::string> problems;
  for (const auto& [key, s] : series) {
    if (!s.has_inf) problems.push_back(fmt::format("{}: no +Inf bucket", key));
    if (!s.has_count) problems.push_back(fmt::format("{}: no _count", key));
    if (s.has_inf && s.has_count && s.inf_value != s.count)
      problems.push_back(fmt::format("{}: _count {} != +Inf bucket {}", key, s.count, s.inf_value));
    for (size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i - 1].first < s.buckets[i].first))
        problems.push_back(fmt::format("{}: le {} not above {}", key, s.buckets[i].first, s.buckets[i - 1].first));
      if (s.buckets[i - 1].second > s.buckets[i].second)
        problems.push_back(fmt::format("{}: bucket le={} decreases", key, s.buckets[i].first));
    }
    if (!s.buckets.empty() && s.has_inf && s.buckets.back().second > s.inf_value)
      problems.push_back(fmt::format("{}: +Inf below the last bucket", key));
  }
  return problems;
}

PromtoolResult promtool_check_metrics(const std::string& exposition) {
  char path[] = "/tmp/syncscope-metrics-XXXXXX";
  int fd = ::mkstemp(path);
  PromtoolResult result;
  if (fd < 0) return result;
  FILE* file = ::fdopen(fd, "w");
  std::fwrite(exposition.data(), 1, exposition.size(), file);
  std::fclose(file);
  std::string command = fmt::format("promtool check metrics < {} 2>&1", path);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe) {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
    int status = ::pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::remove(path);
  return result;
}

}  // namespace syncscope::testing
