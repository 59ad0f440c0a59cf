// One Go executable, opened once: what to probe in it and how to read its
// goroutines, stripped binaries included.
//
//   auto bin = TRY(GoBinary::open("/usr/bin/api"));
//   auto fn = TRY(bin.resolve_first_of({"internal/sync.(*Mutex).lockSlow",   // Go >= 1.24
//                                       "sync.(*Mutex).lockSlow"}));
//   uint64_t uprobe_offset = TRY(bin.file_offset(fn.entry));
//   uint32_t goid_offset = TRY(bin.runtime_offsets()).g_goid;
//
// Where each answer comes from, best source first:
//   version    .go.buildinfo (section, or searched for in writable data) →
//              the runtime.buildVersion string → a scan of data for a Go
//              string header pointing at "go1.N[.P]"
//   functions  .symtab (Go keeps it unless stripped) → .gopclntab
//   pclntab    the .gopclntab / .data.rel.ro.gopclntab section →
//              runtime.pclntab..runtime.epclntab symbols → a scan of
//              read-only data for the header magic, validated by a full parse
//   offsets    DWARF (libdw) → the per-version table (offsets.h)
//   waitReason names: runtime.waitReasonStrings (symbol, or found by its
//              first entries "", "GC assist marking", "IO wait") → table
// The file is read with libelf (mmap); the Go tables are parsed by the pure
// parsers in buildinfo.h and pclntab.h.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/core/result.h"
#include "probes/go/buildinfo.h"
#include "probes/go/byte_view.h"
#include "probes/go/offsets.h"
#include "probes/go/pclntab.h"

namespace syncscope::probes::go {

struct Symbolized {
  std::string function;  // "main.contendMutex"; empty when no function holds the pc
  uint64_t entry = 0;    // the function's entry address
  std::string file;      // empty when the table has no line for the pc
  int line = 0;
};

enum class FunctionSource { symtab, pclntab };

class GoBinary {
 public:
  // Fails when the file is not a readable ELF file or not a Go binary (no Go
  // build ID note, buildinfo or pclntab), or its pclntab cannot be parsed.
  static Result<GoBinary> open(const std::string& path);

  GoBinary(GoBinary&&) noexcept;
  GoBinary& operator=(GoBinary&&) noexcept;
  ~GoBinary();

  const std::string& path() const { return path_; }
  // nullopt when the binary carries no readable version (then offsets come
  // from DWARF only).
  const std::optional<GoVersion>& version() const { return version_; }
  // Parsed .go.buildinfo, when the binary has one.
  const std::optional<BuildInfo>& build_info() const { return build_info_; }
  const std::string& build_id() const { return build_id_; }
  bool has_symtab() const { return has_symtab_; }
  bool has_dwarf() const { return has_dwarf_; }
  bool position_independent() const { return pie_; }
  // How the pclntab was found: "section .gopclntab", "symbols runtime.pclntab",
  // "scan of .data.rel.ro", …
  const std::string& pclntab_origin() const { return pclntab_origin_; }

  const PclnTable& pclntab() const { return pclntab_; }
  FunctionSource function_source() const { return has_symtab_ ? FunctionSource::symtab : FunctionSource::pclntab; }
  // Every function, sorted by entry: from .symtab when present (exact sizes,
  // assembly functions included), else from the pclntab.
  const std::vector<GoFunction>& functions() const;
  std::optional<GoFunction> find_function(std::string_view name) const;
  // The first of `names` the binary has: spell a function as it is named
  // across Go versions, newest first ("internal/sync.(*Mutex).lockSlow",
  // "sync.(*Mutex).lockSlow"). The error lists every name tried.
  Result<GoFunction> resolve_first_of(std::initializer_list<std::string_view> names) const;
  Result<GoFunction> resolve_first_of(const std::vector<std::string>& names) const;

  // File offset of a virtual address, through the PT_LOAD segment that maps
  // it: what uprobe attachment wants.
  Result<uint64_t> file_offset(uint64_t vaddr) const;
  // pc → function, file and line (via the pclntab, also on stripped binaries).
  Result<Symbolized> symbolize(uint64_t pc) const;

  // The offsets of runtime.g and runtime.m fields (DWARF, else the table for
  // version()). Computed at open; an error when neither source has them.
  Result<RuntimeOffsets> runtime_offsets() const;
  // Address of a data symbol (.symtab, else DWARF), e.g. "runtime.allgs".
  std::optional<uint64_t> symbol_address(std::string_view name) const;
  std::optional<uint64_t> allgs_address() const { return symbol_address("runtime.allgs"); }
  std::optional<uint64_t> allglen_address() const { return symbol_address("runtime.allglen"); }

  // waitReason value → name ("chan receive") and class. Names come from the
  // binary's runtime.waitReasonStrings when found, else from the version
  // table; "" for an unknown value.
  const std::vector<std::string>& wait_reason_names() const { return wait_reasons_; }
  bool wait_reasons_from_binary() const { return wait_reasons_from_binary_; }
  std::string_view wait_reason(uint8_t value) const;
  WaitClass wait_class(uint8_t value) const { return classify_wait_reason(wait_reason(value)); }

 private:
  struct Image;  // the mapped ELF file: segments, sections, symbols, relocations
  GoBinary();

  Result<void> load_pclntab();
  void load_version();
  void load_offsets();
  void load_wait_reasons();

  std::string path_;
  std::unique_ptr<Image> image_;
  std::optional<GoVersion> version_;
  std::optional<BuildInfo> build_info_;
  std::string build_id_;
  bool has_symtab_ = false;
  bool has_dwarf_ = false;
  bool pie_ = false;
  PclnTable pclntab_;
  std::string pclntab_origin_;
  std::vector<GoFunction> symtab_functions_;
  std::unordered_map<std::string, size_t> symtab_function_index_;
  std::optional<RuntimeOffsets> offsets_;
  std::optional<Error> offsets_error_;
  std::unordered_map<std::string, uint64_t> dwarf_variables_;
  std::vector<std::string> wait_reasons_;
  bool wait_reasons_from_binary_ = false;
};

// Scans `data` (loaded at `base`) for runtime.waitReasonStrings: an array of
// Go string headers whose first entries are "", "GC assist marking",
// "IO wait", stable since Go 1.11. Reads entries until one is not a short
// printable string. Pure, for tests; GoBinary calls it per data section.
std::vector<std::string> find_wait_reason_strings(std::span<const std::byte> data, uint64_t base,
                                                  const AddressSpace& image);

}  // namespace syncscope::probes::go
