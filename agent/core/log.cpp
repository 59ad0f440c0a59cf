#include "agent/core/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace syncscope::log {
namespace {

std::atomic<Level> g_min_level{Level::info};

// journald understands "<N>" prefixes on stderr lines of a service; on a
// terminal a timestamp and a level word read better.
bool under_journald() {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  return journald;
}

const char* level_word(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "?";
}

}  // namespace

void set_min_level(Level level) { g_min_level.store(level); }
Level min_level() { return g_min_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view message) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (under_journald()) {
    std::fprintf(stderr, "<%d>%.*s\n", static_cast<int>(level), static_cast<int>(message.size()),
                 message.data());
  } else {
    auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    std::string stamp = fmt::format("{:%FT%T}Z", now);
    std::fprintf(stderr, "%s %-7s %.*s\n", stamp.c_str(), level_word(level),
                 static_cast<int>(message.size()), message.data());
  }
}

}  // namespace syncscope::log
