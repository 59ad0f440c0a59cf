// The metric data model shared by every collector and the exposition writers.
//
// Collectors do not push into a global registry of mutable metric objects;
// they implement MetricSource and describe what they hold when asked, the way
// Prometheus client "collectors" do. That keeps the kernel maps the source of
// truth and makes the exposition a pure function of a vector<Family>.
#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace syncscope::metrics {

enum class Type { counter, gauge, histogram };

// Label pairs in the order they are printed. Names are fixed by the collector;
// values are escaped by the writer.
using Labels = std::vector<std::pair<std::string, std::string>>;

struct Histogram {
  // (upper bound "le", cumulative count) in increasing order, without +Inf:
  // the writers add the +Inf bucket from `count`.
  std::vector<std::pair<double, uint64_t>> buckets;
  double sum = 0;
  uint64_t count = 0;
};

struct Sample {
  Labels labels;
  double value = 0;     // counter and gauge
  Histogram histogram;  // histogram
};

struct Family {
  // Counters carry their "_total" suffix here, as users see them in the text
  // format; the OpenMetrics writer derives the family name from it.
  std::string name;
  std::string help;
  Type type = Type::gauge;
  std::vector<Sample> samples;

  Family& add(Labels labels, double value) {
    samples.push_back(Sample{std::move(labels), value, {}});
    return *this;
  }
  Family& add_histogram(Labels labels, Histogram histogram) {
    samples.push_back(Sample{std::move(labels), 0, std::move(histogram)});
    return *this;
  }
};

inline Family counter(std::string name, std::string help) {
  return Family{std::move(name), std::move(help), Type::counter, {}};
}
inline Family gauge(std::string name, std::string help) {
  return Family{std::move(name), std::move(help), Type::gauge, {}};
}
inline Family histogram(std::string name, std::string help) {
  return Family{std::move(name), std::move(help), Type::histogram, {}};
}

// Anything that has metrics to show. collect() is called from HTTP threads:
// implementations guard their own state.
class MetricSource {
 public:
  virtual ~MetricSource() = default;
  virtual void collect(std::vector<Family>& out) const = 0;
};

// The set of sources behind /metrics. Sources are registered once by the
// pipeline; families with the same name from two sources are merged.
class Registry {
 public:
  void add(const MetricSource* source) {
    std::lock_guard lock(mu_);
    sources_.push_back(source);
  }
  void remove(const MetricSource* source) {
    std::lock_guard lock(mu_);
    std::erase(sources_, source);
  }
  std::vector<Family> collect() const;

 private:
  mutable std::mutex mu_;
  std::vector<const MetricSource*> sources_;
};

}  // namespace syncscope::metrics
