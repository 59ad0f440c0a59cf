#include "probes/go/offsets.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>

#include <array>
#include <cstring>
#include <initializer_list>
#include <map>

#include "agent/core/fd.h"
#include "agent/core/format.h"

namespace syncscope::probes::go {
namespace {

// One row per runtime layout, 64-bit (amd64 and arm64 share it). Offsets are
// computed field by field from runtime2.go of the first release of the range,
// with Go's layout rules (each field aligned to min(its size, 8); a struct's
// size rounded to its alignment):
//
//   g:     stack{lo,hi} 0/8, stackguard0 16, stackguard1 24, _panic 32,
//          _defer 40, m 48, sched gobuf 56, then syscallsp, syscallpc,
//          [syscallbp,] stktopsp, param, atomicstatus u32, stackLock u32,
//          goid, schedlink, waitsince, waitreason u8, a run of bools/u8s,
//          ..., gopc, ancestors, startpc
//   gobuf: sp 0, pc 8, g 16, ctxt 24, [ret 32,] lr, bp
//   m:     g0 0, morebuf gobuf 8, divmod u32 (+pad), procid, gsignal,
//          goSigStack (40 bytes), sigmask (8 on linux), tls [6]uintptr,
//          mstartfn, curg
struct LayoutRow {
  int first_minor;  // Go 1.<first_minor> … up to the next row
  RuntimeOffsets offsets;
  const char* why;
};

RuntimeOffsets row(uint32_t sched_bp, uint32_t atomicstatus, uint32_t goid, uint32_t waitreason, uint32_t gopc,
                   uint32_t startpc, uint32_t m_curg) {
  RuntimeOffsets o;
  o.g_stack_lo = 0;
  o.g_stack_hi = 8;
  o.g_m = 48;
  o.g_sched = 56;
  o.g_sched_sp = 56;
  o.g_sched_pc = 64;
  o.g_sched_bp = sched_bp;
  o.g_atomicstatus = atomicstatus;
  o.g_goid = goid;
  o.g_waitreason = waitreason;
  o.g_gopc = gopc;
  o.g_startpc = startpc;
  o.m_curg = m_curg;
  return o;
}

const std::array<LayoutRow, 6> kLayouts = {{
    // go1.16 runtime2.go: gobuf has 7 words (sp pc g ctxt ret lr bp → bp at
    // +48); syscallsp 112, syscallpc 120, stktopsp 128, param 136,
    // atomicstatus 144, goid 152, schedlink 160, waitsince 168, waitreason
    // 176; bools to 187 (…, parkingOnChan, raceignore, sysblocktraced),
    // sysexitticks 192, traceseq 200, tracelastp 208, lockedm 216, sig 224,
    // writebuf 232, sigcode0/1 256/264, sigpc 272, gopc 280, ancestors 288,
    // startpc 296. m: morebuf 8–64, divmod 64, procid 72, gsignal 80,
    // goSigStack 88, sigmask 128, tls 136, mstartfn 184, curg 192.
    {16, row(104, 144, 152, 176, 280, 296, 192), "go1.16 layout"},
    // go1.17 added tracking bool, trackingSeq u8, runnableStamp int64 and
    // runnableTime int64 after sysblocktraced: runnableStamp 192,
    // runnableTime 200, sysexitticks 208, …, gopc 296, startpc 312. Same in
    // 1.18, 1.19 (equal to the DWARF of a go1.19.8 binary, test_go_offsets)
    // and 1.20 (atomicstatus became atomic.Uint32 and parkingOnChan
    // atomic.Bool: same size and alignment).
    {17, row(104, 144, 152, 176, 296, 312, 192), "go1.17-1.20 layout (tracking fields)"},
    // go1.21 moved sysexitticks/traceseq/tracelastp (24 bytes) into the
    // trace gTraceState at the end of g and added parentGoid (8) before gopc:
    // gopc 280, startpc 296. The new bools (inMarkAssist, nocgocallback)
    // fit in the padding before trackingStamp 192.
    {21, row(104, 144, 152, 176, 280, 296, 192), "go1.21-1.22 layout (trace state moved out, parentGoid)"},
    // go1.23 added syscallbp after syscallpc: every later field +8 —
    // atomicstatus 152, goid 160, waitreason 184, gopc 288, startpc 304.
    // (coroexit joined the bools; fipsIndicator/syncSafePoint in 1.24 sit in
    // the padding after lockedm.) gobuf unchanged.
    {23, row(104, 152, 160, 184, 288, 304, 192), "go1.23-1.24 layout (g.syscallbp)"},
    // go1.25 removed gobuf.ret: gobuf is 6 words (bp at +40), so g.sched
    // shrinks by 8 and g's later fields move back — atomicstatus 144,
    // goid 152, waitreason 176, gopc 280, startpc 296; m.morebuf shrinks too:
    // m.curg 184.
    {25, row(96, 144, 152, 176, 280, 296, 184), "go1.25 layout (gobuf.ret removed)"},
    // go1.26 added fipsOnlyBypass and ditWanted bools after fipsIndicator and
    // a `secret int32` after sig: lockedm 208, five one-byte fields 216–220,
    // sig 224, secret 228, writebuf 232 — gopc 288, startpc 304; the fields
    // before them are as in 1.25.
    {26, row(96, 144, 152, 176, 288, 304, 184), "go1.26 layout (runtime/secret, DIT fields)"},
}};
// Beyond the struct definitions, each row except 1.18, 1.21 and 1.24 was
// checked against the machine code of a release binary (go1.16, 1.17.1,
// 1.19.8, 1.20.7, 1.22.4, 1.23.5, 1.25.4, 1.26.5): the displacements of the
// stores to goid/gopc/startpc in runtime.newproc1, to waitreason in
// runtime.gopark, of the atomicstatus CAS in runtime.casgstatus, and of
// g.m / m.curg / g.sched.sp / g.sched.bp in runtime.systemstack.
constexpr int kLastTabledMinor = 26;

}  // namespace

Result<RuntimeOffsets> offsets_for_version(const GoVersion& version) {
  if (version.major != 1 || version.minor < kLayouts.front().first_minor || version.minor > kLastTabledMinor) {
    return fail(fmt::format("no runtime offset table for Go {}.{} (covered: 1.16-1.{}); build with DWARF to read it",
                            version.major, version.minor, kLastTabledMinor));
  }
  const LayoutRow* chosen = &kLayouts.front();
  for (const auto& layout : kLayouts) {
    if (version.minor >= layout.first_minor) chosen = &layout;
  }
  RuntimeOffsets offsets = chosen->offsets;
  offsets.source = OffsetSource::version_table;
  offsets.origin = fmt::format("table: {}", chosen->why);
  return offsets;
}

namespace {

struct DwarfCollector {
  // struct name → member name → offset
  std::map<std::string, std::map<std::string, uint64_t>> structs;
  std::map<std::string, uint64_t> variables;
};

const std::array<std::string_view, 4> kStructs = {"runtime.g", "runtime.m", "runtime.gobuf", "runtime.stack"};
const std::array<std::string_view, 3> kVariables = {"runtime.allgs", "runtime.allglen", "runtime.sched"};

template <size_t N>
bool wanted(const std::array<std::string_view, N>& names, const char* name) {
  if (!name) return false;
  for (auto n : names) {
    if (n == name) return true;
  }
  return false;
}

void collect_members(Dwarf_Die* type_die, std::map<std::string, uint64_t>* members) {
  Dwarf_Die child;
  if (dwarf_child(type_die, &child) != 0) return;
  do {
    if (dwarf_tag(&child) != DW_TAG_member) continue;
    const char* name = dwarf_diename(&child);
    Dwarf_Attribute attr;
    Dwarf_Word offset = 0;
    if (!name || !dwarf_attr(&child, DW_AT_data_member_location, &attr) || dwarf_formudata(&attr, &offset) != 0) continue;
    (*members)[name] = offset;
  } while (dwarf_siblingof(&child, &child) == 0);
}

void collect_variable(Dwarf_Die* die, const char* name, DwarfCollector* out) {
  Dwarf_Attribute attr;
  if (!dwarf_attr(die, DW_AT_location, &attr)) return;
  Dwarf_Op* expr = nullptr;
  size_t length = 0;
  if (dwarf_getlocation(&attr, &expr, &length) == 0) {
    if (length == 1 && expr[0].atom == DW_OP_addr) out->variables[name] = expr[0].number;
    return;
  }
  // Go writes DWARF 4 locations as DW_FORM_block1, which libdw does not take
  // for a location expression there: decode the one-op "DW_OP_addr <addr>".
  Dwarf_Block block;
  if (dwarf_formblock(&attr, &block) != 0 || block.length < 1 || block.data[0] != DW_OP_addr) return;
  if (block.length == 9) {
    uint64_t addr = 0;
    std::memcpy(&addr, block.data + 1, 8);  // target byte order = host (amd64/arm64)
    out->variables[name] = addr;
  } else if (block.length == 5) {
    uint32_t addr = 0;
    std::memcpy(&addr, block.data + 1, 4);
    out->variables[name] = addr;
  }
}

Result<uint64_t> member(const DwarfCollector& c, const std::string& type, const std::string& field) {
  auto t = c.structs.find(type);
  if (t == c.structs.end()) return fail(fmt::format("DWARF has no type {}", type));
  auto f = t->second.find(field);
  if (f == t->second.end()) return fail(fmt::format("DWARF type {} has no field {}", type, field));
  return f->second;
}

}  // namespace

Result<DwarfRuntimeInfo> read_dwarf_runtime(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  Dwarf* raw = dwarf_begin(fd.get(), DWARF_C_READ);
  if (!raw) return fail(fmt::format("{}: no DWARF: {}", path, dwarf_errmsg(-1)));
  CHandle<Dwarf, dwarf_end> dwarf(raw);

  // Go emits every type and package-level variable as a top-level DIE of some
  // compilation unit; walking the top level of each unit finds them without
  // descending into function bodies.
  DwarfCollector found;
  Dwarf_Off offset = 0;
  Dwarf_Off next = 0;
  size_t header_size = 0;
  while (dwarf_nextcu(raw, offset, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    Dwarf_Die child;
    if (dwarf_offdie(raw, offset + header_size, &cu) && dwarf_child(&cu, &child) == 0) {
      do {
        const int tag = dwarf_tag(&child);
        const char* name = dwarf_diename(&child);
        if (tag == DW_TAG_structure_type && wanted(kStructs, name) && !found.structs.contains(name)) {
          collect_members(&child, &found.structs[name]);
        } else if (tag == DW_TAG_variable && wanted(kVariables, name)) {
          collect_variable(&child, name, &found);
        }
      } while (dwarf_siblingof(&child, &child) == 0);
    }
    offset = next;
  }
  if (found.structs.empty()) return fail(fmt::format("{}: DWARF has no Go runtime types", path));

  DwarfRuntimeInfo info;
  RuntimeOffsets& o = info.offsets;
  const uint64_t stack = TRY(member(found, "runtime.g", "stack"));
  const uint64_t sched = TRY(member(found, "runtime.g", "sched"));
  o.g_stack_lo = static_cast<uint32_t>(stack + TRY(member(found, "runtime.stack", "lo")));
  o.g_stack_hi = static_cast<uint32_t>(stack + TRY(member(found, "runtime.stack", "hi")));
  o.g_m = static_cast<uint32_t>(TRY(member(found, "runtime.g", "m")));
  o.g_sched = static_cast<uint32_t>(sched);
  o.g_sched_sp = static_cast<uint32_t>(sched + TRY(member(found, "runtime.gobuf", "sp")));
  o.g_sched_pc = static_cast<uint32_t>(sched + TRY(member(found, "runtime.gobuf", "pc")));
  o.g_sched_bp = static_cast<uint32_t>(sched + TRY(member(found, "runtime.gobuf", "bp")));
  o.g_atomicstatus = static_cast<uint32_t>(TRY(member(found, "runtime.g", "atomicstatus")));
  o.g_goid = static_cast<uint32_t>(TRY(member(found, "runtime.g", "goid")));
  o.g_waitreason = static_cast<uint32_t>(TRY(member(found, "runtime.g", "waitreason")));
  o.g_gopc = static_cast<uint32_t>(TRY(member(found, "runtime.g", "gopc")));
  o.g_startpc = static_cast<uint32_t>(TRY(member(found, "runtime.g", "startpc")));
  o.m_curg = static_cast<uint32_t>(TRY(member(found, "runtime.m", "curg")));
  o.source = OffsetSource::dwarf;
  o.origin = "DWARF";
  auto var = [&](const char* name) -> std::optional<uint64_t> {
    auto it = found.variables.find(name);
    if (it == found.variables.end()) return std::nullopt;
    return it->second;
  };
  info.allgs = var("runtime.allgs");
  info.allglen = var("runtime.allglen");
  info.sched = var("runtime.sched");
  return info;
}

std::string_view g_status_name(uint32_t status) {
  switch (status & ~static_cast<uint32_t>(kGscan)) {
    case kGidle: return "idle";
    case kGrunnable: return "runnable";
    case kGrunning: return "running";
    case kGsyscall: return "syscall";
    case kGwaiting: return "waiting";
    case kGdead: return "dead";
    case kGcopystack: return "copystack";
    case kGpreempted: return "preempted";
    default: return "unknown";
  }
}

std::string_view wait_class_name(WaitClass wait_class) {
  switch (wait_class) {
    case WaitClass::none: return "none";
    case WaitClass::chan: return "chan";
    case WaitClass::select: return "select";
    case WaitClass::mutex: return "mutex";
    case WaitClass::sleep: return "sleep";
    case WaitClass::io: return "io";
    case WaitClass::gc: return "gc";
    case WaitClass::other: return "other";
  }
  return "other";
}

WaitClass classify_wait_reason(std::string_view reason) {
  if (reason.empty()) return WaitClass::none;
  // "chan receive", "chan send", "… (nil chan)", "… (durable)" (synctest).
  if (reason.starts_with("chan ")) return WaitClass::chan;
  if (reason.starts_with("select")) return WaitClass::select;
  if (reason == "sync.Mutex.Lock" || reason == "sync.RWMutex.RLock" || reason == "sync.RWMutex.Lock" ||
      reason == "semacquire") {
    return WaitClass::mutex;
  }
  if (reason == "sleep") return WaitClass::sleep;
  if (reason == "IO wait") return WaitClass::io;
  static constexpr std::array<std::string_view, 15> kGc = {
      "GC assist marking", "garbage collection", "garbage collection scan", "GC assist wait", "GC sweep wait",
      "GC scavenge wait",  "finalizer wait",     "force gc (idle)",         "wait for GC cycle", "GC worker (idle)",
      "GC worker (active)", "GC mark termination", "GC weak to strong wait", "cleanup wait", "dumping heap"};
  for (auto gc : kGc) {
    if (reason == gc) return WaitClass::gc;
  }
  return WaitClass::other;
}

namespace {

// runtime.waitReasonStrings as read from release binaries of each version
// (index = waitReason value). Each list only ever grew at the end until
// go1.25 inserted "GOMAXPROCS updater (idle)" and "sync.WaitGroup.Wait", and
// go1.26 regrouped the channel and select reasons.
using Names = std::initializer_list<std::string_view>;
const Names kWaitReasons116 = {  // go1.16, 1.17.1, 1.19.8
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
    "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
    "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)",
    "semacquire", "sleep", "sync.Cond.Wait", "timer goroutine (idle)", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "preempted", "debug call"};
const Names kWaitReasons120 = {  // go1.20.7, 1.20.12
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
    "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
    "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)",
    "semacquire", "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock",
    "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted",
    "debug call", "GC mark termination", "stopping the world"};
const Names kWaitReasons122 = {  // go1.22.4, 1.23.1 (1.23.5+ adds "GC weak to strong wait")
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
    "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
    "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)",
    "semacquire", "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock",
    "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted",
    "debug call", "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status",
    "trace proc status", "page trace flush", "coroutine", "GC weak to strong wait"};
const Names kWaitReasons125 = {  // go1.25.4
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
    "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
    "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)",
    "GOMAXPROCS updater (idle)", "semacquire", "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock",
    "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "GC worker (active)", "preempted", "debug call", "GC mark termination", "stopping the world",
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush", "coroutine",
    "GC weak to strong wait", "synctest.Run", "synctest.Wait", "chan receive (durable)", "chan send (durable)",
    "select (durable)", "sync.WaitGroup.Wait (durable)", "cleanup wait"};
const Names kWaitReasons126 = {  // go1.26.5
    "", "GC assist marking", "IO wait", "dumping heap", "garbage collection", "garbage collection scan",
    "panicwait", "GC assist wait", "GC sweep wait", "GC scavenge wait", "finalizer wait", "force gc (idle)",
    "GOMAXPROCS updater (idle)", "semacquire", "sleep", "chan receive (nil chan)", "chan send (nil chan)",
    "select (no cases)", "select", "chan receive", "chan send", "sync.Cond.Wait", "sync.Mutex.Lock",
    "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
    "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status",
    "trace proc status", "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run",
    "synctest.Wait", "chan receive (durable)", "chan send (durable)", "select (durable)",
    "sync.WaitGroup.Wait (durable)", "cleanup wait"};

struct WaitReasonRow {
  int first_minor;
  int last_minor;
  const Names* names;
  size_t pinned;  // how many leading values are known for every version of the range
};
// go1.18 sits between two identical measured tables; go1.21 keeps all of 1.20
// (a prefix of 1.22); go1.24 is only pinned up to where 1.23 and 1.25 agree.
const std::array<WaitReasonRow, 6> kWaitReasonRows = {{
    {16, 19, &kWaitReasons116, 27},
    {20, 21, &kWaitReasons120, 32},
    {22, 23, &kWaitReasons122, 38},
    {24, 24, &kWaitReasons122, 18},
    {25, 25, &kWaitReasons125, 47},
    {26, 26, &kWaitReasons126, 47},
}};

}  // namespace

std::vector<std::string> wait_reason_names_for_version(const GoVersion& version) {
  if (version.major != 1) return {};
  for (const auto& r : kWaitReasonRows) {
    if (!r.names || version.minor < r.first_minor || version.minor > r.last_minor) continue;
    std::vector<std::string> names;
    for (auto name : *r.names) {
      if (names.size() == r.pinned) break;
      names.emplace_back(name);
    }
    return names;
  }
  return {};
}

bool is_known_wait_reason(std::string_view reason) {
  for (const Names* names : {&kWaitReasons116, &kWaitReasons120, &kWaitReasons122, &kWaitReasons125, &kWaitReasons126}) {
    for (auto name : *names) {
      if (name == reason) return true;
    }
  }
  return false;
}

}  // namespace syncscope::probes::go

