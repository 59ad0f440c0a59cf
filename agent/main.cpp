// syncscope: see how the programs on a host wait for each other.
//
//   syncscope agent [--config FILE] [--listen ADDR:PORT]
//   syncscope trace runqlat [-p PID] [-c CGROUP] [-m] [--per-cgroup] [--json] [INTERVAL [COUNT]]
//   syncscope probe [--json]
//   syncscope config check FILE
//
// Argument parsing only; every command lives in agent/cli/.
#include <CLI/CLI.hpp>

#include "agent/cli/commands.h"
#include "agent/cli/registry.h"

#ifndef SYNCSCOPE_VERSION
#define SYNCSCOPE_VERSION "dev"
#endif

int main(int argc, char** argv) {
  using namespace syncscope::cli;
  CLI::App app{"syncscope: run queues, lock contention, Go runtime and false sharing, from eBPF", "syncscope"};
  app.require_subcommand(1);
  app.set_version_flag("--version", SYNCSCOPE_VERSION);
  int exit_code = kExitOk;

  AgentArgs agent_args;
  CLI::App* agent = app.add_subcommand("agent", "Run the agent: attach probes, serve /metrics, evaluate SLOs");
  agent->add_option("--config", agent_args.config_path, "YAML config file (default: the embedded default config)");
  agent->add_option("--listen", agent_args.listen, "ADDR:PORT to serve on, overriding the config's listen");
  agent->callback([&] { exit_code = run_agent(agent_args); });

  bool probe_json = false;
  CLI::App* probe = app.add_subcommand("probe", "Report what this kernel and machine support");
  probe->add_flag("--json", probe_json, "JSON output");
  probe->callback([&] { exit_code = run_probe(probe_json); });

  std::string config_file;
  CLI::App* config = app.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  CLI::App* check = config->add_subcommand("check", "Validate a config file; exit 2 with FILE:LINE:COL: key: reason");
  check->add_option("file", config_file, "config file")->required();
  check->callback([&] { exit_code = run_config_check(config_file); });

  CLI::App* trace = app.add_subcommand("trace", "Ad-hoc tracing, printed as tables or JSON");
  trace->require_subcommand(1);

  RunqlatArgs runqlat_args;
  CLI::App* runqlat = trace->add_subcommand("runqlat", "Run-queue latency histogram (like libbpf-tools runqlat)");
  runqlat->add_option("-p,--pid", runqlat_args.pid, "only tasks of this process");
  runqlat->add_option("-c,--cgroup", runqlat_args.cgroup, "only tasks in this cgroup v2 path (and below)");
  runqlat->add_flag("-m,--milliseconds", runqlat_args.milliseconds, "millisecond histogram");
  runqlat->add_flag("--per-cgroup", runqlat_args.per_cgroup, "one histogram per cgroup");
  runqlat->add_flag("-T,--timestamp", runqlat_args.timestamps, "include a timestamp on each output");
  runqlat->add_flag("--fine", runqlat_args.fine, "print the four sub-buckets of each power of two");
  runqlat->add_flag("--json", runqlat_args.json, "one JSON object per interval");
  runqlat->add_option("-d,--duration", runqlat_args.duration_s, "stop after SECONDS");
  runqlat->add_option("interval", runqlat_args.interval_s, "output interval in seconds");
  runqlat->add_option("count", runqlat_args.count, "number of outputs");
  runqlat->callback([&] { exit_code = run_trace_runqlat(runqlat_args); });

  // Later capabilities add their subcommands here (trace locks, …).
  register_extra_commands(app, trace, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}
