// Reading a Go program's goroutines from outside the process.
//
// The Go runtime keeps every goroutine it ever created in runtime.allgs, a
// []*g that only grows (dead gs stay in it and are reused). One scan reads
// the slice header, the pointer array and, for each g, the few words between
// its status and its start pc — with process_vm_readv, batched so that 1000
// goroutines cost a handful of system calls — and classifies each g by
// g.atomicstatus and g.waitreason. The target process is not stopped, traced
// or trapped: a scan costs it nothing but memory bandwidth, where a uprobe on
// runtime.casgstatus would trap on every state change of every goroutine
// (README "Goroutines" has both numbers).
//
// Finding runtime.allgs:
//   1. .symtab (Go keeps it unless the binary is stripped);
//   2. DWARF (also gone when stripped, but some builds strip only symbols);
//   3. the code of runtime.forEachG, located through the pclntab (which
//      survives stripping) and decoded with capstone: its body is
//      `lock(&allglock); for _, gp := range allgs {…}`, so its first two
//      RIP-relative loads from adjacent words X and X+8 are allgs.ptr and
//      allgs.len. runtime.allgadd (`allgs = append(allgs, gp)`) is the second
//      choice. forEachG appeared in Go 1.17; both were decoded and checked
//      here on go1.19.8 binaries only (the Debian toolchain on these
//      machines). The candidate must fall in writable data, and the first
//      scan of a process checks that allgs[0] is goroutine 1 (runtime.main),
//      so a wrong guess on another release is reported, never silently used.
// A live scan races with the runtime appending to allgs; reading the header
// again after the pointer array and retrying when it moved makes the view
// consistent, and each g is read in one copy so its fields agree.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "probes/elf_file.h"
#include "probes/go/go_binary.h"
#include "probes/go/offsets.h"

namespace syncscope::probes::go {

// One piece of remote memory to copy.
struct RemoteRead {
  uint64_t address = 0;
  std::span<std::byte> into;
  bool ok = false;  // set by RemoteMemory::read
};

// Another process's memory (faked by tests with an image of bytes).
class RemoteMemory {
 public:
  virtual ~RemoteMemory() = default;
  // Copies every read it can and marks it ok. An error only when the process
  // cannot be read at all: ESRCH (it exited) or EPERM.
  virtual Result<void> read(std::span<RemoteRead> reads) = 0;
  // The number of system calls made so far (for the cost figures).
  virtual uint64_t calls() const { return 0; }
};

// process_vm_readv, up to IOV_MAX pieces per call; a piece that is not mapped
// fails alone (the call is restarted after it).
class ProcessMemory final : public RemoteMemory {
 public:
  explicit ProcessMemory(pid_t pid) : pid_(pid) {}
  Result<void> read(std::span<RemoteRead> reads) override;
  uint64_t calls() const override { return calls_; }

 private:
  pid_t pid_;
  uint64_t calls_ = 0;
};

// Tests: regions of bytes at addresses.
class ImageMemory final : public RemoteMemory {
 public:
  void map(uint64_t address, std::vector<std::byte> bytes) { regions_[address] = std::move(bytes); }
  // Writes `value` (little endian, `size` bytes) at address, which must be mapped.
  void poke(uint64_t address, uint64_t value, unsigned size = 8);
  Result<void> read(std::span<RemoteRead> reads) override;
  uint64_t calls() const override { return pieces_; }
  bool exited = false;  // every read then fails with ESRCH

 private:
  uint64_t pieces_ = 0;  // pieces asked for (what iovecs a real read would use)
  std::map<uint64_t, std::vector<std::byte>> regions_;
};

// From decoded code: the address X of the first slice header the code loads
// as two RIP-relative 8-byte loads of X and X+8 (ptr and len), or nullopt.
// Pure (capstone over bytes), for tests and for find_allgs.
std::optional<uint64_t> find_slice_header_load(std::span<const uint8_t> code, uint64_t vaddr);

// Where runtime.allgs is in the binary (an ELF vaddr) and how it was found.
struct AllgsLocation {
  uint64_t vaddr = 0;
  std::string origin;  // "symtab", "DWARF", "decoded runtime.forEachG", …
};
Result<AllgsLocation> find_allgs(const GoBinary& bin, const ElfFile& elf);

// What a scan needs to know about the binary, in run-time addresses.
struct RuntimeLayout {
  uint64_t allgs = 0;  // the slice header's run-time address
  uint64_t bias = 0;   // run-time address - ELF vaddr (0 unless PIE)
  RuntimeOffsets offsets;
};

struct GoroutineRecord {
  uint64_t g = 0;  // address of the runtime.g
  int64_t goid = 0;
  uint32_t status = 0;      // g.atomicstatus, _Gscan bit included
  uint8_t waitreason = 0;
  uint64_t gopc = 0;        // run-time pc of the go statement
  uint64_t startpc = 0;     // run-time pc of the goroutine's function
};

struct GoroutineScan {
  uint64_t allglen = 0;          // len(allgs): every g ever created, dead ones included
  std::vector<GoroutineRecord> goroutines;  // those read (dead ones included)
  uint64_t unreadable = 0;       // g pointers that could not be read (freed mid-scan)
  uint64_t read_calls = 0;       // process_vm_readv calls this scan made
};

// Reads allgs and every g. Fails with ESRCH when the process is gone, and
// with a message naming the address when allgs does not look like a []*g.
Result<GoroutineScan> read_goroutines(RemoteMemory& memory, const RuntimeLayout& layout,
                                      uint64_t max_goroutines = 10'000'000);

// The states a live goroutine is reported in (the `state` label).
enum class GoroutineState : uint8_t {
  running,
  runnable,
  syscall,
  waiting_chan,
  waiting_select,
  waiting_sync,   // sync.Mutex/RWMutex/WaitGroup/semaphores ("semacquire" before Go 1.20)
  waiting_io,     // netpoll: "IO wait"
  waiting_sleep,  // time.Sleep, timers
  waiting_gc,     // the GC's own waits
  waiting_other,  // sync.Cond.Wait, panicwait, debug call, …
  count_,
};
inline constexpr size_t kGoroutineStateCount = static_cast<size_t>(GoroutineState::count_);
std::string_view to_string(GoroutineState state);
// nullopt for gs that are not live (idle, dead) or carry an unknown status.
// `wait` is the class of g.waitreason (only looked at for _Gwaiting).
std::optional<GoroutineState> goroutine_state(uint32_t status, WaitClass wait);

// Turns pcs into function names and classifies wait reasons: GoBinary in the
// agent, a table in tests.
class GoroutineSymbols {
 public:
  virtual ~GoroutineSymbols() = default;
  // Function containing run-time pc `pc`; "" when none does.
  virtual std::string function_at(uint64_t pc) const = 0;
  virtual WaitClass wait_class(uint8_t waitreason) const = 0;
};

// A summary of one scan: what metrics and `trace goroutines` show.
struct GoroutineSummary {
  uint64_t live = 0;    // user goroutines, as runtime.NumGoroutine() counts them
  uint64_t system = 0;  // live goroutines started in runtime.* (GC workers, …), not in `live`
  std::array<uint64_t, kGoroutineStateCount> by_state{};  // user goroutines only
  // Creation site (function holding gopc) → live user goroutines created there.
  std::map<std::string, uint64_t> by_creator;
  int64_t max_goid = 0;  // the highest goroutine id seen, dead gs included
};
// A goroutine is a system one, as runtime.isSystemGoroutine decides, when its
// start function is in package runtime and is not runtime.main (the finalizer
// goroutine counts as system even while it runs a user finalizer).
GoroutineSummary summarize(const GoroutineScan& scan, const GoroutineSymbols& symbols);

// Top `k` creators by count, ties by name, plus an "other" row summing the
// rest when there is any rest.
std::vector<std::pair<std::string, uint64_t>> top_creators(const std::map<std::string, uint64_t>& by_creator,
                                                           size_t k);

// One Go executable, opened once and shared by all its processes: the
// pclntab for names, the offsets, and where allgs is.
class GoRuntimeImage {
 public:
  static Result<std::shared_ptr<GoRuntimeImage>> open(const std::string& path);

  const GoBinary& binary() const { return binary_; }
  const ElfFile& elf() const { return *elf_; }
  const AllgsLocation& allgs() const { return allgs_; }
  const RuntimeOffsets& offsets() const { return offsets_; }
  std::string version() const;  // "1.19.8", or "unknown"

  // The layout in process `pid`: PIE binaries load at a random bias, read
  // from /proc/PID/maps (the mapping of the file at offset 0).
  Result<RuntimeLayout> layout_for(pid_t pid) const;

 private:
  explicit GoRuntimeImage(GoBinary binary) : binary_(std::move(binary)) {}
  GoBinary binary_;
  std::unique_ptr<ElfFile> elf_;
  AllgsLocation allgs_;
  RuntimeOffsets offsets_;
};

// GoroutineSymbols over an image loaded at `bias` in one process.
class ImageSymbols final : public GoroutineSymbols {
 public:
  ImageSymbols(const GoRuntimeImage& image, uint64_t bias) : image_(image), bias_(bias) {}
  std::string function_at(uint64_t pc) const override;
  WaitClass wait_class(uint8_t waitreason) const override { return image_.binary().wait_class(waitreason); }

 private:
  const GoRuntimeImage& image_;
  uint64_t bias_;
};

// Cheap test before GoBinary::open: does the ELF file carry a Go section
// (.go.buildinfo, .gopclntab, .note.go.buildid)? Reads only the section
// headers; false for non-ELF files.
bool looks_like_go_executable(const std::string& path);

// Checks a first scan against what the runtime guarantees: allgs[0] is the
// main goroutine (goid 1). An error naming the address when it is not: the
// allgs location was wrong.
Result<void> validate_first_scan(const GoroutineScan& scan, const AllgsLocation& where);

}  // namespace syncscope::probes::go
