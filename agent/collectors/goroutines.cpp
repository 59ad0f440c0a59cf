#include "agent/collectors/goroutines.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "agent/core/format.h"
#include "agent/core/log.h"

namespace syncscope::collectors {
namespace {

using probes::go::GoroutineState;
using probes::go::kGoroutineStateCount;

std::string exe_path_of(uint32_t pid) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  if (path.ends_with(" (deleted)")) path.resize(path.size() - 10);
  return path;
}

bool process_gone(const Error& e) { return e.sys_errno() == ESRCH; }

// One scan of one process: read, check the first scan, summarize.
Result<std::pair<probes::go::GoroutineScan, probes::go::GoroutineSummary>> scan_process(
    uint32_t pid, const probes::go::GoRuntimeImage& image, bool validate) {
  auto layout = TRY(image.layout_for(static_cast<pid_t>(pid)));
  probes::go::ProcessMemory memory(static_cast<pid_t>(pid));
  auto scan = TRY(probes::go::read_goroutines(memory, layout));
  if (validate) TRY(probes::go::validate_first_scan(scan, image.allgs()));
  probes::go::ImageSymbols symbols(image, layout.bias);
  auto summary = probes::go::summarize(scan, symbols);
  return std::pair{std::move(scan), std::move(summary)};
}

}  // namespace

Result<std::shared_ptr<probes::go::GoRuntimeImage>> GoImageCache::for_pid(uint32_t pid, std::string* exe) {
  const std::string link = fmt::format("/proc/{}/exe", pid);
  struct stat st{};
  if (::stat(link.c_str(), &st) != 0) {
    // Kernel threads have no exe; neither has a process that exited (gone,
    // or a zombie until its parent reaps it).
    const int err = errno;
    if (!ProcfsProcessSource().alive(pid)) return fail(fmt::format("process {} has exited", pid), ESRCH);
    return fail_errno(fmt::format("process {}: {}", pid, link), err);
  }
  const std::string path = exe_path_of(pid);
  if (exe) *exe = path;
  const auto key = std::pair<uint64_t, uint64_t>(st.st_dev, st.st_ino);
  if (auto it = by_inode_.find(key); it != by_inode_.end()) {
    if (it->second.image) return it->second.image;
    return std::unexpected(it->second.error->wrap(fmt::format("process {}", pid)));
  }
  Entry entry;
  // /proc/PID/exe opens the very file the process runs, also from another
  // mount namespace or after it was replaced on disk.
  if (!probes::go::looks_like_go_executable(link)) {
    entry.error = Error(fmt::format("{} is not a Go program", path));
  } else if (auto image = probes::go::GoRuntimeImage::open(link); !image) {
    // Once per executable (the error is cached): a Go program the agent
    // cannot read, e.g. a Go release newer than the offset table.
    entry.error = Error(fmt::format("{}: {}", path, image.error().message()));
    log::warn("goroutines: {}", entry.error->message());
  } else {
    const std::string& build_id = (*image)->binary().build_id();
    auto shared = build_id.empty() ? std::shared_ptr<probes::go::GoRuntimeImage>() : by_build_id_[build_id].lock();
    entry.image = shared ? shared : *image;
    if (!build_id.empty()) by_build_id_[build_id] = entry.image;
  }
  auto& stored = by_inode_[key] = std::move(entry);
  if (stored.image) return stored.image;
  return std::unexpected(stored.error->wrap(fmt::format("process {}", pid)));
}

Result<GoProcessReport> inspect_go_process(uint32_t pid, uint32_t scans) {
  if (::access(fmt::format("/proc/{}/stat", pid).c_str(), F_OK) != 0)
    return fail(fmt::format("process {} does not exist (or has exited)", pid), ESRCH);
  GoImageCache cache;
  GoProcessReport report;
  auto image = TRY(cache.for_pid(pid, &report.exe));
  report.go_version = image->version();
  report.allgs_origin = image->allgs().origin;
  auto started = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < std::max<uint32_t>(scans, 1); ++i) {
    auto result = scan_process(pid, *image, i == 0);
    if (!result) {
      if (process_gone(result.error())) return fail(fmt::format("process {} has exited", pid), ESRCH);
      return std::unexpected(result.error().wrap(fmt::format("process {} ({})", pid, report.exe)));
    }
    report.allglen = result->first.allglen;
    report.summary = std::move(result->second);
    ++report.scans;
  }
  report.scan_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / report.scans;
  return report;
}

void goroutine_families(const std::vector<GoProcessSample>& samples,
                        const std::map<std::pair<std::string, std::string>, uint64_t>& created, size_t top_k,
                        std::vector<metrics::Family>& out) {
  // Processes that share a label ("other", or two of the same comm and pid
  // namespace) are summed.
  std::map<std::pair<std::string, std::string>, std::array<uint64_t, kGoroutineStateCount>> states;
  std::map<std::pair<std::string, std::string>, std::map<std::string, uint64_t>> creators;
  for (const GoProcessSample& s : samples) {
    // process="other" rows are one row, whatever their cgroups.
    auto key = std::pair(s.process_label == "other" ? std::string("other") : s.identity.cgroup, s.process_label);
    auto& row = states[key];
    for (size_t i = 0; i < kGoroutineStateCount; ++i) row[i] += s.summary.by_state[i];
    auto& sites = creators[key];
    for (const auto& [function, count] : s.summary.by_creator) sites[function] += count;
  }
  auto gauge = metrics::gauge("syncscope_goroutines",
                              "Live goroutines of a Go process by state (as runtime.NumGoroutine counts them: "
                              "the runtime's own goroutines excluded).");
  for (const auto& [key, row] : states) {
    for (size_t i = 0; i < kGoroutineStateCount; ++i) {
      gauge.add({{"cgroup", key.first},
                 {"process", key.second},
                 {"state", std::string(probes::go::to_string(static_cast<GoroutineState>(i)))}},
                static_cast<double>(row[i]));
    }
  }
  out.push_back(std::move(gauge));

  auto counter = metrics::counter("syncscope_goroutines_created_total",
                                  "Goroutines a Go process has created (its highest goroutine id; runs ahead by "
                                  "less than 16 x GOMAXPROCS ids reserved but not yet used).");
  for (const auto& [key, value] : created)
    counter.add({{"cgroup", key.first}, {"process", key.second}}, static_cast<double>(value));
  out.push_back(std::move(counter));

  auto by_creator = metrics::gauge("syncscope_goroutines_by_creator",
                                   "Live goroutines of a Go process by the function whose go statement created "
                                   "them: the top golang.top_k per process, the rest under function=\"other\".");
  for (const auto& [key, sites] : creators) {
    for (const auto& [function, count] : probes::go::top_creators(sites, top_k))
      by_creator.add({{"cgroup", key.first}, {"process", key.second}, {"function", function}},
                     static_cast<double>(count));
  }
  out.push_back(std::move(by_creator));
}

Result<std::unique_ptr<GoroutinesCollector>> GoroutinesCollector::start(const GoroutinesOptions& options,
                                                                        loader::ProbeReport* report,
                                                                        std::unique_ptr<ProcessSource> processes) {
  auto collector = std::unique_ptr<GoroutinesCollector>(new GoroutinesCollector());
  collector->options_ = options;
  collector->report_ = report;
  collector->processes_ = processes ? std::move(processes) : std::make_unique<ProcfsProcessSource>();
  collector->selectors_ = std::make_unique<TargetSelectors>(options.targets);
  if (report) {
    report->set("goroutines",
                {{"allgs_reader", "process_vm_readv", "runtime.allgs of Go processes", true,
                  fmt::format("every {} ms; nothing attached to the targets",
                              std::chrono::duration_cast<std::chrono::milliseconds>(options.scan_interval).count())}},
                "reads goroutine state from outside; no probes");
  }
  return collector;
}

std::string GoroutinesCollector::label_for(const ProcessIdentity& identity) {
  if (labelled_.contains(identity.pid)) return fmt::format("{}[{}]", identity.comm, identity.pid);
  if (labelled_.size() < options_.max_processes) {
    labelled_.insert(identity.pid);
    return fmt::format("{}[{}]", identity.comm, identity.pid);
  }
  return "other";
}

void GoroutinesCollector::refresh(std::chrono::steady_clock::time_point now) {
  if (now < next_scan_) return;
  next_scan_ = now + options_.scan_interval;
  scan_now();
}

void GoroutinesCollector::scan_now() {
  auto started = std::chrono::steady_clock::now();
  std::vector<GoProcessSample> samples;
  std::map<std::string, uint64_t> results;
  std::set<uint32_t> seen;
  for (uint32_t pid : processes_->all_pids()) {
    if (pid == static_cast<uint32_t>(::getpid())) continue;
    auto image = images_.for_pid(pid);
    if (!image) continue;  // not Go, a kernel thread, gone, or unreadable (GoImageCache logs that once per file)
    auto identity = processes_->identify(pid);
    if (!identity) continue;  // exited just now
    if (!selectors_->empty() && !selectors_->evaluate(*identity)) continue;
    Tracked& tracked = tracked_[pid];
    if (tracked.image != image->get()) {
      // First sight, or the pid now runs another executable (exec, or reuse).
      if (tracked.label == "other") retired_other_created_ += static_cast<uint64_t>(std::max<int64_t>(tracked.max_goid, 0));
      if (tracked.image) labelled_.erase(pid);
      tracked = Tracked{};
      tracked.image = image->get();
    }
    auto result = scan_process(pid, **image, !tracked.validated);
    if (!result) {
      if (process_gone(result.error()) || !processes_->alive(pid)) {
        ++results["exited"];
        continue;  // retired below with the other processes that are gone
      }
      ++results["failed"];
      // Once per process: a process whose memory cannot be read (another
      // user namespace, a wrong allgs guess) fails the same way every scan.
      if (!tracked.validated && tracked.label.empty())
        log::warn("goroutines: process {} ({}): {}", pid, identity->comm, result.error().message());
      tracked.label = "unreadable";
      continue;
    }
    ++results["ok"];
    tracked.validated = true;
    if (tracked.label.empty() || tracked.label == "unreadable") tracked.label = label_for(*identity);
    tracked.max_goid = std::max(tracked.max_goid, result->second.max_goid);
    seen.insert(pid);
    samples.push_back({std::move(*identity), tracked.label, std::move(result->second)});
  }
  // Processes that are gone: their labels end; "other" keeps what they created.
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    if (seen.contains(it->first) || processes_->alive(it->first)) {
      ++it;
      continue;
    }
    if (it->second.label == "other") retired_other_created_ += static_cast<uint64_t>(std::max<int64_t>(it->second.max_goid, 0));
    labelled_.erase(it->first);
    it = tracked_.erase(it);
  }
  std::map<std::pair<std::string, std::string>, uint64_t> created;
  for (const GoProcessSample& s : samples) {
    const bool other = s.process_label == "other";
    created[{other ? "other" : s.identity.cgroup, s.process_label}] +=
        static_cast<uint64_t>(std::max<int64_t>(tracked_[s.identity.pid].max_goid, 0));
  }
  if (retired_other_created_) created[{"other", "other"}] += retired_other_created_;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard lock(mu_);
  samples_ = std::move(samples);
  created_ = std::move(created);
  for (const auto& [result, count] : results) scans_[result] += count;
  scan_seconds_total_ += elapsed;
}

void GoroutinesCollector::collect(std::vector<metrics::Family>& out) const {
  std::lock_guard lock(mu_);
  goroutine_families(samples_, created_, options_.top_k, out);
  auto scans = metrics::counter("syncscope_goroutines_scans_total",
                                "Per-process goroutine scans by result: ok, exited (gone mid-read), failed.");
  for (const char* result : {"ok", "exited", "failed"}) {
    auto it = scans_.find(result);
    scans.add({{"result", result}}, it == scans_.end() ? 0.0 : static_cast<double>(it->second));
  }
  out.push_back(std::move(scans));
  out.push_back(metrics::counter("syncscope_goroutines_scan_seconds_total",
                                 "Wall time the agent spent listing Go processes and reading their goroutines.")
                    .add({}, scan_seconds_total_));
}

std::optional<uint64_t> GoroutinesCollector::live_goroutines(const config::TargetSelector& selector) const {
  config::TargetSelector resolved = TargetSelectors({selector}).selectors().front();
  std::lock_guard lock(mu_);
  std::optional<uint64_t> total;
  for (const GoProcessSample& s : samples_) {
    if (!matches(resolved, s.identity)) continue;
    total = total.value_or(0) + s.summary.live;
  }
  return total;
}

std::vector<GoProcessSample> GoroutinesCollector::samples() const {
  std::lock_guard lock(mu_);
  return samples_;
}

}  // namespace syncscope::collectors
