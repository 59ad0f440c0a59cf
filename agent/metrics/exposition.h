// Prometheus exposition, written here because prometheus-cpp is not packaged
// for Debian 12: the text format 0.0.4 and OpenMetrics 1.0. Pure functions of
// the families, golden-tested and checked with `promtool check metrics`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/metrics/metric.h"

namespace syncscope::metrics {

inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

std::string render_text(const std::vector<Family>& families);
std::string render_openmetrics(const std::vector<Family>& families);

// Content negotiation on the scraper's Accept header: OpenMetrics when it is
// asked for (Prometheus sends it first when scrape_protocols allow), else text.
bool wants_openmetrics(std::string_view accept_header);

// Number formatting shared by both formats: integers without a fraction,
// other values in the shortest form that reads back exactly, +Inf/-Inf/NaN.
std::string format_value(double value);

}  // namespace syncscope::metrics
