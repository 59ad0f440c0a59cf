// One ELF file, opened read-only: symbols, sections, segments and build-id.
//
// ElfFile is the ground truth for every "where does the probe go" decision:
// uprobes want the FILE OFFSET of an instruction (libbpf's
// bpf_program__attach_uprobe_opts func_offset), symbol tables speak in virtual
// addresses, and /proc/PID/maps speaks in run-time addresses plus file offsets;
// the PT_LOAD program headers convert between them. Symbols come from .symtab
// and .dynsym (versioned names such as "pthread_mutex_lock@@GLIBC_2.2.5" are
// split into name and version), and lookups work by name or by address
// (function containing a code address, object containing a data address). A
// stripped binary is paired with its separate debug file through the GNU
// build-id (/usr/lib/debug/.build-id/xx/yyyy.debug) or .gnu_debuglink. Files
// come from processes we do not control, so every offset read from the file is
// bounds-checked and every error names the file. An ElfFile is immutable after
// open(), so its const methods are safe to call from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <libelf.h>

#include "agent/core/fd.h"
#include "agent/core/result.h"

namespace syncscope::probes {

inline constexpr std::string_view kDefaultDebugRoot = "/usr/lib/debug";

enum class ElfType : uint8_t { relocatable, executable, shared, core, other };
enum class SymbolType : uint8_t { notype, object, func, gnu_ifunc, tls, common, other };
enum class SymbolBinding : uint8_t { local, global, weak, gnu_unique, other };
enum class SymbolTable : uint8_t { symtab, dynsym };

std::string_view to_string(SymbolType type);
std::string_view to_string(SymbolBinding binding);

struct Symbol {
  std::string name;              // without the version suffix
  std::string version;           // "GLIBC_2.2.5"; empty when unversioned
  bool default_version = true;   // "@@VER" or unversioned; false for "@VER" (compat)
  uint64_t value = 0;            // a vaddr in executables and shared objects
  uint64_t size = 0;
  SymbolType type = SymbolType::notype;
  SymbolBinding binding = SymbolBinding::local;
  uint32_t section_index = 0;
  std::string section_name;
  SymbolTable table = SymbolTable::symtab;

  // "name@@VER", "name@VER" or "name".
  std::string full_name() const;
  bool contains(uint64_t vaddr) const { return vaddr >= value && vaddr - value < size; }
};

// A symbol found by address. `exact` is false when the symbol has no size and
// was only the nearest one before the address (a guess).
struct SymbolMatch {
  const Symbol* symbol = nullptr;
  uint64_t offset = 0;
  bool exact = true;
};

struct Section {
  std::string name;
  uint32_t index = 0;
  uint32_t type = 0;    // SHT_*
  uint64_t flags = 0;   // SHF_*
  uint64_t vaddr = 0;   // sh_addr; 0 for sections that are not loaded
  uint64_t offset = 0;  // sh_offset
  uint64_t size = 0;
  // False for SHT_NOBITS (.bss, and every code section of a debug file).
  bool has_file_bytes() const;
  bool executable() const;
  bool writable() const;
};

struct LoadSegment {
  uint64_t vaddr = 0;
  uint64_t offset = 0;
  uint64_t file_size = 0;
  uint64_t mem_size = 0;
  uint32_t flags = 0;  // PF_R | PF_W | PF_X
  uint64_t align = 0;
  bool executable() const;
  bool writable() const;
};

struct DebugLink {
  std::string name;
  uint32_t crc = 0;
};

class ElfFile {
 public:
  static Result<std::unique_ptr<ElfFile>> open(const std::string& path);
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::string& path() const { return path_; }
  ElfType type() const { return type_; }
  // ET_DYN: a shared object or a PIE executable, loaded at a random bias.
  bool position_independent() const { return type_ == ElfType::shared; }
  uint16_t machine() const { return machine_; }
  uint64_t file_size() const { return bytes_.size(); }

  // Lower-case hex of NT_GNU_BUILD_ID; empty when the file has none.
  const std::string& build_id() const { return build_id_; }
  const std::optional<DebugLink>& debuglink() const { return debuglink_; }
  // The separate debug file: by build-id under `debug_root`/.build-id, else by
  // .gnu_debuglink next to the file, in its .debug/ and under `debug_root`
  // (the debuglink candidate must match the recorded CRC32).
  Result<std::string> debug_file_path(std::string_view debug_root = kDefaultDebugRoot) const;
  // Opens debug_file_path() and checks that its build-id matches ours.
  Result<std::unique_ptr<ElfFile>> open_debug_file(std::string_view debug_root = kDefaultDebugRoot) const;

  bool has_symtab() const { return has_symtab_; }
  std::span<const Symbol> symbols() const { return symbols_; }
  // Best definition of `name`: "foo", "foo@@VER" or "foo@VER". Prefers the
  // default version, then .symtab over .dynsym, then GLOBAL over WEAK over LOCAL.
  const Symbol* find_symbol(std::string_view name) const;
  std::vector<const Symbol*> find_symbols(std::string_view name) const;
  // The function (FUNC, IFUNC, or sized NOTYPE in code) containing `vaddr`.
  std::optional<SymbolMatch> function_at(uint64_t vaddr) const;
  // The sized data object (OBJECT) containing `vaddr`.
  std::optional<SymbolMatch> object_at(uint64_t vaddr) const;
  // Sized OBJECT symbols in writable, loaded, non-TLS sections outside
  // PT_GNU_RELRO (.data, .bss and friends), by address, one per address.
  std::vector<const Symbol*> data_objects() const;

  std::span<const LoadSegment> load_segments() const { return segments_; }
  // The file offset holding `vaddr`, or an error when no PT_LOAD has file
  // bytes there (.bss, or any address of a separate debug file).
  Result<uint64_t> vaddr_to_offset(uint64_t vaddr) const;
  Result<uint64_t> offset_to_vaddr(uint64_t offset) const;
  // The PT_LOAD whose page-rounded file range holds `offset` (what mmap maps
  // for a /proc/PID/maps line starting at that offset).
  const LoadSegment* segment_for_map_offset(uint64_t offset) const;

  std::span<const Section> sections() const { return sections_; }
  const Section* section(std::string_view name) const;
  Result<std::span<const uint8_t>> section_bytes(const Section& section) const;
  // `size` bytes of file content at `vaddr`; fails past a segment's file size.
  Result<std::span<const uint8_t>> read(uint64_t vaddr, uint64_t size) const;

 private:
  ElfFile() = default;
  Result<void> load(const std::string& path);
  Result<void> load_program_headers();
  Result<void> load_sections();
  Result<void> load_symbols();
  void load_notes();
  void build_indexes();
  Error error(std::string_view what) const;
  const Section* section_at(uint64_t vaddr) const;

  struct AddressIndex {
    std::vector<uint32_t> by_start;  // symbol indexes sorted by value
    std::vector<uint64_t> max_end;   // prefix maximum of value + size
  };
  std::optional<SymbolMatch> lookup(const AddressIndex& index, uint64_t vaddr, bool allow_unsized) const;

  std::string path_;
  Fd fd_;
  CHandle<Elf, elf_end> elf_;  // declared after fd_: ends before the fd closes
  std::span<const uint8_t> bytes_;
  ElfType type_ = ElfType::other;
  uint16_t machine_ = 0;
  bool has_symtab_ = false;
  std::string build_id_;
  std::optional<DebugLink> debuglink_;
  std::vector<LoadSegment> segments_;
  std::optional<LoadSegment> relro_;
  std::vector<Section> sections_;
  std::vector<Symbol> symbols_;
  std::unordered_multimap<std::string_view, uint32_t> by_name_;
  AddressIndex functions_;
  AddressIndex objects_;
};

// /usr/lib/debug/.build-id/93/ac61….debug for build-id "93ac61…".
std::string build_id_debug_path(std::string_view build_id, std::string_view debug_root = kDefaultDebugRoot);
// The CRC32 .gnu_debuglink records (the zlib polynomial) of a whole file.
Result<uint32_t> debuglink_crc32(const std::string& path);

}  // namespace syncscope::probes
