// Candidate lines when nothing hints at any: the writable globals and
// statics of a process (sized OBJECT symbols in .data/.bss of every module it
// maps, the main executable first), ordered by how often their bytes changed
// while we looked.
//
// Looking is cheap and invisible to the target: the agent reads the objects'
// memory a few times, a few milliseconds apart (process_vm_readv, no trap, no
// stop), and counts per 64-byte line how many of those snapshots differed
// from the previous one. A counter two threads hammer changes every time; a
// configuration struct never does. The watchpoint rotation then visits the
// lines that changed first, and the unchanged lines of the main executable
// after them. Memory reads go through MemoryReader so tests can fake them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "agent/core/result.h"
#include "probes/proc_maps.h"

namespace syncscope::collectors {

struct DataObject {
  uint64_t start = 0;  // run-time address
  uint64_t size = 0;
  std::string name;  // demangled
  std::string raw_name;
  bool main_executable = false;
};

// Every sized writable data object of the process, sorted by address. A
// module that cannot be read is skipped (its path lands in `skipped`).
Result<std::vector<DataObject>> process_data_objects(int pid, std::vector<std::string>* skipped = nullptr);

// Does `object` answer to `symbol` (the raw name, the demangled name, or
// the demangled name's last component after "::")?
bool symbol_matches(const DataObject& object, std::string_view symbol);

class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  // Fills `out` from the target's memory at `addr`; fails on a short read.
  virtual Result<void> read(pid_t pid, uint64_t addr, std::span<uint8_t> out) = 0;
};

class ProcessVmReader final : public MemoryReader {
 public:
  Result<void> read(pid_t pid, uint64_t addr, std::span<uint8_t> out) override;
};

struct HeatOptions {
  uint32_t snapshots = 5;  // compared pairwise: snapshots - 1 chances to change
  std::chrono::milliseconds interval{3};
  uint64_t max_bytes = 8 << 20;         // per snapshot; objects past it are not scanned
  uint64_t max_lines_per_object = 256;  // a huge array is sampled from its start
};

// Lines of `objects` (at most max_lines_per_object each), with the number of
// snapshot pairs in which the line's bytes changed. `sleep` waits between
// snapshots (the real one sleeps; tests advance a fake clock).
std::map<uint64_t, uint32_t> line_heat(pid_t pid, std::span<const DataObject> objects, MemoryReader& reader,
                                       const HeatOptions& options,
                                       const std::function<void(std::chrono::milliseconds)>& sleep);

// The rotation order: lines that changed (most changes first), then the
// unchanged lines of the main executable in address order. Lines of other
// modules that never changed are left out.
std::vector<uint64_t> rotation_order(std::span<const DataObject> objects, const std::map<uint64_t, uint32_t>& heat,
                                     uint64_t max_lines_per_object = 256);

}  // namespace syncscope::collectors
