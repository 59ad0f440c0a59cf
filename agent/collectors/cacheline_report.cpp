#include "agent/collectors/cacheline_report.h"

#include <nlohmann/json.hpp>

#include "agent/core/format.h"

namespace syncscope::collectors {
namespace {

std::string join_threads(std::span<const uint32_t> tids, size_t max = 8) {
  std::string out;
  for (size_t i = 0; i < tids.size() && i < max; ++i) out += fmt::format("{}{}", i ? "," : "", tids[i]);
  if (tids.size() > max) out += fmt::format(",…(+{})", tids.size() - max);
  return out.empty() ? "-" : out;
}

nlohmann::json offsets_json(std::span<const OffsetReport> offsets) {
  nlohmann::json out = nlohmann::json::array();
  for (const OffsetReport& o : offsets)
    out.push_back({{"offset", o.offset},
                   {"len", o.len},
                   {"threads", o.threads.size()},
                   {"tids", o.threads},
                   {"writes", o.writes},
                   {"accesses", o.accesses},
                   {"symbol", o.symbol},
                   {"field", o.field}});
  return out;
}

}  // namespace

std::string hex_address(uint64_t addr) { return fmt::format("{:#x}", addr); }

std::string line_symbol(std::span<const OffsetReport> offsets) {
  std::vector<std::string> names;
  for (const OffsetReport& o : offsets) {
    std::string name = o.symbol;
    if (size_t plus = name.rfind("+0x"); plus != std::string::npos && plus > 0) name.resize(plus);
    if (name.empty()) continue;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "?" : out;
}

nlohmann::json falseshare_json(std::span<const LineReport> lines, std::span<const SampledLineReport> sampled,
                               std::span<const AtomicReport> atomics, const FalseshareInfo& info) {
  nlohmann::json out;
  out["pid"] = info.pid;
  out["duration_s"] = info.duration_s;
  out["path"] = info.path;
  out["pmu_available"] = info.pmu_available;
  out["window_ms"] = info.window_ms;
  out["duty_cycle"] = info.duty_cycle;
  out["watched_fraction"] = info.watched_fraction;
  out["windows"] = info.windows;
  out["threads_skipped_busy"] = info.threads_busy;
  out["events_lost"] = info.events_lost;
  out["target_exited"] = info.target_exited;
  nlohmann::json rows = nlohmann::json::array();
  for (const LineReport& l : lines) {
    nlohmann::json sites = nlohmann::json::array();
    for (const SiteReport& s : l.sites)
      sites.push_back({{"ip", hex_address(s.ip)}, {"hits", s.hits}, {"where", s.where}});
    rows.push_back({{"pid", l.pid},
                    {"comm", l.comm},
                    {"cgroup", l.cgroup},
                    {"line", hex_address(l.line)},
                    {"symbol", l.symbol},
                    {"origin", l.origin},
                    {"verdict", std::string(to_string(l.verdict))},
                    {"fix", std::string(fix_for(l.verdict))},
                    {"accesses_per_second", l.accesses_per_second},
                    {"hits", l.hits},
                    {"watched_ms", l.watched_ms},
                    {"threads", l.threads},
                    {"cpus", l.cpus},
                    {"offsets", offsets_json(l.offsets)},
                    {"sites", sites}});
  }
  out["lines"] = rows;
  nlohmann::json samples = nlohmann::json::array();
  for (const SampledLineReport& s : sampled)
    samples.push_back({{"pid", s.pid},
                       {"line", hex_address(s.line)},
                       {"symbol", s.symbol},
                       {"verdict", std::string(to_string(s.verdict))},
                       {"samples", s.samples},
                       {"loads", s.loads},
                       {"stores", s.stores},
                       {"hitm", s.hitm},
                       {"threads", s.threads},
                       {"cpus", s.cpus},
                       {"offsets", offsets_json(s.offsets)}});
  out["sampled_lines"] = samples;
  nlohmann::json atomic_rows = nlohmann::json::array();
  for (const AtomicReport& a : atomics)
    atomic_rows.push_back({{"pid", a.pid},
                           {"address", hex_address(a.address)},
                           {"symbol", a.symbol},
                           {"functions", a.functions},
                           {"calls", a.calls},
                           {"calls_per_second", a.calls_per_second},
                           {"threads", a.threads}});
  out["atomics"] = atomic_rows;
  return out;
}

std::string render_falseshare_table(std::span<const LineReport> lines, std::span<const SampledLineReport> sampled,
                                    std::span<const AtomicReport> atomics, const FalseshareInfo& info) {
  std::string out;
  out += fmt::format("path: {}; {} windows of {:.0f} ms, watched {:.2f}% of the time (duty cycle {:.2f}%)\n", info.path,
                     info.windows, info.window_ms, info.watched_fraction * 100, info.duty_cycle * 100);
  if (info.threads_busy)
    out +=
        fmt::format("{} thread-windows skipped: their debug registers were taken (a debugger?)\n", info.threads_busy);
  if (info.events_lost)
    out += fmt::format("warning: {} watchpoint/sample events lost (ring buffer full)\n", info.events_lost);
  if (lines.empty()) out += "(no shared cache lines found)\n";
  for (const LineReport& l : lines) {
    out +=
        fmt::format("\n{} {}  {}  {:.0f} accesses/s while watched  threads {}  process {}[{}]\n", hex_address(l.line),
                    l.symbol, to_string(l.verdict), l.accesses_per_second, join_threads(l.threads), l.comm, l.pid);
    out += fmt::format("  {:>6}  {:>3}  {:>8}  {:>10}  {:>10}  {:<24}  {}\n", "offset", "len", "threads", "writes",
                       "accesses", "tids", "symbol");
    for (const OffsetReport& o : l.offsets)
      out += fmt::format("  {:>6}  {:>3}  {:>8}  {:>10}  {:>10}  {:<24}  {}\n", fmt::format("+{:#04x}", o.offset),
                         o.len, o.threads.size(), o.writes, o.accesses, join_threads(o.threads),
                         o.field.empty() ? o.symbol : o.field);
    for (const SiteReport& s : l.sites) out += fmt::format("  site {} ({} hits)\n", s.where, s.hits);
    if (std::string_view fix = fix_for(l.verdict); !fix.empty()) out += fmt::format("  fix: {}\n", fix);
  }
  if (!sampled.empty()) {
    out += "\nsampled memory accesses (per line):\n";
    out += fmt::format("  {:<18}  {:>8}  {:>7}  {:>7}  {:>6}  {:>7}  {:<14}  {}\n", "line", "samples", "loads",
                       "stores", "hitm", "threads", "verdict", "symbol");
    for (const SampledLineReport& s : sampled)
      out += fmt::format("  {:<18}  {:>8}  {:>7}  {:>7}  {:>6}  {:>7}  {:<14}  {}\n", hex_address(s.line), s.samples,
                         s.loads, s.stores, s.hitm, s.threads.size(), to_string(s.verdict), s.symbol);
  }
  if (!atomics.empty()) {
    out += "\natomic calls (while probed):\n";
    for (const AtomicReport& a : atomics)
      out += fmt::format("  {} {}  {} calls ({:.0f}/s)  threads {}  via {}\n", hex_address(a.address), a.symbol,
                         a.calls, a.calls_per_second, join_threads(a.threads), a.functions);
  }
  return out;
}

}  // namespace syncscope::collectors
