#include "agent/pipeline.h"

#include <bpf/libbpf_version.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/collectors/cachelines.h"
#include "agent/collectors/goroutines.h"
#include "agent/collectors/locks.h"
#include "agent/collectors/sched.h"
#include "agent/core/log.h"
#include "agent/metrics/exposition.h"
#include "agent/slo/slo_stage.h"

#ifndef SYNCSCOPE_VERSION
#define SYNCSCOPE_VERSION "dev"
#endif

namespace syncscope {
namespace {

// The agent's own health: build, process CPU and memory (the same names the
// Prometheus client libraries use, so existing dashboards work).
class AgentMetrics final : public metrics::MetricSource {
 public:
  explicit AgentMetrics(std::string kernel) : kernel_(std::move(kernel)) {}

  void collect(std::vector<metrics::Family>& out) const override {
    auto build = metrics::gauge("syncscope_build_info", "Always 1; labels name the agent build and the kernel.");
    build.add({{"version", SYNCSCOPE_VERSION},
               {"libbpf", fmt::format("{}.{}", LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION)},
               {"kernel", kernel_}},
              1);
    out.push_back(std::move(build));

    std::ifstream stat("/proc/self/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the ")" that closes comm: state is field 3; utime 14, stime 15, rss 24.
    size_t close = content.rfind(')');
    if (close == std::string::npos) return;
    std::istringstream fields(content.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)), std::istream_iterator<std::string>());
    if (f.size() < 22) return;
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    double rss = std::stod(f[21]) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    out.push_back(metrics::counter("process_cpu_seconds_total", "User and system CPU time of the agent.").add({}, cpu));
    out.push_back(metrics::gauge("process_resident_memory_bytes", "Resident memory of the agent.").add({}, rss));
  }

 private:
  std::string kernel_;
};

collectors::LocksOptions locks_options(const config::Config& config) {
  collectors::LocksOptions options;
  options.targets = config.locks.targets;
  options.top_k = config.locks.top_k;
  options.stacks = config.locks.stacks;
  options.glibc_uprobes = config.locks.glibc_uprobes;
  options.golang = config.golang.enabled;  // Go mutex contention rides on the locks collector
  options.max_cgroups = config.max_cgroups;
  return options;
}

collectors::CachelinesOptions cachelines_options(const config::Config& config) {
  collectors::CachelinesOptions options;
  options.targets = config.cachelines.targets;
  options.pmu = config.cachelines.pmu;
  options.window = std::chrono::milliseconds(config.cachelines.window_ms);
  options.duty_cycle = config.cachelines.duty_cycle;
  options.watch_symbols = config.cachelines.watch_symbols;
  options.atomics = config.cachelines.atomics;
  options.top_k = config.cachelines.top_k;
  options.max_cgroups = config.max_cgroups;
  return options;
}

collectors::GoroutinesOptions goroutines_options(const config::Config& config) {
  collectors::GoroutinesOptions options;
  options.targets = config.golang.targets;
  options.top_k = config.golang.top_k;
  options.scan_interval = config.golang.scan_interval;
  options.max_processes = config.max_cgroups;
  return options;
}

}  // namespace

Pipeline::Pipeline(const config::Config& config, const loader::Features& features)
    : config_(config), features_(features) {}

Pipeline::~Pipeline() {
  // HTTP first: no scrape may run while collectors are torn down.
  http_.reset();
  // Then the SLO stage (engine, which saves its state, before the
  // dispatcher): its SLI source reads the collectors.
  if (slo_) registry_.remove(slo_.get());
  slo_.reset();
  for (auto& collector : collectors_) registry_.remove(collector.get());
  collectors_.clear();
}

Result<std::unique_ptr<Pipeline>> Pipeline::start(const config::Config& config, const loader::Features& features) {
  auto pipeline = std::unique_ptr<Pipeline>(new Pipeline(config, features));
  pipeline->loop_ = TRY(ingest::EventLoop::create());
  pipeline->cgroups_ = TRY(probes::CgroupResolver::for_this_host());
  log::info("cgroup v2 hierarchy at {}", pipeline->cgroups_->mount());

  if (config.bpf_stats) pipeline->bpf_self_metrics_.enable_run_time_stats();
  pipeline->agent_metrics_ = std::make_unique<AgentMetrics>(features.kernel_release);
  pipeline->registry_.add(pipeline->agent_metrics_.get());
  pipeline->registry_.add(&pipeline->bpf_self_metrics_);
  pipeline->registry_.add(&pipeline->probe_report_);  // syncscope_probes, syncscope_collector_up

  TRY(pipeline->start_collectors(config));
  pipeline->slo_ = TRY(slo::SloStage::start(config, *pipeline->cgroups_));
  pipeline->registry_.add(pipeline->slo_.get());
  pipeline->connect_slo();
  // One refresh before the port opens, so the first scrape has data.
  pipeline->every_second(std::chrono::steady_clock::now());
  TRY(pipeline->start_http(config));
  return pipeline;
}

Result<void> Pipeline::start_collectors(const config::Config& config) {
  if (config.sched.enabled) {
    collectors::SchedOptions options;
    options.runq_length_sample_hz = config.sched.runq_length_sample_hz;
    options.max_cgroups = config.max_cgroups;
    auto sched = collectors::SchedCollector::start(options, features_, *cgroups_, &bpf_self_metrics_, &probe_report_);
    if (!sched) return std::unexpected(sched.error().wrap("sched collector"));
    sched_ = sched->get();
    collectors_.push_back(std::move(*sched));
  } else {
    probe_report_.set("sched", {}, "disabled in config");
  }
  if (config.locks.enabled) {
    auto locks = collectors::LocksCollector::start(locks_options(config), features_, *cgroups_, &bpf_self_metrics_,
                                                   &probe_report_);
    if (locks) {
      locks_ = locks->get();
      collectors_.push_back(std::move(*locks));
    } else {
      // One capability among several: a kernel without syscall tracepoints
      // loses lock contention, not the agent. /debug/probes says why.
      log::error("locks collector: {}", locks.error().message());
      probe_report_.set("locks", {}, "failed: " + locks.error().message());
    }
  } else {
    probe_report_.set("locks", {}, "disabled in config");
  }
  if (config.cachelines.enabled) {
    auto cachelines = collectors::CachelinesCollector::start(cachelines_options(config), features_, *cgroups_,
                                                             &bpf_self_metrics_, &probe_report_);
    if (cachelines) {
      cachelines_ = cachelines->get();
      collectors_.push_back(std::move(*cachelines));
    } else {
      // Like locks: a host without watchpoints or perf_event programs loses
      // cache-line detection, not the agent.
      log::error("cachelines collector: {}", cachelines.error().message());
      probe_report_.set("cachelines", {}, "failed: " + cachelines.error().message());
    }
  } else {
    probe_report_.set("cachelines", {}, "disabled in config");
  }
  if (config.golang.enabled) {
    // Reads goroutine state from outside: nothing to attach, so it cannot fail to start.
    auto goroutines = TRY(collectors::GoroutinesCollector::start(goroutines_options(config), &probe_report_));
    goroutines_ = goroutines.get();
    collectors_.push_back(std::move(goroutines));
  } else {
    probe_report_.set("goroutines", {}, "disabled in config");
  }
  connect_cacheline_hints();
  for (auto& collector : collectors_) {
    TRY(collector->add_to(loop_));
    registry_.add(collector.get());
  }
  return {};
}

void Pipeline::connect_cacheline_hints() {
  if (cachelines_ && lock_hints_) cachelines_->remove_source(lock_hints_.get());
  lock_hints_.reset();
  if (cachelines_ && locks_) {
    lock_hints_ = std::make_unique<collectors::LockCandidateSource>(*locks_);
    cachelines_->add_source(lock_hints_.get());
  }
}

Result<void> Pipeline::start_http(const config::Config& config) {
  config::ListenAddress address = TRY(config::parse_listen_address(config.listen));
  std::map<std::string, http::Handler> routes;
  routes["/metrics"] = [this](const http::Request& r) { return serve_metrics(r); };
  routes["/healthz"] = [this](const http::Request&) {
    int64_t last = last_tick_ns_.load();
    int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    bool fresh = last != 0 && now - last < std::chrono::nanoseconds(std::chrono::seconds(5)).count();
    return fresh ? http::Response{200, "text/plain; charset=utf-8", "ok\n"}
                 : http::Response{503, "text/plain; charset=utf-8", "pipeline loop stalled\n"};
  };
  routes["/debug/slo"] = [this](const http::Request&) {
    return http::Response{200, "application/json", slo_->status_json() + "\n"};
  };
  routes["/debug/probes"] = [this](const http::Request&) {
    nlohmann::json body = {{"features", features_.to_json()}, {"collectors", probe_report_.to_json()}};
    return http::Response{200, "application/json", body.dump(2) + "\n"};
  };
  auto server = http::Server::start(address, std::move(routes));
  if (!server) return std::unexpected(server.error());
  http_ = std::move(*server);
  log::info("serving /metrics on http://{}:{}/metrics", address.host, http_->port());
  return {};
}

http::Response Pipeline::serve_metrics(const http::Request& request) const {
  std::vector<metrics::Family> families = registry_.collect();
  if (metrics::wants_openmetrics(request.accept))
    return {200, std::string(metrics::kOpenMetricsContentType), metrics::render_openmetrics(families)};
  return {200, std::string(metrics::kTextContentType), metrics::render_text(families)};
}

void Pipeline::every_second(std::chrono::steady_clock::time_point now) {
  for (auto& collector : collectors_) collector->refresh(now);
  if (slo_) slo_->evaluate(now);  // after the refresh: the SLIs read what it drained
  last_tick_ns_.store(now.time_since_epoch().count());
}

Result<void> Pipeline::run_once(std::chrono::milliseconds max_wait) {
  auto now = std::chrono::steady_clock::now();
  if (now >= next_tick_) {
    every_second(now);
    next_tick_ = now + std::chrono::seconds(1);
  }
  auto until_tick = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - now);
  return loop_.run_once(std::min(max_wait, std::max(until_tick, std::chrono::milliseconds(0))));
}

void Pipeline::connect_slo() {
  if (slo_) slo_->connect(sched_, locks_, goroutines_);
}

Result<void> Pipeline::reload(const config::Config& next) {
  // Whatever returns below, the SLO stage must not keep pointers to
  // collectors this reload replaced.
  struct ReconnectSlo {
    Pipeline* pipeline;
    ~ReconnectSlo() { pipeline->connect_slo(); }
  } reconnect_slo{this};
  // HTTP: bind the new address before letting go of the old one.
  if (next.listen != config_.listen) {
    config::ListenAddress address = TRY(config::parse_listen_address(next.listen));
    (void)address;
    std::unique_ptr<http::Server> old = std::move(http_);
    old.reset();  // civetweb cannot bind the same port twice; the gap is one reload
    if (auto started = start_http(next); !started) {
      log::error("reload: {}; serving on the old address again", started.error().message());
      TRY(start_http(config_));
      return std::unexpected(started.error());
    }
  }
  bool sched_changed = next.sched != config_.sched || next.max_cgroups != config_.max_cgroups;
  if (sched_changed) {
    for (auto it = collectors_.begin(); it != collectors_.end(); ++it) {
      if ((*it)->name() == "sched") {
        registry_.remove(it->get());
        collectors_.erase(it);
        sched_ = nullptr;
        break;
      }
    }
    if (next.sched.enabled) {
      collectors::SchedOptions options;
      options.runq_length_sample_hz = next.sched.runq_length_sample_hz;
      options.max_cgroups = next.max_cgroups;
      auto sched = collectors::SchedCollector::start(options, features_, *cgroups_, &bpf_self_metrics_, &probe_report_);
      if (!sched) return std::unexpected(sched.error().wrap("reload: sched collector"));
      sched_ = sched->get();
      registry_.add(sched_);
      collectors_.push_back(std::move(*sched));
    } else {
      probe_report_.set("sched", {}, "disabled in config");
    }
  }
  if (next.locks != config_.locks || next.max_cgroups != config_.max_cgroups ||
      next.golang.enabled != config_.golang.enabled) {
    // The new collector starts (and takes its ring buffer into the loop)
    // before the old one goes, so a failure leaves the old one running.
    std::unique_ptr<collectors::LocksCollector> replacement;
    if (next.locks.enabled) {
      auto locks = collectors::LocksCollector::start(locks_options(next), features_, *cgroups_, &bpf_self_metrics_,
                                                     &probe_report_);
      if (!locks) return std::unexpected(locks.error().wrap("reload: locks collector"));
      TRY((*locks)->add_to(loop_));
      replacement = std::move(*locks);
    }
    for (auto it = collectors_.begin(); it != collectors_.end(); ++it) {
      if ((*it)->name() == "locks") {
        registry_.remove(it->get());
        collectors_.erase(it);
        break;
      }
    }
    locks_ = replacement.get();
    if (replacement) {
      registry_.add(locks_);
      collectors_.push_back(std::move(replacement));
    } else {
      probe_report_.set("locks", {}, "disabled in config");
    }
    // The cache-line hints referred to the old collector: re-point them now,
    // so no early return below can leave them dangling.
    connect_cacheline_hints();
  }
  if (next.cachelines != config_.cachelines || next.max_cgroups != config_.max_cgroups) {
    // As for locks: the new collector starts before the old one goes.
    std::unique_ptr<collectors::CachelinesCollector> replacement;
    if (next.cachelines.enabled) {
      auto cachelines = collectors::CachelinesCollector::start(cachelines_options(next), features_, *cgroups_,
                                                               &bpf_self_metrics_, &probe_report_);
      if (!cachelines) return std::unexpected(cachelines.error().wrap("reload: cachelines collector"));
      replacement = std::move(*cachelines);
    }
    for (auto it = collectors_.begin(); it != collectors_.end(); ++it) {
      if ((*it)->name() == "cachelines") {
        registry_.remove(it->get());
        collectors_.erase(it);
        break;
      }
    }
    cachelines_ = replacement.get();
    if (replacement) {
      registry_.add(cachelines_);
      collectors_.push_back(std::move(replacement));
    } else {
      probe_report_.set("cachelines", {}, "disabled in config");
    }
  }
  if (next.golang != config_.golang || next.max_cgroups != config_.max_cgroups) {
    for (auto it = collectors_.begin(); it != collectors_.end(); ++it) {
      if ((*it)->name() == "goroutines") {
        registry_.remove(it->get());
        collectors_.erase(it);
        break;
      }
    }
    goroutines_ = nullptr;
    if (next.golang.enabled) {
      auto goroutines = TRY(collectors::GoroutinesCollector::start(goroutines_options(next), &probe_report_));
      goroutines_ = goroutines.get();
      registry_.add(goroutines_);
      collectors_.push_back(std::move(goroutines));
    } else {
      probe_report_.set("goroutines", {}, "disabled in config");
    }
  }
  connect_cacheline_hints();
  // Stops the old notifier threads before the new ones open the outbox. On
  // failure the old SLOs and notifiers keep running (the stage remembers
  // which config it runs) and the rest of the reload still applies.
  Result<void> slo_reloaded = slo_->reload(next);
  log::set_min_level(next.log_level == "debug"     ? log::Level::debug
                     : next.log_level == "warning" ? log::Level::warning
                     : next.log_level == "error"   ? log::Level::error
                                                   : log::Level::info);
  config_ = next;
  return slo_reloaded;
}

std::string Pipeline::status_line() const {
  return fmt::format("{} probes attached; serving {}", probe_report_.attached_count(), config_.listen);
}

}  // namespace syncscope
