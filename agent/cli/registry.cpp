#include "agent/cli/registry.h"

namespace syncscope::cli {

// Defined in agent/cli/trace_locks.cpp.
void register_trace_locks(CLI::App* trace, int& exit_code);
// Defined in agent/cli/trace_falseshare.cpp.
void register_trace_falseshare(CLI::App* trace, int& exit_code);
// Defined in agent/cli/trace_goroutines.cpp.
void register_trace_goroutines(CLI::App* trace, int& exit_code);
// Defined in agent/cli/slo_status.cpp.
void register_slo_commands(CLI::App& app, int& exit_code);

void register_extra_commands(CLI::App& app, CLI::App* trace, int& exit_code) {
  (void)app;
  (void)trace;
  (void)exit_code;
  register_trace_locks(trace, exit_code);
  register_trace_falseshare(trace, exit_code);
  register_trace_goroutines(trace, exit_code);
  register_slo_commands(app, exit_code);
}

}  // namespace syncscope::cli
