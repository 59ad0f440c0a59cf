// /proc/PID/maps: which file (or heap, stack, anonymous memory) backs an address.
//
// A run-time address from a stack or a sampled data address becomes a
// file-relative ELF vaddr in two steps: the mapping gives the file offset
// (addr - start + offset), and the ElfFile's PT_LOAD headers turn the offset
// into a vaddr. For code and .data that is exact; the part of .bss past the
// file's last page is an anonymous mapping right after the file's last one, so
// data lookups compute the module's load bias instead and check it against the
// segments' memory size. Paths are the ones the process sees; open them from
// the agent through host_path() (/proc/PID/root/…, or /proc/PID/map_files/…
// for deleted files), which also works for processes in other mount
// namespaces. A process that has exited yields an Error with errno ESRCH.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "probes/elf_file.h"

namespace syncscope::probes {

enum class MappingKind : uint8_t {
  file,       // a path on a filesystem (possibly deleted)
  anonymous,  // no path
  heap,       // [heap]
  stack,      // [stack] (the main thread; [stack:TID] on kernels before 4.5)
  vdso,       // [vdso]
  vvar,       // [vvar]
  vsyscall,   // [vsyscall]
  special,    // any other [name] (e.g. [anon:…] on kernels with anon names)
};

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  bool shared = false;  // 's' (MAP_SHARED) vs 'p'
  uint64_t offset = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uint64_t inode = 0;
  std::string path;     // without the " (deleted)" suffix
  bool deleted = false;
  MappingKind kind = MappingKind::anonymous;

  bool contains(uint64_t addr) const { return addr >= start && addr < end; }
  bool is_file() const { return kind == MappingKind::file; }
  // The file offset backing `addr` (only meaningful for file mappings).
  uint64_t file_offset(uint64_t addr) const { return addr - start + offset; }
};

// Parses the text of a maps file; `origin` names it in errors.
Result<std::vector<Mapping>> parse_maps(std::string_view text, std::string_view origin = "maps");
// Reads /proc/PID/maps (`proc_root` lets tests point elsewhere).
Result<std::vector<Mapping>> read_maps(int pid, std::string_view proc_root = "/proc");

// The mapping containing `addr` (maps are sorted; binary search), or nullptr.
const Mapping* find_mapping(std::span<const Mapping> maps, uint64_t addr);
// Executable mappings backed by files: where uprobes can go.
std::vector<Mapping> executable_file_mappings(std::span<const Mapping> maps);

// The ELF vaddr of `addr`, a run-time address inside file mapping `m` of `elf`.
Result<uint64_t> file_vaddr(const Mapping& m, uint64_t addr, const ElfFile& elf);
// run-time address - ELF vaddr for the module `m` maps (0 for ET_EXEC).
Result<uint64_t> load_bias(const Mapping& m, const ElfFile& elf);

// A path the agent can open for mapping `m` of process `pid`.
std::string host_path(int pid, const Mapping& m, std::string_view proc_root = "/proc");

}  // namespace syncscope::probes
