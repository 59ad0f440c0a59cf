// `syncscope slo status`: the SLOs of a running agent, read from its
// /debug/slo endpoint. The table is a pure function of that JSON
// (golden-tested in tests/unit/test_slo_status.cpp).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/core/result.h"

namespace syncscope::cli {

// "127.0.0.1:9479", "localhost:9479" or "http://host:port[/...]" → the
// /debug/slo URL.
Result<std::string> slo_status_url(std::string_view agent);

// One row per SLO (budget, events, burn rates, alerts, circuit), a line under
// the row for an SLO that is not being measured, then notifiers and outbox.
std::string render_slo_status(const nlohmann::ordered_json& status);

}  // namespace syncscope::cli
