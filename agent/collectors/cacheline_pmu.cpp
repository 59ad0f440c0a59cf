#include "agent/collectors/cacheline_pmu.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "agent/core/format.h"

namespace syncscope::collectors {
namespace {

std::string read_trimmed(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::map<std::string, std::string> read_formats(const std::filesystem::path& pmu) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(pmu / "format", ec))
    out[entry.path().filename().string()] = read_trimmed(entry.path());
  return out;
}

std::optional<uint32_t> pmu_type(const std::filesystem::path& pmu) {
  std::string text = read_trimmed(pmu / "type");
  if (text.empty()) return std::nullopt;
  try {
    return static_cast<uint32_t>(std::stoul(text));
  } catch (...) {
    return std::nullopt;
  }
}

// Sets `value` into the bit ranges a format term names: "config:0-7",
// "config1:0-15", "config:0-7,32-35" (split fields), "config:21" (one bit).
Result<void> apply_format(perf_event_attr& attr, const std::string& term, std::string_view format, uint64_t value) {
  size_t colon = format.find(':');
  if (colon == std::string_view::npos) return fail(fmt::format("format of {} is \"{}\": no ':'", term, format));
  std::string_view field = format.substr(0, colon);
  uint64_t* target = field == "config"    ? reinterpret_cast<uint64_t*>(&attr.config)
                     : field == "config1" ? reinterpret_cast<uint64_t*>(&attr.config1)
                     : field == "config2" ? reinterpret_cast<uint64_t*>(&attr.config2)
                                          : nullptr;
  if (!target) return fail(fmt::format("format of {} names unknown field \"{}\"", term, field));
  std::string_view ranges = format.substr(colon + 1);
  while (!ranges.empty()) {
    size_t comma = ranges.find(',');
    std::string_view range = ranges.substr(0, comma);
    ranges = comma == std::string_view::npos ? std::string_view() : ranges.substr(comma + 1);
    size_t dash = range.find('-');
    unsigned lo = 0, hi = 0;
    try {
      lo = static_cast<unsigned>(std::stoul(std::string(range.substr(0, dash))));
      hi = dash == std::string_view::npos ? lo : static_cast<unsigned>(std::stoul(std::string(range.substr(dash + 1))));
    } catch (...) {
      return fail(fmt::format("format of {} has a bad bit range \"{}\"", term, range));
    }
    if (hi < lo || hi > 63) return fail(fmt::format("format of {} has a bad bit range \"{}\"", term, range));
    unsigned width = hi - lo + 1;
    uint64_t mask = width == 64 ? ~0ULL : ((1ULL << width) - 1);
    *target = (*target & ~(mask << lo)) | ((value & mask) << lo);
    value = width == 64 ? 0 : value >> width;
  }
  return {};
}

perf_event_attr sampling_base(uint32_t type, uint64_t period) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = type;
  attr.sample_period = period;
  attr.sample_type = PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC | PERF_SAMPLE_TID | PERF_SAMPLE_IP;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  return attr;
}

}  // namespace

Result<perf_event_attr> encode_pmu_event(std::string_view alias, const std::map<std::string, std::string>& formats,
                                         uint32_t type, const std::map<std::string, uint64_t>& overrides) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = type;
  std::map<std::string, uint64_t> terms;
  std::string_view rest = alias;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string name(item.substr(0, eq));
    uint64_t value = 1;  // a bare term ("any") means 1
    if (eq != std::string_view::npos) {
      try {
        value = std::stoull(std::string(item.substr(eq + 1)), nullptr, 0);
      } catch (...) {
        return fail(fmt::format("PMU event \"{}\": bad value in \"{}\"", alias, item));
      }
    }
    terms[name] = value;
  }
  for (const auto& [name, value] : overrides) terms[name] = value;
  for (const auto& [name, value] : terms) {
    auto format = formats.find(name);
    if (format == formats.end())
      return fail(fmt::format("PMU event \"{}\": the PMU has no format term \"{}\"", alias, name));
    TRY(apply_format(attr, name, format->second, value));
  }
  return attr;
}

MemorySamplingPlan choose_memory_sampling(const std::string& sysfs_root, const MemorySamplingOptions& options) {
  namespace fs = std::filesystem;
  MemorySamplingPlan plan;
  fs::path root(sysfs_root);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    plan.reason = fmt::format("{} does not exist", sysfs_root);
    return plan;
  }
  // Intel: the core PMU is "cpu", or "cpu_core" on hybrid parts (the atom
  // cores have their own PMU; sampling the big cores is enough to find lines).
  for (const char* name : {"cpu", "cpu_core"}) {
    fs::path pmu = root / name;
    std::string loads = read_trimmed(pmu / "events" / "mem-loads");
    if (loads.empty()) continue;
    auto type = pmu_type(pmu);
    if (!type) continue;
    std::map<std::string, std::string> formats = read_formats(pmu);
    std::map<std::string, uint64_t> overrides;
    if (formats.contains("ldlat")) overrides["ldlat"] = options.load_latency_cycles;
    auto load_attr = encode_pmu_event(loads, formats, *type, overrides);
    if (!load_attr) {
      plan.reason = load_attr.error().message();
      continue;
    }
    perf_event_attr attr = sampling_base(*type, options.period);
    attr.config = load_attr->config;
    attr.config1 = load_attr->config1;
    attr.config2 = load_attr->config2;
    attr.precise_ip = 2;  // PEBS: the sampled address belongs to the sampled instruction
    plan.events.push_back({fmt::format("{}/mem-loads,ldlat={}/P", name, options.load_latency_cycles), attr});
    std::string stores = read_trimmed(pmu / "events" / "mem-stores");
    if (!stores.empty()) {
      if (auto store_attr = encode_pmu_event(stores, formats, *type)) {
        perf_event_attr s = sampling_base(*type, options.period);
        s.config = store_attr->config;
        s.config1 = store_attr->config1;
        s.config2 = store_attr->config2;
        s.precise_ip = 2;
        plan.events.push_back({fmt::format("{}/mem-stores/P", name), s});
      }
    }
    plan.reason =
        fmt::format("Intel PEBS memory sampling: {}", plan.events.size() == 2 ? "mem-loads + mem-stores" : "mem-loads");
    return plan;
  }
  // AMD: instruction-based sampling of micro-ops.
  if (auto type = pmu_type(root / "ibs_op")) {
    // IBS periods count in units of 16 ops and must be at least 0x10.
    perf_event_attr attr = sampling_base(*type, std::max<uint64_t>(options.period & ~0xfULL, 0x10));
    plan.events.push_back({"ibs_op", attr});
    plan.reason = "AMD IBS op sampling";
    return plan;
  }
  if (plan.reason.empty())
    plan.reason = fs::exists(root / "cpu", ec) ? "the cpu PMU has no mem-loads event (a VM without PEBS?)"
                                               : "no hardware PMU with memory sampling (no cpu/mem-loads, no ibs_op)";
  return plan;
}

PerfEventChoice page_fault_sampling(uint64_t period) {
  perf_event_attr attr = sampling_base(PERF_TYPE_SOFTWARE, period);
  attr.config = PERF_COUNT_SW_PAGE_FAULTS;
  return {"page-faults", attr};
}

PerfEventChoice cache_references_event(uint64_t period) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_HARDWARE;
  attr.config = PERF_COUNT_HW_CACHE_REFERENCES;
  attr.sample_period = period;
  return {"cache-references", attr};
}

PerfEventChoice cache_misses_event(uint64_t period) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_HARDWARE;
  attr.config = PERF_COUNT_HW_CACHE_MISSES;
  attr.sample_period = period;
  return {"cache-misses", attr};
}

}  // namespace syncscope::collectors
