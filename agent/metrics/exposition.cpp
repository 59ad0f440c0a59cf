#include "agent/metrics/exposition.h"

#include <cmath>
#include "agent/core/format.h"

namespace syncscope::metrics {
namespace {

void append_escaped(std::string& out, std::string_view text, bool escape_quotes) {
  for (char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"':
        out += escape_quotes ? "\\\"" : "\"";
        break;
      default: out += c;
    }
  }
}

void append_labels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

const char* type_name(Type type) {
  switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

std::string_view strip_total(std::string_view name) {
  if (name.ends_with("_total")) name.remove_suffix(6);
  return name;
}

void append_sample(std::string& out, std::string_view name, const Labels& labels, double value) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  out += format_value(value);
  out += '\n';
}

void append_histogram(std::string& out, const std::string& name, const Sample& sample) {
  const Histogram& h = sample.histogram;
  for (const auto& [upper, cumulative] : h.buckets) {
    out += name;
    out += "_bucket";
    append_labels(out, sample.labels, "le", format_value(upper));
    out += ' ';
    out += format_value(static_cast<double>(cumulative));
    out += '\n';
  }
  out += name;
  out += "_bucket";
  append_labels(out, sample.labels, "le", "+Inf");
  out += ' ';
  out += format_value(static_cast<double>(h.count));
  out += '\n';
  append_sample(out, name + "_sum", sample.labels, h.sum);
  append_sample(out, name + "_count", sample.labels, static_cast<double>(h.count));
}

void render(std::string& out, const std::vector<Family>& families, bool openmetrics) {
  for (const Family& family : families) {
    // OpenMetrics names a counter family without its _total suffix.
    std::string_view meta_name = openmetrics && family.type == Type::counter ? strip_total(family.name)
                                                                              : std::string_view(family.name);
    out += "# HELP ";
    out += meta_name;
    out += ' ';
    append_escaped(out, family.help, openmetrics);
    out += "\n# TYPE ";
    out += meta_name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    for (const Sample& sample : family.samples) {
      if (family.type == Type::histogram) append_histogram(out, family.name, sample);
      else append_sample(out, family.name, sample.labels, sample.value);
    }
  }
}

}  // namespace

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{}", static_cast<int64_t>(value));
  return fmt::format("{}", value);
}

std::string render_text(const std::vector<Family>& families) {
  std::string out;
  render(out, families, false);
  return out;
}

std::string render_openmetrics(const std::vector<Family>& families) {
  std::string out;
  render(out, families, true);
  out += "# EOF\n";
  return out;
}

bool wants_openmetrics(std::string_view accept_header) {
  return accept_header.find("application/openmetrics-text") != std::string_view::npos;
}

}  // namespace syncscope::metrics
