// Minimal leveled logging to stderr. Under systemd each line carries the
// sd-daemon priority prefix ("<4>") so journald records the right level.
#pragma once

#include "agent/core/format.h"
#include <string_view>

namespace syncscope::log {

enum class Level { debug = 7, info = 6, warning = 4, error = 3 };

void set_min_level(Level level);
Level min_level();
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> pattern, Args&&... args) {
  if (min_level() >= Level::debug) write(Level::debug, fmt::format(pattern, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> pattern, Args&&... args) {
  if (min_level() >= Level::info) write(Level::info, fmt::format(pattern, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> pattern, Args&&... args) {
  write(Level::warning, fmt::format(pattern, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> pattern, Args&&... args) {
  write(Level::error, fmt::format(pattern, std::forward<Args>(args)...));
}

}  // namespace syncscope::log
