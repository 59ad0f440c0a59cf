// Subcommands beyond the foundation's (trace locks, trace goroutines, trace
// falseshare, slo status, …) register here, each from its own file, so main()
// stays a table of contents.
#pragma once

#include <CLI/CLI.hpp>

namespace syncscope::cli {

// `exit_code` is where a command's callback stores its result.
void register_extra_commands(CLI::App& app, CLI::App* trace, int& exit_code);

}  // namespace syncscope::cli
