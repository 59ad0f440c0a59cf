#include "agent/core/duration.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace syncscope {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t nanoseconds;
};

// Longest suffixes first so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 9> kUnits{{
    {"ns", 1},
    {"us", 1'000},
    {"µs", 1'000},
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
    {"d", 86'400'000'000'000},
    {"w", 604'800'000'000'000},
}};

}  // namespace

Result<Nanoseconds> parse_duration(std::string_view text) {
  if (text.empty()) return fail("empty duration (expected e.g. \"5ms\", \"30s\", \"1h\")");
  std::string_view rest = text;
  int64_t total = 0;
  while (!rest.empty()) {
    int64_t number = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), number);
    if (ec != std::errc() || end == rest.data() || number < 0)
      return fail(fmt::format("invalid duration \"{}\" (expected e.g. \"5ms\", \"30s\", \"1h\")", text));
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (rest.starts_with(candidate.suffix) &&
          (!unit || candidate.suffix.size() > unit->suffix.size()))
        unit = &candidate;
    }
    if (!unit)
      return fail(fmt::format("invalid duration \"{}\": missing or unknown unit (use ns, us, ms, s, m, h, d, w)",
                              text));
    rest.remove_prefix(unit->suffix.size());
    if (number > std::numeric_limits<int64_t>::max() / unit->nanoseconds - total / unit->nanoseconds)
      return fail(fmt::format("duration \"{}\" is too long", text));
    total += number * unit->nanoseconds;
  }
  return Nanoseconds(total);
}

std::string format_duration(Nanoseconds d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    if (it->suffix == "µs") continue;
    if (ns % it->nanoseconds == 0) return fmt::format("{}{}", ns / it->nanoseconds, it->suffix);
  }
  return fmt::format("{}ns", ns);
}

}  // namespace syncscope
