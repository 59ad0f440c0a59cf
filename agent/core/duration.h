// Durations as written in the config and on the command line: "250us", "5ms",
// "20s", "1h", "30d", "1h30m". Units: ns, us (µs), ms, s, m, h, d, w.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "agent/core/result.h"

namespace syncscope {

using Nanoseconds = std::chrono::nanoseconds;

Result<Nanoseconds> parse_duration(std::string_view text);
// The shortest exact spelling: 3600s → "1h", 1500ms → "1500ms".
std::string format_duration(Nanoseconds d);

}  // namespace syncscope
