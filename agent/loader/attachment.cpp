#include "agent/loader/attachment.h"

#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>

namespace syncscope::loader {

Result<Link> attach_program(bpf_program* program) {
  Link link(bpf_program__attach(program));
  if (!link) return fail_errno(fmt::format("attach {} ({})", bpf_program__name(program), bpf_program__section_name(program)));
  return link;
}

std::vector<int> online_cpus() {
  // "0-3,5,7-8": the kernel's cpulist format.
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string list;
  std::getline(in, list);
  std::vector<int> cpus;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string range = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = range.find('-');
    int first = std::stoi(range.substr(0, dash));
    int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (cpus.empty()) {
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < n; ++cpu) cpus.push_back(cpu);
  }
  return cpus;
}

Result<std::unique_ptr<PerCpuPerfEvents>> PerCpuPerfEvents::open(bpf_program* program, const perf_event_attr& attr,
                                                                  std::string what) {
  auto events = std::unique_ptr<PerCpuPerfEvents>(new PerCpuPerfEvents());
  for (int cpu : online_cpus()) {
    perf_event_attr per_cpu = attr;
    per_cpu.size = sizeof per_cpu;
    int fd = static_cast<int>(::syscall(SYS_perf_event_open, &per_cpu, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) return fail_errno(fmt::format("perf_event_open {} on CPU {}", what, cpu));
    Link link(bpf_program__attach_perf_event(program, fd));
    if (!link) {
      int saved = errno;
      ::close(fd);
      return fail_errno(fmt::format("attach {} to {} on CPU {}", bpf_program__name(program), what, cpu), saved);
    }
    events->links_.push_back(std::move(link));
  }
  return events;
}

}  // namespace syncscope::loader
