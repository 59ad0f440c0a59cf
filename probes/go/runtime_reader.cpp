#include "probes/go/runtime_reader.h"

#include <capstone/capstone.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <set>
#include <unordered_map>

#include "agent/core/fd.h"
#include "agent/core/format.h"
#include "probes/proc_maps.h"

namespace syncscope::probes::go {
namespace {

uint64_t load_u64(std::span<const std::byte> bytes, size_t offset) {
  uint64_t v = 0;
  std::memcpy(&v, bytes.data() + offset, sizeof v);  // amd64/arm64: little endian, like the agent
  return v;
}

uint32_t load_u32(std::span<const std::byte> bytes, size_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

}  // namespace

Result<void> ProcessMemory::read(std::span<RemoteRead> reads) {
  // IOV_MAX pieces per call. The kernel copies pieces in order and stops at
  // the first one it cannot read; that piece fails alone and the call is
  // made again from the next one.
  size_t next = 0;
  std::vector<iovec> local;
  std::vector<iovec> remote;
  while (next < reads.size()) {
    const size_t batch = std::min<size_t>(reads.size() - next, IOV_MAX);
    local.clear();
    remote.clear();
    for (size_t i = next; i < next + batch; ++i) {
      reads[i].ok = false;
      local.push_back({reads[i].into.data(), reads[i].into.size()});
      remote.push_back({reinterpret_cast<void*>(reads[i].address), reads[i].into.size()});
    }
    ++calls_;
    ssize_t n = ::process_vm_readv(pid_, local.data(), batch, remote.data(), batch, 0);
    if (n < 0) {
      if (errno == ESRCH || errno == EPERM || errno == ENOMEM)
        return fail_errno(fmt::format("process {}: process_vm_readv", pid_));
      n = 0;  // EFAULT: the first piece is unreadable
    }
    size_t done = 0;
    auto remaining = static_cast<size_t>(n);
    while (done < batch && remaining >= reads[next + done].into.size()) {
      remaining -= reads[next + done].into.size();
      reads[next + done].ok = true;
      ++done;
    }
    // reads[next + done] (if any) is the piece that stopped the copy.
    next += std::min(done + 1, batch);
  }
  return {};
}

void ImageMemory::poke(uint64_t address, uint64_t value, unsigned size) {
  auto it = regions_.upper_bound(address);
  if (it == regions_.begin()) return;
  --it;
  if (address - it->first + size > it->second.size()) return;
  std::memcpy(it->second.data() + (address - it->first), &value, size);
}

Result<void> ImageMemory::read(std::span<RemoteRead> reads) {
  if (exited) return fail_errno("image: process_vm_readv", ESRCH);
  for (RemoteRead& r : reads) {
    r.ok = false;
    ++pieces_;
    auto it = regions_.upper_bound(r.address);
    if (it == regions_.begin()) continue;
    --it;
    const uint64_t offset = r.address - it->first;
    if (offset > it->second.size() || r.into.size() > it->second.size() - offset) continue;
    std::memcpy(r.into.data(), it->second.data() + offset, r.into.size());
    r.ok = true;
  }
  return {};
}

std::optional<uint64_t> find_slice_header_load(std::span<const uint8_t> code, uint64_t vaddr) {
  csh handle = 0;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK) return std::nullopt;
  cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
  cs_insn* insn = cs_malloc(handle);
  std::set<uint64_t> loads;  // targets of `mov reg64, [rip + disp]`
  const uint8_t* p = code.data();
  size_t size = code.size();
  uint64_t address = vaddr;
  while (insn && size > 0) {
    if (!cs_disasm_iter(handle, &p, &size, &address, insn)) {
      // Undecodable bytes (data in code, padding): step over one byte.
      ++p;
      --size;
      ++address;
      continue;
    }
    const cs_x86& x86 = insn->detail->x86;
    if (insn->id == X86_INS_MOV && x86.op_count == 2 && x86.operands[0].type == X86_OP_REG &&
        x86.operands[1].type == X86_OP_MEM && x86.operands[1].size == 8 && x86.operands[1].mem.base == X86_REG_RIP &&
        x86.operands[1].mem.index == X86_REG_INVALID) {
      loads.insert(insn->address + insn->size + static_cast<uint64_t>(x86.operands[1].mem.disp));
    }
  }
  if (insn) cs_free(insn, 1);
  cs_close(&handle);
  // The header is the lowest word of a run of adjacent loaded words: append()
  // also loads the capacity at X+16, and X+8/X+16 must not be mistaken for it.
  for (uint64_t a : loads) {
    if (loads.contains(a + 8) && !loads.contains(a - 8)) return a;
  }
  return std::nullopt;
}

Result<AllgsLocation> find_allgs(const GoBinary& bin, const ElfFile& elf) {
  if (auto address = bin.allgs_address()) {
    return AllgsLocation{*address, bin.has_symtab() ? "symtab" : "DWARF"};
  }
  auto in_writable_data = [&](uint64_t vaddr) {
    return std::ranges::any_of(elf.sections(), [&](const Section& s) {
      return (s.flags & SHF_ALLOC) && s.writable() && !s.executable() && vaddr >= s.vaddr && vaddr + 24 <= s.vaddr + s.size;
    });
  };
  std::string tried;
  for (std::string_view name : {"runtime.forEachG", "runtime.allgadd"}) {
    auto fn = bin.find_function(name);
    if (!fn) {
      tried += fmt::format("; {}: not in the pclntab", name);
      continue;
    }
    auto code = elf.read(fn->entry, fn->end - fn->entry);
    if (!code) {
      tried += fmt::format("; {}: {}", name, code.error().message());
      continue;
    }
    auto header = find_slice_header_load(*code, fn->entry);
    if (!header) {
      tried += fmt::format("; {}: no slice header load in its code", name);
      continue;
    }
    if (!in_writable_data(*header)) {
      tried += fmt::format("; {}: loads {:#x}, which is not in writable data", name, *header);
      continue;
    }
    return AllgsLocation{*header, fmt::format("decoded {}", name)};
  }
  return fail(fmt::format("{}: runtime.allgs not found (no symbol, no DWARF{})", bin.path(), tried));
}

Result<GoroutineScan> read_goroutines(RemoteMemory& memory, const RuntimeLayout& layout, uint64_t max_goroutines) {
  const RuntimeOffsets& o = layout.offsets;
  const uint32_t lo = std::min({o.g_atomicstatus, o.g_goid, o.g_waitreason, o.g_gopc, o.g_startpc});
  const uint32_t hi = std::max({o.g_atomicstatus + 4, o.g_goid + 8, o.g_waitreason + 1, o.g_gopc + 8, o.g_startpc + 8});
  const size_t span = hi - lo;

  GoroutineScan scan;
  uint64_t calls_before = memory.calls();
  std::array<std::byte, 24> header{};
  auto read_header = [&]() -> Result<std::pair<uint64_t, uint64_t>> {
    RemoteRead r{layout.allgs, header};
    TRY(memory.read(std::span(&r, 1)));
    if (!r.ok) return fail(fmt::format("runtime.allgs at {:#x} is not readable", layout.allgs));
    uint64_t ptr = load_u64(header, 0), len = load_u64(header, 8), cap = load_u64(header, 16);
    if (len > cap || len > max_goroutines || (len > 0 && ptr == 0))
      return fail(fmt::format("runtime.allgs at {:#x} is not a []*g (ptr {:#x}, len {}, cap {})", layout.allgs, ptr,
                              len, cap));
    return std::pair{ptr, len};
  };

  std::vector<uint64_t> gs;
  // allgs grows by append: when the header moved while the array was read,
  // read again (three tries; a program creating goroutines that fast still
  // gets the last consistent view it had).
  for (int attempt = 0;; ++attempt) {
    auto [ptr, len] = TRY(read_header());
    gs.assign(len, 0);
    if (len) {
      RemoteRead r{ptr, std::as_writable_bytes(std::span(gs))};
      TRY(memory.read(std::span(&r, 1)));
      if (!r.ok) {
        if (attempt < 3) continue;
        return fail(fmt::format("allgs array at {:#x} ({} entries) is not readable", ptr, len));
      }
    }
    auto again = TRY(read_header());
    if (again == std::pair{ptr, len} || attempt >= 3) break;
  }
  scan.allglen = gs.size();

  // The runtime allocates gs from one heap size class (416 bytes in Go
  // 1.19), so most sit next to each other: reading runs of neighbours in one
  // piece (gaps up to 1 KiB, pieces up to 64 KiB) turns thousands of iovecs
  // into a few dozen. A piece that fails is read again g by g.
  constexpr uint64_t kMaxGap = 1024, kMaxPiece = 64 * 1024;
  struct Piece {
    uint64_t start = 0, end = 0;
    size_t offset = 0;  // in `buffer`
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < gs.size(); ++i) {
    if (gs[i] != 0 && gs[i] < UINT64_MAX - hi) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gs[a] < gs[b]; });
  std::vector<Piece> pieces;
  std::vector<size_t> piece_of(gs.size(), SIZE_MAX);
  for (size_t i : order) {
    const uint64_t a = gs[i] + lo, b = gs[i] + hi;
    if (!pieces.empty() && a <= pieces.back().end + kMaxGap && b - pieces.back().start <= kMaxPiece) {
      pieces.back().end = std::max(pieces.back().end, b);
    } else {
      pieces.push_back({a, b, 0});
    }
    piece_of[i] = pieces.size() - 1;
  }
  size_t total = 0;
  for (Piece& piece : pieces) {
    piece.offset = total;
    total += piece.end - piece.start;
  }
  std::vector<std::byte> buffer(total);
  std::vector<RemoteRead> reads;
  reads.reserve(pieces.size());
  for (const Piece& piece : pieces)
    reads.push_back({piece.start, std::span(buffer).subspan(piece.offset, piece.end - piece.start)});
  TRY(memory.read(reads));

  // Second chance for the gs of failed pieces, one read each.
  std::vector<std::byte> single(gs.size() * span);
  std::vector<RemoteRead> singles;
  std::vector<size_t> single_of(gs.size(), SIZE_MAX);
  for (size_t i : order) {
    if (reads[piece_of[i]].ok) continue;
    single_of[i] = singles.size();
    singles.push_back({gs[i] + lo, std::span(single).subspan(i * span, span)});
  }
  if (!singles.empty()) TRY(memory.read(singles));

  scan.goroutines.reserve(order.size());
  for (size_t i = 0; i < gs.size(); ++i) {
    if (piece_of[i] == SIZE_MAX) continue;
    std::span<const std::byte> bytes;
    if (const RemoteRead& r = reads[piece_of[i]]; r.ok) {
      bytes = r.into.subspan(gs[i] + lo - r.address, span);
    } else if (singles[single_of[i]].ok) {
      bytes = singles[single_of[i]].into;
    } else {
      ++scan.unreadable;
      continue;
    }
    GoroutineRecord g;
    g.g = gs[i];
    g.status = load_u32(bytes, o.g_atomicstatus - lo);
    g.goid = static_cast<int64_t>(load_u64(bytes, o.g_goid - lo));
    g.waitreason = static_cast<uint8_t>(bytes[o.g_waitreason - lo]);
    g.gopc = load_u64(bytes, o.g_gopc - lo);
    g.startpc = load_u64(bytes, o.g_startpc - lo);
    scan.goroutines.push_back(g);
  }
  scan.read_calls = memory.calls() - calls_before;
  return scan;
}

std::string_view to_string(GoroutineState state) {
  switch (state) {
    case GoroutineState::running: return "running";
    case GoroutineState::runnable: return "runnable";
    case GoroutineState::syscall: return "syscall";
    case GoroutineState::waiting_chan: return "waiting_chan";
    case GoroutineState::waiting_select: return "waiting_select";
    case GoroutineState::waiting_sync: return "waiting_sync";
    case GoroutineState::waiting_io: return "waiting_io";
    case GoroutineState::waiting_sleep: return "waiting_sleep";
    case GoroutineState::waiting_gc: return "waiting_gc";
    case GoroutineState::waiting_other: return "waiting_other";
    case GoroutineState::count_: break;
  }
  return "unknown";
}

std::optional<GoroutineState> goroutine_state(uint32_t status, WaitClass wait) {
  switch (status & ~static_cast<uint32_t>(kGscan)) {
    case kGrunnable: return GoroutineState::runnable;
    case kGrunning: return GoroutineState::running;
    // Growing its own stack: it was running and continues when done.
    case kGcopystack: return GoroutineState::running;
    // Stopped by an asynchronous preemption request; it is resumed as runnable.
    case kGpreempted: return GoroutineState::runnable;
    case kGsyscall: return GoroutineState::syscall;
    case kGwaiting:
      switch (wait) {
        case WaitClass::chan: return GoroutineState::waiting_chan;
        case WaitClass::select: return GoroutineState::waiting_select;
        case WaitClass::mutex: return GoroutineState::waiting_sync;
        case WaitClass::io: return GoroutineState::waiting_io;
        case WaitClass::sleep: return GoroutineState::waiting_sleep;
        case WaitClass::gc: return GoroutineState::waiting_gc;
        case WaitClass::none:
        case WaitClass::other: return GoroutineState::waiting_other;
      }
      return GoroutineState::waiting_other;
    default: return std::nullopt;  // idle, dead, or a value no release uses
  }
}

GoroutineSummary summarize(const GoroutineScan& scan, const GoroutineSymbols& symbols) {
  // Thousands of goroutines share a handful of start and creation pcs: count
  // by pc first, name each distinct pc once.
  GoroutineSummary out;
  std::unordered_map<uint64_t, bool> system_start;  // startpc → runtime-internal
  std::unordered_map<uint64_t, uint64_t> by_gopc;
  std::unordered_map<uint8_t, WaitClass> wait_classes;
  for (const GoroutineRecord& g : scan.goroutines) {
    out.max_goid = std::max(out.max_goid, g.goid);
    auto wait = wait_classes.find(g.waitreason);
    if (wait == wait_classes.end()) wait = wait_classes.emplace(g.waitreason, symbols.wait_class(g.waitreason)).first;
    auto state = goroutine_state(g.status, wait->second);
    if (!state) continue;
    auto system = system_start.find(g.startpc);
    if (system == system_start.end()) {
      const std::string start = symbols.function_at(g.startpc);
      system = system_start.emplace(g.startpc, start.starts_with("runtime.") && start != "runtime.main").first;
    }
    if (system->second) {
      ++out.system;
      continue;
    }
    ++out.live;
    ++out.by_state[static_cast<size_t>(*state)];
    ++by_gopc[g.gopc];
  }
  for (const auto& [gopc, count] : by_gopc) {
    std::string creator = symbols.function_at(gopc);
    out.by_creator[creator.empty() ? fmt::format("{:#x}", gopc) : std::move(creator)] += count;
  }
  return out;
}

std::vector<std::pair<std::string, uint64_t>> top_creators(const std::map<std::string, uint64_t>& by_creator,
                                                           size_t k) {
  std::vector<std::pair<std::string, uint64_t>> rows(by_creator.begin(), by_creator.end());
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (rows.size() > k) {
    uint64_t rest = 0;
    for (size_t i = k; i < rows.size(); ++i) rest += rows[i].second;
    rows.resize(k);
    rows.emplace_back("other", rest);
  }
  return rows;
}

Result<std::shared_ptr<GoRuntimeImage>> GoRuntimeImage::open(const std::string& path) {
  auto image = std::shared_ptr<GoRuntimeImage>(new GoRuntimeImage(TRY(GoBinary::open(path))));
  const GoBinary& bin = image->binary_;
  auto offsets = bin.runtime_offsets();
  if (!offsets) {
    return fail(fmt::format("{}: unsupported Go version {}: {}", path,
                            bin.version() ? bin.version()->raw : std::string("(unknown)"), offsets.error().message()));
  }
  image->offsets_ = *offsets;
  image->elf_ = TRY(ElfFile::open(path));
  image->allgs_ = TRY(find_allgs(bin, *image->elf_));
  return image;
}

std::string GoRuntimeImage::version() const {
  return binary_.version() ? binary_.version()->short_string() : std::string("unknown");
}

Result<RuntimeLayout> GoRuntimeImage::layout_for(pid_t pid) const {
  RuntimeLayout layout;
  layout.offsets = offsets_;
  if (elf_->position_independent()) {
    auto maps = TRY(read_maps(pid));
    char exe[PATH_MAX];
    ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), exe, sizeof exe - 1);
    if (n <= 0) return fail_errno(fmt::format("process {}: readlink exe", pid), errno == ENOENT ? ESRCH : errno);
    std::string path(exe, static_cast<size_t>(n));
    if (path.ends_with(" (deleted)")) path.resize(path.size() - 10);
    const Mapping* first = nullptr;
    for (const Mapping& m : maps) {
      if (m.is_file() && m.path == path) {
        first = &m;
        break;
      }
    }
    if (!first) return fail(fmt::format("process {}: {} is not mapped", pid, path));
    layout.bias = TRY(load_bias(*first, *elf_));
  }
  layout.allgs = allgs_.vaddr + layout.bias;
  return layout;
}

std::string ImageSymbols::function_at(uint64_t pc) const {
  const GoFunction* fn = image_.binary().pclntab().function_for_pc(pc - bias_);
  return fn ? fn->name : std::string();
}

bool looks_like_go_executable(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  if (elf_version(EV_CURRENT) == EV_NONE) return false;
  CHandle<Elf, elf_end> elf(elf_begin(fd.get(), ELF_C_READ, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return false;
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf.get(), &shstrndx) != 0) return false;
  size_t count = 0;
  if (elf_getshdrnum(elf.get(), &count) != 0) return false;
  // No section headers at all: let the full reader scan the segments.
  if (count == 0) return true;
  for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn; scn = elf_nextscn(elf.get(), scn)) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    const char* name = elf_strptr(elf.get(), shstrndx, shdr.sh_name);
    if (!name) continue;
    std::string_view n(name);
    if (n == ".go.buildinfo" || n == ".note.go.buildid" || n.ends_with(".gopclntab")) return true;
  }
  return false;
}

Result<void> validate_first_scan(const GoroutineScan& scan, const AllgsLocation& where) {
  // allgs[0] is runtime.main's goroutine, created first (goid 1) and alive
  // until the program exits.
  if (scan.goroutines.empty() || scan.goroutines.front().goid != 1) {
    return fail(fmt::format("runtime.allgs at {:#x} ({}) does not start with goroutine 1{}", where.vaddr, where.origin,
                            scan.goroutines.empty() ? "" : fmt::format(" (found goid {})", scan.goroutines.front().goid)));
  }
  return {};
}

}  // namespace syncscope::probes::go
