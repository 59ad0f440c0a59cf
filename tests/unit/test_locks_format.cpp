// The trace CLI's renderings, golden-tested: the table (like perf lock
// contention), the JSON object, durations, caller and symbol choice.
#include "agent/collectors/locks_report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace syncscope::collectors {
namespace {

probes::Frame frame(uint64_t address, std::string symbol, uint64_t offset, std::string module) {
  probes::Frame f;
  f.address = address;
  f.symbol = std::move(symbol);
  f.offset = offset;
  f.module = std::move(module);
  return f;
}

const std::string kLibc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
const std::string kApp = "/opt/app/bin/server";

LockReport sample() {
  LockReport r;
  r.pid = 4242;
  r.comm = "server";
  r.lock = 0x55d0c0a04040;
  r.kind = LockKind::pthread_mutex;
  WaitStats mutex{3, 4'500'000, 2'000'000};
  WaitStats cond{1, 500'000, 500'000};
  r.kinds = {{LockKind::pthread_mutex, mutex}, {LockKind::pthread_cond, cond}};
  r.waits = WaitStats{4, 5'000'000, 2'000'000};
  r.data_symbol = "g_table_lock+0x0";
  r.symbol = "g_table_lock";
  r.caller = "handle_request+0x55";
  r.futex_words = {0x55d0c0a04040};
  r.wakes = 4;
  StackReport waiter;
  waiter.count = 4;
  waiter.wait_ns = 5'000'000;
  waiter.tids = {4243, 4244};
  waiter.frames = {frame(0x7f000008612b, "__lll_lock_wait", 0x2b, kLibc),
                   frame(0x55d0c0a01155, "handle_request", 0x55, kApp),
                   frame(0x7f00000891f5, "start_thread", 0x305, kLibc)};
  StackReport holder;
  holder.count = 4;
  holder.tids = {4245};
  holder.frames = {frame(0x7f0000086193, "__lll_lock_wake", 0x13, kLibc)};
  holder.truncated = true;
  r.waiter_stacks = {waiter};
  r.holder_stacks = {holder};
  return r;
}

TEST(LocksFormat, Durations) {
  EXPECT_EQ(format_duration(0), "0 ns");
  EXPECT_EQ(format_duration(999), "999 ns");
  EXPECT_EQ(format_duration(1'000), "1.00 us");
  EXPECT_EQ(format_duration(12'345), "12.35 us");
  EXPECT_EQ(format_duration(1'234'567), "1.23 ms");
  EXPECT_EQ(format_duration(2'500'000'000), "2.50 s");
}

TEST(LocksFormat, TopUserFrameSkipsLockMachinery) {
  std::vector<probes::Frame> frames{
      frame(1, "__lll_lock_wait", 0x2b, kLibc),
      frame(2, "std::mutex::lock()", 0x10, kApp),  // a wrapper left un-inlined at -O0
      frame(3, "std::__shared_mutex_pthread::lock()", 0x8, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
      frame(4, "Cache::get(int)", 0x1f, kApp),
      frame(5, "main", 0x20, kApp),
  };
  EXPECT_EQ(top_user_frame(frames), "Cache::get(int)+0x1f");
  // A frame without a symbol is named by its module.
  std::vector<probes::Frame> bare{frame(1, "__lll_lock_wait", 0x2b, kLibc), frame(2, "", 0x1234, kApp)};
  EXPECT_EQ(top_user_frame(bare), "server+0x1234");
  // Only glibc frames: the stack was cut short inside glibc.
  std::vector<probes::Frame> cut{frame(1, "__futex_abstimed_wait_common", 0x46, kLibc)};
  EXPECT_EQ(top_user_frame(cut), "");
  EXPECT_EQ(caller_of(cut, "pthread_rwlock_wrlock"), "pthread_rwlock_wrlock [stack truncated]");
  EXPECT_EQ(caller_of(cut, ""), "__futex_abstimed_wait_common+0x46");
  EXPECT_EQ(caller_of(frames, "pthread_mutex_lock"), "Cache::get(int)+0x1f");
  EXPECT_EQ(caller_of({}, ""), "");
}

TEST(LocksFormat, GlobalDataSymbols) {
  EXPECT_EQ(global_data_symbol("g_lock+0x0"), "g_lock");
  EXPECT_EQ(global_data_symbol("g_locks+0x40"), "g_locks+0x40");
  EXPECT_EQ(global_data_symbol("heap"), "");
  EXPECT_EQ(global_data_symbol("stack"), "");
  EXPECT_EQ(global_data_symbol("[anon]"), "");
  EXPECT_EQ(global_data_symbol(""), "");
}

TEST(LocksFormat, TableGolden) {
  std::vector<LockReport> locks{sample()};
  const std::string header =
      " contended   total wait     max wait     avg wait  kind            process                 lock      "
      "          symbol                    caller\n";
  const std::string row =
      "         4      5.00 ms      2.00 ms      1.25 ms  pthread_mutex   server[4242]            0x55d0c0a04040 "
      "     g_table_lock              handle_request+0x55\n";
  EXPECT_EQ(render_lock_table(locks, false), header + row);
  const std::string stacks =
      "\t\twaiter stack: 4 waits, 5.00 ms total, threads 4243 4244\n"
      "\t\t\t    0x7f000008612b  __lll_lock_wait+0x2b (libc.so.6)\n"
      "\t\t\t    0x55d0c0a01155  handle_request+0x55 (server)\n"
      "\t\t\t    0x7f00000891f5  start_thread+0x305 (libc.so.6)\n"
      "\t\tholder stack: 4 wakes, threads 4245\n"
      "\t\t\t    0x7f0000086193  __lll_lock_wake+0x13 (libc.so.6)\n"
      "\t\t\t[stack truncated: no frame pointers]\n"
      "\n";
  EXPECT_EQ(render_lock_table(locks, true), header + row + stacks);

  LockReport heap = sample();
  heap.data_symbol = "heap";
  heap.waiter_stacks = {StackReport{1, 10, {1}, {}, false, true}};
  heap.holder_stacks.clear();
  std::string text = render_lock_table(std::vector<LockReport>{heap}, true);
  EXPECT_NE(text.find("  heap  "), std::string::npos) << text;
  EXPECT_NE(text.find("\t\t\t[no stack recorded]\n"), std::string::npos) << text;
}

TEST(LocksFormat, JsonGolden) {
  TraceInfo info;
  info.duration_s = 2.5;
  info.pid = 4242;
  info.events_lost = 0;
  info.waits_not_slept = 7;
  info.sources = "futex tracepoints (process 4242)";
  std::vector<LockReport> locks{sample()};
  nlohmann::json got = lock_report_json(locks, info);
  nlohmann::json want = nlohmann::json::parse(R"json({
    "duration_s": 2.5, "pid": 4242, "target_exited": false, "events_lost": 0, "waits_not_slept": 7,
    "sources": "futex tracepoints (process 4242)",
    "locks": [{
      "lock": "0x55d0c0a04040", "kind": "pthread_mutex",
      "kinds": {"pthread_mutex": {"contentions": 3, "wait_total_ns": 4500000, "wait_max_ns": 2000000},
                "pthread_cond": {"contentions": 1, "wait_total_ns": 500000, "wait_max_ns": 500000}},
      "pid": 4242, "comm": "server", "symbol": "g_table_lock", "data_symbol": "g_table_lock+0x0",
      "caller": "handle_request+0x55",
      "contentions": 4, "wait_total_ns": 5000000, "wait_max_ns": 2000000, "wait_avg_ns": 1250000,
      "futex_words": ["0x55d0c0a04040"], "wakes": 4,
      "waiter_stacks": [{"count": 4, "wait_total_ns": 5000000, "tids": [4243, 4244], "truncated": false,
                         "missing": false, "frames": [
        {"address": "0x7f000008612b", "symbol": "__lll_lock_wait", "offset": 43,
         "module": "/usr/lib/x86_64-linux-gnu/libc.so.6", "text": "__lll_lock_wait+0x2b (libc.so.6)"},
        {"address": "0x55d0c0a01155", "symbol": "handle_request", "offset": 85,
         "module": "/opt/app/bin/server", "text": "handle_request+0x55 (server)"},
        {"address": "0x7f00000891f5", "symbol": "start_thread", "offset": 773,
         "module": "/usr/lib/x86_64-linux-gnu/libc.so.6", "text": "start_thread+0x305 (libc.so.6)"}]}],
      "holder_stacks": [{"count": 4, "tids": [4245], "truncated": true, "missing": false, "frames": [
        {"address": "0x7f0000086193", "symbol": "__lll_lock_wake", "offset": 19,
         "module": "/usr/lib/x86_64-linux-gnu/libc.so.6", "text": "__lll_lock_wake+0x13 (libc.so.6)"}]}]
    }]
  })json");
  EXPECT_EQ(got, want) << got.dump(2);

  info.pid.reset();
  EXPECT_TRUE(lock_report_json({}, info)["pid"].is_null());
  EXPECT_TRUE(lock_report_json({}, info)["locks"].empty());
}

}  // namespace
}  // namespace syncscope::collectors
