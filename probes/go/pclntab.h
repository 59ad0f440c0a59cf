// A reader for Go's `.gopclntab`: the function table the Go runtime itself
// uses for tracebacks, present in every Go binary, stripped ones included.
//
// Layout (all offsets relative to the start of the table):
//   header   magic u32, 0, 0, pc quantum u8, pointer size u8, then
//            pointer-sized words: nfunc, nfiles, [textStart,] funcnameOffset,
//            cuOffset, filetabOffset, pctabOffset, pclnOffset
//   funcnametab  NUL-terminated function names
//   cutab        u32 per (compilation unit, file): offset into filetab
//   filetab      NUL-terminated file names
//   pctab        varint-delta encoded pc→value tables (pcsp, pcfile, pcln)
//   functab      at pclnOffset: nfunc (entry, funcoff) pairs and a final
//                end pc, then the _func records at pclnOffset + funcoff
//
// Versions handled (magic → what differs):
//   0xfffffffa  Go 1.16–1.17  no textStart word; functab entries and
//                             _func.entry are absolute pointer-sized addresses
//   0xfffffff0  Go 1.18–1.19  textStart word added; functab holds u32
//                             (entryoff, funcoff) relative to textStart;
//                             _func starts with u32 entryoff
//   0xfffffff1  Go 1.20–1.26  as 1.18 for everything read here; _func gains
//                             startLine after cuOffset (funcID/flag moved),
//                             funcdata became u32 offsets (not read here).
//                             Go 1.26 writes 0 in textStart (measured on a
//                             go1.26.5 binary): the caller passes the text
//                             start from moduledata or runtime.text instead.
//   0xfffffffb  Go 1.2–1.15   rejected with an error naming the version.
// No new magic appeared through Go 1.26 (internal/abi CurrentPCLnTabMagic is
// still the 1.20 one).
//
// Every read is bounds-checked: this parses files the agent does not control.
// The parser owns (shares) a copy of the bytes, so it outlives the file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"

namespace syncscope::probes::go {

enum class PclnVersion { go116, go118, go120 };

// "1.16-1.17", "1.18-1.19", "1.20+"
std::string_view pcln_version_range(PclnVersion version);

struct PclnHeader {
  uint32_t magic = 0;
  PclnVersion version = PclnVersion::go120;
  bool big_endian = false;
  uint8_t quantum = 0;   // instruction size unit: 1 on x86, 4 on arm64
  uint8_t ptr_size = 0;  // 4 or 8
  uint64_t nfunc = 0;
  uint64_t nfiles = 0;
  uint64_t text_start = 0;  // 0 for 1.16 tables and Go 1.26+ binaries
  uint64_t funcname_offset = 0;
  uint64_t cu_offset = 0;
  uint64_t filetab_offset = 0;
  uint64_t pctab_offset = 0;
  uint64_t pcln_offset = 0;
  size_t header_size = 0;
};

// Parses and sanity-checks only the header: known magic (either byte order),
// zero pad bytes, quantum 1/2/4, pointer size 4/8, every table offset after
// the header and inside `data`, in the order the linker writes them, and a
// functab that fits. Cheap: the stripped-binary scan calls it at every
// candidate magic.
Result<PclnHeader> parse_pclntab_header(std::span<const std::byte> data);

struct GoFunction {
  std::string name;    // "sync.(*Mutex).lockSlow"
  uint64_t entry = 0;  // virtual address of the first instruction
  uint64_t end = 0;    // one past the last instruction of the function's code
};

struct SourceLine {
  std::string file;  // absolute path as recorded at build time (or trimmed with -trimpath)
  int line = 0;
};

class PclnTable {
 public:
  struct Options {
    // The address functab entry offsets are relative to (moduledata.text,
    // the runtime.text symbol). Needed when the header's word is 0 (Go 1.26+)
    // or was left for a relocation to fill in; ignored for 1.16 tables.
    std::optional<uint64_t> text_start;
  };

  static Result<PclnTable> parse(std::span<const std::byte> data, const Options& options);
  static Result<PclnTable> parse(std::span<const std::byte> data) { return parse(data, Options{}); }

  const PclnHeader& header() const { return header_; }
  uint64_t text_start() const { return text_start_; }
  // Sorted by entry address.
  const std::vector<GoFunction>& functions() const { return functions_; }

  // Exact name match; nullptr when absent. A name can appear twice: Go's
  // ABI0 wrapper of a function carries the function's name in the pclntab
  // (".abi0" only in .symtab). As in .symtab, the name means the ABIInternal
  // one: the Go function rather than its ABI0 wrapper, but the wrapper of an
  // assembly function.
  const GoFunction* find_function(std::string_view name) const;
  // The function whose [entry, next entry) range holds pc (padding after a
  // function belongs to it, as in the Go runtime); nullptr outside the table.
  const GoFunction* function_for_pc(uint64_t pc) const;
  // File and line of the instruction at pc, from the function's pcfile and
  // pcln tables. For inlined code this is the innermost (inlined) position.
  Result<SourceLine> source_line(uint64_t pc) const;

 private:
  struct FuncRecord {
    uint64_t func_offset = 0;  // of the _func record, from the table start
    uint32_t pcsp = 0;
    uint32_t pcfile = 0;
    uint32_t pcln = 0;
    uint32_t cu_index = 0;
    uint8_t func_id = 0;      // non-zero for ABI wrappers and special runtime functions
    uint64_t next_entry = 0;  // functab's next entry (the end of the range)
  };

  Result<void> load_functions();
  std::optional<int32_t> pc_value(uint32_t table, uint64_t entry, uint64_t target) const;
  std::optional<uint64_t> table_end_pc(uint32_t table, uint64_t entry, uint64_t limit) const;
  std::optional<size_t> index_for_pc(uint64_t pc) const;

  std::shared_ptr<const std::vector<std::byte>> data_;
  PclnHeader header_;
  uint64_t text_start_ = 0;
  std::vector<GoFunction> functions_;
  std::vector<FuncRecord> records_;       // parallel to functions_
  std::vector<uint32_t> by_name_;         // indices into functions_, sorted by name
};

// Offsets in `data` where a pclntab starts, for binaries whose section
// headers do not name it (external linking and PIE put it in .data.rel.ro;
// stripping removes runtime.pclntab). A candidate needs a known magic at a
// 4-byte aligned offset and a header that passes parse_pclntab_header; the
// caller confirms with a full parse.
std::vector<size_t> find_pclntab_candidates(std::span<const std::byte> data);

}  // namespace syncscope::probes::go
