// String formatting. g++ 12's libstdc++ has no <format> (it arrives in GCC 13),
// so the agent uses {fmt} 9 from Debian, whose syntax std::format adopted:
// moving to std::format later is a search-and-replace.
#pragma once

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fmt/std.h>
