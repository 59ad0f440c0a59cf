#include "agent/collectors/locks_report.h"

#include <array>
#include <nlohmann/json.hpp>

#include "agent/core/format.h"

namespace syncscope::collectors {
namespace {

std::string_view basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool is_lock_machinery(const probes::Frame& f) {
  std::string_view module = basename(f.module);
  if (module.starts_with("libc.so") || module.starts_with("libc-") || module.starts_with("libpthread") ||
      module.starts_with("libstdc++"))
    return true;
  // Wrappers that survive inlining when a program is built without
  // optimisation (they are weak functions in the program itself).
  constexpr std::array<std::string_view, 17> kWrappers{
      "pthread_",          "__pthread_",     "__lll_",           "__gthread",
      "std::mutex::",      "std::timed_mutex::", "std::recursive_mutex::", "std::shared_mutex::",
      "std::__shared_mutex", "std::unique_lock", "std::shared_lock", "std::lock_guard",
      // Go: the slow paths the Go lock probes sit on and the runtime under
      // them (sync.(*Mutex).Lock itself is inlined into its caller).
      "sync.(*Mutex).", "sync.(*RWMutex).", "internal/sync.", "sync.runtime_", "runtime.",
  };
  for (std::string_view prefix : kWrappers)
    if (f.symbol.starts_with(prefix)) return true;
  return false;
}

std::string short_frame(const probes::Frame& f) {
  if (f.module.empty()) return fmt::format("{:#x}", f.address);
  if (f.symbol.empty()) return fmt::format("{}+{:#x}", basename(f.module), f.offset);
  return fmt::format("{}+{:#x}", f.symbol, f.offset);
}

nlohmann::json stack_json(const StackReport& s, bool waiter) {
  nlohmann::json frames = nlohmann::json::array();
  for (const probes::Frame& f : s.frames) {
    frames.push_back({{"address", fmt::format("{:#x}", f.address)},
                      {"symbol", f.symbol},
                      {"offset", f.offset},
                      {"module", f.module},
                      {"text", f.to_string()}});
  }
  nlohmann::json out = {{"count", s.count}, {"tids", s.tids}, {"frames", std::move(frames)},
                        {"truncated", s.truncated}, {"missing", s.missing}};
  if (waiter) out["wait_total_ns"] = s.wait_ns;
  return out;
}

void render_stack(std::string& out, const StackReport& s, bool waiter) {
  std::string tids;
  for (uint32_t tid : s.tids) tids += fmt::format(" {}", tid);
  if (waiter)
    out += fmt::format("\t\twaiter stack: {} waits, {} total, threads{}\n", s.count, format_duration(s.wait_ns), tids);
  else
    out += fmt::format("\t\tholder stack: {} wakes, threads{}\n", s.count, tids);
  if (s.missing) {
    out += "\t\t\t[no stack recorded]\n";
    return;
  }
  for (const probes::Frame& f : s.frames) out += fmt::format("\t\t\t{:#18x}  {}\n", f.address, f.to_string());
  if (s.truncated) out += "\t\t\t[stack truncated: no frame pointers]\n";
}

std::string table_symbol(std::string_view data_symbol) {
  if (std::string global = global_data_symbol(data_symbol); !global.empty()) return global;
  return data_symbol.empty() ? std::string("-") : std::string(data_symbol);
}

}  // namespace

std::string format_duration(uint64_t ns) {
  if (ns < 1'000) return fmt::format("{} ns", ns);
  if (ns < 1'000'000) return fmt::format("{:.2f} us", static_cast<double>(ns) / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.2f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.2f} s", static_cast<double>(ns) / 1e9);
}

std::string top_user_frame(std::span<const probes::Frame> frames) {
  for (const probes::Frame& f : frames)
    if (!is_lock_machinery(f)) return short_frame(f);
  return {};
}

std::string caller_of(std::span<const probes::Frame> frames, std::string_view glibc_caller) {
  if (std::string user = top_user_frame(frames); !user.empty()) return user;
  if (!glibc_caller.empty()) return fmt::format("{} [stack truncated]", glibc_caller);
  return frames.empty() ? std::string() : short_frame(frames.front());
}

std::string global_data_symbol(std::string_view data_symbol) {
  if (data_symbol.empty() || data_symbol == "heap" || data_symbol == "stack" || data_symbol.starts_with("["))
    return {};
  std::string out(data_symbol);
  if (out.ends_with("+0x0")) out.resize(out.size() - 4);
  return out;
}

std::string render_lock_table(std::span<const LockReport> locks, bool stacks) {
  std::string out = fmt::format("{:>10} {:>12} {:>12} {:>12}  {:<14}  {:<22}  {:<18}  {:<24}  {}\n", "contended",
                                "total wait", "max wait", "avg wait", "kind", "process", "lock", "symbol", "caller");
  for (const LockReport& l : locks) {
    uint64_t avg = l.waits.count ? l.waits.total_ns / l.waits.count : 0;
    out += fmt::format("{:>10} {:>12} {:>12} {:>12}  {:<14}  {:<22}  {:<18}  {:<24}  {}\n", l.waits.count,
                       format_duration(l.waits.total_ns), format_duration(l.waits.max_ns), format_duration(avg),
                       to_string(l.kind), fmt::format("{}[{}]", l.comm, l.pid), fmt::format("{:#x}", l.lock),
                       table_symbol(l.data_symbol), l.caller.empty() ? "-" : l.caller);
    if (!stacks) continue;
    for (const StackReport& s : l.waiter_stacks) render_stack(out, s, true);
    for (const StackReport& s : l.holder_stacks) render_stack(out, s, false);
    out += "\n";
  }
  return out;
}

nlohmann::json lock_report_json(std::span<const LockReport> locks, const TraceInfo& info) {
  nlohmann::json list = nlohmann::json::array();
  for (const LockReport& l : locks) {
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [kind, stats] : l.kinds)
      kinds[std::string(to_string(kind))] = {
          {"contentions", stats.count}, {"wait_total_ns", stats.total_ns}, {"wait_max_ns", stats.max_ns}};
    nlohmann::json words = nlohmann::json::array();
    for (uint64_t w : l.futex_words) words.push_back(fmt::format("{:#x}", w));
    nlohmann::json waiters = nlohmann::json::array();
    for (const StackReport& s : l.waiter_stacks) waiters.push_back(stack_json(s, true));
    nlohmann::json holders = nlohmann::json::array();
    for (const StackReport& s : l.holder_stacks) holders.push_back(stack_json(s, false));
    list.push_back({
        {"lock", fmt::format("{:#x}", l.lock)},
        {"kind", to_string(l.kind)},
        {"kinds", std::move(kinds)},
        {"pid", l.pid},
        {"comm", l.comm},
        {"symbol", l.symbol},
        {"data_symbol", l.data_symbol},
        {"caller", l.caller},
        {"contentions", l.waits.count},
        {"wait_total_ns", l.waits.total_ns},
        {"wait_max_ns", l.waits.max_ns},
        {"wait_avg_ns", l.waits.count ? l.waits.total_ns / l.waits.count : 0},
        {"futex_words", std::move(words)},
        {"wakes", l.wakes},
        {"waiter_stacks", std::move(waiters)},
        {"holder_stacks", std::move(holders)},
    });
  }
  nlohmann::json out = {{"duration_s", info.duration_s},
                        {"pid", info.pid ? nlohmann::json(*info.pid) : nlohmann::json(nullptr)},
                        {"target_exited", info.target_exited},
                        {"events_lost", info.events_lost},
                        {"waits_not_slept", info.waits_not_slept},
                        {"sources", info.sources},
                        {"locks", std::move(list)}};
  return out;
}

}  // namespace syncscope::collectors
