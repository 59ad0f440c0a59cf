#include "agent/cli/registry.h"

namespace syncscope::cli {

void register_extra_commands(CLI::App& app, CLI::App* trace, int& exit_code) {
  (void)app;
  (void)trace;
  (void)exit_code;
}

}  // namespace syncscope::cli
