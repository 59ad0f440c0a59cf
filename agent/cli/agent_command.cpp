// `syncscope agent`: the daemon.
#include <signal.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>

#include "agent/cli/commands.h"
#include "agent/config/config.h"
#include "agent/core/fd.h"
#include "agent/core/log.h"
#include "agent/loader/features.h"
#include "agent/pipeline.h"

#include <nlohmann/json.hpp>

namespace syncscope::cli {
namespace {

log::Level parse_level(const std::string& level) {
  if (level == "debug") return log::Level::debug;
  if (level == "warning") return log::Level::warning;
  if (level == "error") return log::Level::error;
  return log::Level::info;
}

Result<config::Config> load_config(const AgentArgs& args) {
  config::Config config = args.config_path ? TRY(config::load_file(*args.config_path)) : TRY(config::load_default());
  if (args.listen) {
    if (auto address = config::parse_listen_address(*args.listen); !address)
      return fail(fmt::format("--listen: {}", address.error().message()));
    config.listen = *args.listen;
  }
  return config;
}

// CAP_BPF and CAP_PERFMON are the two the agent cannot start without (every
// collector loads and attaches programs); CAP_SYS_ADMIN stands in for both on
// kernels before 5.8 and for root. The others (CAP_SYS_PTRACE,
// CAP_DAC_READ_SEARCH) only narrow what is seen: warned about, not fatal.
std::string missing_required_capabilities(const loader::Features& features) {
  std::ifstream status("/proc/self/status");
  std::string line;
  uint64_t effective = 0;
  while (std::getline(status, line))
    if (line.starts_with("CapEff:")) effective = std::stoull(line.substr(7), nullptr, 16);
  constexpr int kCapSysAdmin = 21;
  if (effective & (1ULL << kCapSysAdmin)) return "";
  std::string missing;
  for (const std::string& cap : features.missing_capabilities)
    if (cap == "CAP_BPF" || cap == "CAP_PERFMON") missing += (missing.empty() ? "" : " and ") + cap;
  return missing;
}

}  // namespace

int run_agent(const AgentArgs& args) {
  auto config = load_config(args);
  if (!config) {
    log::error("{}", config.error().message());
    log::error("invalid configuration: nothing attached");
    return kExitUsage;
  }
  log::set_min_level(parse_level(config->log_level));
  log::info("syncscope agent starting with {}", config->source);

  // Block the signals we handle before any thread starts, so they all arrive
  // at the signalfd in the pipeline loop.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  Fd signals(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals) {
    log::error("signalfd: {}", std::strerror(errno));
    return kExitFailure;
  }

  loader::install_libbpf_logging();
  loader::Features features = loader::probe_features();
  for (const loader::FeatureCheck& check : features.checks)
    log::info("feature {:<20} {:<3} {}", check.name, check.available ? "yes" : "no", check.detail);
  if (!features.btf) {
    log::error("this kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load");
    return kExitFailure;
  }
  if (std::string missing = missing_required_capabilities(features); !missing.empty()) {
    log::error("missing capability {}: the agent cannot load or attach anything without it. Run it as root, "
               "or grant it (systemd: AmbientCapabilities=, see config/syncscope.service; setpriv --ambient-caps)",
               missing);
    return kExitFailure;
  }
  if (!features.missing_capabilities.empty())
    log::warn("running with less visibility: {}", features.find("capabilities")->detail);

  auto pipeline = Pipeline::start(*config, features);
  if (!pipeline) {
    log::error("{}", pipeline.error().message());
    if (!features.missing_capabilities.empty())
      log::error("missing capabilities: {}", features.find("capabilities")->detail);
    return kExitFailure;
  }

  std::atomic<bool> stopping{false};
  auto on_signal = [&] {
    signalfd_siginfo info{};
    while (::read(signals.get(), &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGHUP) {
        std::string path = args.config_path.value_or("<embedded default>");
        log::info("SIGHUP: reloading {}", path);
        sd_notify(0, "RELOADING=1");
        auto next = load_config(args);
        if (!next) {
          log::error("reload refused, keeping the running config: {}", next.error().message());
        } else if (auto reloaded = (*pipeline)->reload(*next); !reloaded) {
          log::error("reload incomplete: {}", reloaded.error().message());
        } else {
          log::info("reloaded {}", path);
        }
        sd_notify(0, "READY=1");
      } else {
        log::info("{}: detaching and exiting", strsignal(static_cast<int>(info.ssi_signo)));
        stopping = true;
      }
    }
  };
  if (auto watched = (*pipeline)->watch_fd(signals.get(), on_signal); !watched) {
    log::error("{}", watched.error().message());
    return kExitFailure;
  }

  sd_notifyf(0, "READY=1\nSTATUS=%s", (*pipeline)->status_line().c_str());
  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  auto last_ping = std::chrono::steady_clock::now();
  while (!stopping) {
    if (auto turned = (*pipeline)->run_once(std::chrono::milliseconds(500)); !turned) {
      log::error("pipeline: {}", turned.error().message());
      return kExitFailure;
    }
    auto now = std::chrono::steady_clock::now();
    if (watchdog && now - last_ping >= std::chrono::microseconds(watchdog_usec / 2)) {
      sd_notifyf(0, "WATCHDOG=1\nSTATUS=%s", (*pipeline)->status_line().c_str());
      last_ping = now;
    }
  }
  sd_notify(0, "STOPPING=1");
  pipeline->reset();  // detaches every probe
  log::info("stopped");
  return kExitOk;
}

int run_config_check(const std::string& path) {
  auto config = config::load_file(path);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message().c_str());
    return kExitUsage;
  }
  std::printf("%s: valid (%zu SLOs, %zu notifiers)\n", path.c_str(), config->slos.size(), config->notifiers.size());
  return kExitOk;
}

int run_probe(bool json) {
  loader::install_libbpf_logging();
  loader::Features features = loader::probe_features();
  if (json) std::printf("%s\n", features.to_json().dump(2).c_str());
  else std::printf("%s", features.to_text().c_str());
  return kExitOk;
}

}  // namespace syncscope::cli
