#include "probes/go/pclntab.h"

#include <algorithm>

#include "agent/core/format.h"
#include "probes/go/byte_view.h"

namespace syncscope::probes::go {
namespace {

constexpr uint32_t kMagic12 = 0xfffffffb;   // Go 1.2–1.15
constexpr uint32_t kMagic116 = 0xfffffffa;  // Go 1.16–1.17
constexpr uint32_t kMagic118 = 0xfffffff0;  // Go 1.18–1.19
constexpr uint32_t kMagic120 = 0xfffffff1;  // Go 1.20–1.26
// No function name in a real binary comes near this; a longer run without a
// NUL means the offset is corrupt.
constexpr size_t kMaxNameLength = 64 * 1024;
constexpr uint32_t kNoFile = 0xffffffff;

std::optional<PclnVersion> version_of(uint32_t magic) {
  switch (magic) {
    case kMagic116: return PclnVersion::go116;
    case kMagic118: return PclnVersion::go118;
    case kMagic120: return PclnVersion::go120;
    default: return std::nullopt;
  }
}

// Offsets of the _func fields read here, per table version. In 1.16 the
// record starts with a pointer-sized entry; from 1.18 with a u32 entryoff.
// The fields after it (nameoff, args, deferreturn, pcsp, pcfile, pcln,
// npcdata, cuOffset) are u32 in every version.
struct FuncLayout {
  uint64_t entry_size;
  uint64_t nameoff() const { return entry_size; }
  uint64_t pcsp() const { return entry_size + 12; }
  uint64_t pcfile() const { return entry_size + 16; }
  uint64_t pcln() const { return entry_size + 20; }
  uint64_t cu_offset() const { return entry_size + 28; }
  // funcID follows cuOffset, after the i32 startLine from 1.20 on.
  uint64_t func_id(bool has_start_line) const { return entry_size + 32 + (has_start_line ? 4 : 0); }
  uint64_t min_size() const { return entry_size + 32; }
};

}  // namespace

std::string_view pcln_version_range(PclnVersion version) {
  switch (version) {
    case PclnVersion::go116: return "1.16-1.17";
    case PclnVersion::go118: return "1.18-1.19";
    case PclnVersion::go120: return "1.20+";
  }
  return "?";
}

Result<PclnHeader> parse_pclntab_header(std::span<const std::byte> data) {
  ByteView le(data, false);
  ByteView be(data, true);
  auto magic_le = le.u32(0);
  if (!magic_le || data.size() < 8) return fail("pclntab: shorter than its header");
  PclnHeader h;
  if (version_of(*magic_le)) {
    h.magic = *magic_le;
  } else if (version_of(*be.u32(0))) {
    h.magic = *be.u32(0);
    h.big_endian = true;
  } else if (*magic_le == kMagic12 || *be.u32(0) == kMagic12) {
    return fail("pclntab: Go 1.2-1.15 table format (magic 0xfffffffb) is not supported; need Go >= 1.16");
  } else {
    return fail(fmt::format("pclntab: unknown magic {:#010x}", *magic_le));
  }
  h.version = *version_of(h.magic);
  const ByteView& view = h.big_endian ? be : le;
  if (*view.u8(4) != 0 || *view.u8(5) != 0) return fail("pclntab: header pad bytes are not zero");
  h.quantum = *view.u8(6);
  h.ptr_size = *view.u8(7);
  if (h.quantum != 1 && h.quantum != 2 && h.quantum != 4) return fail(fmt::format("pclntab: pc quantum {} is not 1, 2 or 4", h.quantum));
  if (h.ptr_size != 4 && h.ptr_size != 8) return fail(fmt::format("pclntab: pointer size {} is not 4 or 8", h.ptr_size));

  const bool has_text_start = h.version != PclnVersion::go116;
  const unsigned words = has_text_start ? 8 : 7;
  h.header_size = 8 + words * h.ptr_size;
  if (!view.contains(0, h.header_size)) return fail("pclntab: header truncated");
  auto word = [&](unsigned i) { return *view.word(8 + i * h.ptr_size, h.ptr_size); };
  unsigned i = 0;
  h.nfunc = word(i++);
  h.nfiles = word(i++);
  if (has_text_start) h.text_start = word(i++);
  h.funcname_offset = word(i++);
  h.cu_offset = word(i++);
  h.filetab_offset = word(i++);
  h.pctab_offset = word(i++);
  h.pcln_offset = word(i++);

  // The linker lays the tables out in this order right after the header.
  const uint64_t size = data.size();
  if (!(h.header_size <= h.funcname_offset && h.funcname_offset <= h.cu_offset && h.cu_offset <= h.filetab_offset &&
        h.filetab_offset <= h.pctab_offset && h.pctab_offset <= h.pcln_offset && h.pcln_offset < size)) {
    return fail("pclntab: table offsets out of order or out of bounds");
  }
  if (h.nfunc == 0) return fail("pclntab: no functions");
  const uint64_t entry_size = has_text_start ? 4 : h.ptr_size;
  // (2 * nfunc + 1) entries must fit after pclnOffset; divide first so a
  // hostile nfunc cannot overflow the product.
  if (h.nfunc > (size - h.pcln_offset) / (2 * entry_size)) return fail(fmt::format("pclntab: {} functions do not fit", h.nfunc));
  if (!view.contains(h.pcln_offset, (2 * h.nfunc + 1) * entry_size)) return fail("pclntab: function table truncated");
  return h;
}

Result<PclnTable> PclnTable::parse(std::span<const std::byte> data, const Options& options) {
  PclnTable table;
  table.header_ = TRY(parse_pclntab_header(data));
  table.data_ = std::make_shared<const std::vector<std::byte>>(data.begin(), data.end());
  if (table.header_.version != PclnVersion::go116) {
    table.text_start_ = table.header_.text_start != 0 ? table.header_.text_start : options.text_start.value_or(0);
    if (table.text_start_ == 0) {
      return fail("pclntab: header has no text start (Go 1.26+ or unrelocated PIE) and none was given");
    }
  }
  TRY(table.load_functions());
  return table;
}

Result<void> PclnTable::load_functions() {
  const PclnHeader& h = header_;
  ByteView view(*data_, h.big_endian);
  const bool relative = h.version != PclnVersion::go116;
  const uint64_t entry_size = relative ? 4 : h.ptr_size;
  FuncLayout layout{entry_size};
  const bool has_start_line = h.version == PclnVersion::go120;
  const uint64_t min_record = layout.min_size() + (has_start_line ? 4 : 0) + 1;

  auto functab_word = [&](uint64_t index) -> uint64_t {
    // parse_pclntab_header proved the whole functab is in bounds.
    return relative ? *view.u32(h.pcln_offset + index * 4) : *view.word(h.pcln_offset + index * entry_size, h.ptr_size);
  };
  auto to_address = [&](uint64_t raw) { return relative ? text_start_ + raw : raw; };

  functions_.reserve(h.nfunc);
  records_.reserve(h.nfunc);
  uint64_t previous_entry = 0;
  for (uint64_t i = 0; i < h.nfunc; ++i) {
    const uint64_t raw_entry = functab_word(2 * i);
    const uint64_t func_off = functab_word(2 * i + 1);
    const uint64_t raw_next = functab_word(2 * i + 2);
    const uint64_t entry = to_address(raw_entry);
    const uint64_t next = to_address(raw_next);
    if (entry < previous_entry || next < entry) {
      return fail(fmt::format("pclntab: function {} at {:#x} is out of address order", i, entry));
    }
    previous_entry = entry;

    FuncRecord rec;
    rec.func_offset = h.pcln_offset + func_off;
    if (func_off > view.size() || !view.contains(rec.func_offset, min_record)) {
      return fail(fmt::format("pclntab: function {} record offset {:#x} out of bounds", i, func_off));
    }
    // The record repeats its entry; a mismatch means we are not reading a
    // function table (a false positive of the stripped-binary scan) or it is corrupt.
    const uint64_t record_entry = relative ? *view.u32(rec.func_offset) : *view.word(rec.func_offset, h.ptr_size);
    if (record_entry != raw_entry) return fail(fmt::format("pclntab: function {} record disagrees with functab", i));
    const uint32_t nameoff = *view.u32(rec.func_offset + layout.nameoff());
    auto name = view.c_string(h.funcname_offset + nameoff, kMaxNameLength);
    if (!name || h.funcname_offset + nameoff >= h.cu_offset) {
      return fail(fmt::format("pclntab: function {} name offset {:#x} out of bounds", i, nameoff));
    }
    rec.pcsp = *view.u32(rec.func_offset + layout.pcsp());
    rec.pcfile = *view.u32(rec.func_offset + layout.pcfile());
    rec.pcln = *view.u32(rec.func_offset + layout.pcln());
    rec.cu_index = *view.u32(rec.func_offset + layout.cu_offset());
    rec.func_id = *view.u8(rec.func_offset + layout.func_id(has_start_line));
    rec.next_entry = next;

    GoFunction fn;
    fn.name = std::string(*name);
    fn.entry = entry;
    // The pcsp table covers exactly the function's instructions; the range
    // to the next entry may include alignment padding.
    fn.end = next;
    if (auto end = table_end_pc(rec.pcsp, entry, next)) fn.end = *end;
    functions_.push_back(std::move(fn));
    records_.push_back(rec);
  }

  by_name_.resize(functions_.size());
  for (uint32_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
  // Ties keep address order (the index), so equal names are deterministic.
  std::sort(by_name_.begin(), by_name_.end(), [&](uint32_t a, uint32_t b) {
    const int by_name = functions_[a].name.compare(functions_[b].name);
    return by_name != 0 ? by_name < 0 : a < b;
  });
  // A name shared by a function and its ABI wrapper means, as in .symtab,
  // the ABIInternal one: the Go function rather than its ABI0 wrapper
  // (funcID "wrapper"), but for an assembly function (ABI0, a .s file) the
  // ABIInternal wrapper Go code calls.
  auto rank = [&](uint32_t index) {
    auto where = source_line(functions_[index].entry);
    if (where && where->file.ends_with(".s")) return 2;
    return records_[index].func_id != 0 ? 1 : 0;
  };
  for (size_t i = 0; i < by_name_.size();) {
    size_t j = i + 1;
    while (j < by_name_.size() && functions_[by_name_[j]].name == functions_[by_name_[i]].name) ++j;
    if (j - i > 1) {
      std::sort(by_name_.begin() + static_cast<std::ptrdiff_t>(i), by_name_.begin() + static_cast<std::ptrdiff_t>(j),
                [&](uint32_t a, uint32_t b) { return std::pair(rank(a), a) < std::pair(rank(b), b); });
    }
    i = j;
  }
  return {};
}

// Walks a pc-value table: a sequence of (value delta, pc delta) uvarint
// pairs, the value delta zig-zag encoded, the pc delta in units of the pc
// quantum, starting from value -1 at the function entry; a zero value delta
// after the first pair ends the table. Each value holds from the previous pc
// up to (not including) the new one.
std::optional<int32_t> PclnTable::pc_value(uint32_t table, uint64_t entry, uint64_t target) const {
  if (table == 0) return std::nullopt;
  ByteView view(*data_, header_.big_endian);
  uint64_t offset = header_.pctab_offset + table;
  uint32_t value = static_cast<uint32_t>(-1);
  uint64_t pc = entry;
  // Every step consumes at least two bytes, so the walk ends at the end of
  // the data at the latest.
  for (;;) {
    const bool first = pc == entry;
    auto value_delta = view.uvarint(&offset, 5);
    if (!value_delta) return std::nullopt;
    const auto uv = static_cast<uint32_t>(*value_delta);
    if (uv == 0 && !first) return std::nullopt;
    auto pc_delta = view.uvarint(&offset, 5);
    if (!pc_delta) return std::nullopt;
    const uint32_t vdelta = (uv & 1) ? ~(uv >> 1) : (uv >> 1);
    pc += static_cast<uint64_t>(static_cast<uint32_t>(*pc_delta)) * header_.quantum;
    value += vdelta;  // unsigned: wraps like the runtime's int32 arithmetic, without UB
    if (target < pc) return static_cast<int32_t>(value);
  }
}

// The pc at which a table ends (the end of the code it describes), or
// nullopt when it does not end cleanly before `limit`.
std::optional<uint64_t> PclnTable::table_end_pc(uint32_t table, uint64_t entry, uint64_t limit) const {
  if (table == 0) return std::nullopt;
  ByteView view(*data_, header_.big_endian);
  uint64_t offset = header_.pctab_offset + table;
  uint64_t pc = entry;
  for (;;) {
    const bool first = pc == entry;
    auto value_delta = view.uvarint(&offset, 5);
    if (!value_delta) return std::nullopt;
    if (static_cast<uint32_t>(*value_delta) == 0 && !first) break;
    auto pc_delta = view.uvarint(&offset, 5);
    if (!pc_delta) return std::nullopt;
    pc += static_cast<uint64_t>(static_cast<uint32_t>(*pc_delta)) * header_.quantum;
    if (pc > limit) return std::nullopt;
  }
  if (pc == entry) return std::nullopt;
  return pc;
}

std::optional<size_t> PclnTable::index_for_pc(uint64_t pc) const {
  auto it = std::upper_bound(functions_.begin(), functions_.end(), pc,
                             [](uint64_t value, const GoFunction& fn) { return value < fn.entry; });
  if (it == functions_.begin()) return std::nullopt;
  const size_t index = static_cast<size_t>(it - functions_.begin()) - 1;
  if (pc >= records_[index].next_entry) return std::nullopt;
  return index;
}

const GoFunction* PclnTable::find_function(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](uint32_t index, std::string_view value) { return functions_[index].name < value; });
  if (it == by_name_.end() || functions_[*it].name != name) return nullptr;
  return &functions_[*it];
}

const GoFunction* PclnTable::function_for_pc(uint64_t pc) const {
  auto index = index_for_pc(pc);
  return index ? &functions_[*index] : nullptr;
}

Result<SourceLine> PclnTable::source_line(uint64_t pc) const {
  auto index = index_for_pc(pc);
  if (!index) return fail(fmt::format("pclntab: no function contains pc {:#x}", pc));
  const GoFunction& fn = functions_[*index];
  const FuncRecord& rec = records_[*index];
  auto file_index = pc_value(rec.pcfile, fn.entry, pc);
  auto line = pc_value(rec.pcln, fn.entry, pc);
  if (!file_index || !line || *file_index < 0) {
    return fail(fmt::format("pclntab: no line information for pc {:#x} in {}", pc, fn.name));
  }
  ByteView view(*data_, header_.big_endian);
  // cutab maps (compilation unit, file index) to an offset in filetab.
  const uint64_t cu_slot = static_cast<uint64_t>(rec.cu_index) + static_cast<uint64_t>(*file_index);
  const uint64_t slot_offset = header_.cu_offset + cu_slot * 4;
  auto file_offset = slot_offset + 4 <= header_.filetab_offset ? view.u32(slot_offset) : std::nullopt;
  if (!file_offset || *file_offset == kNoFile) {
    return fail(fmt::format("pclntab: file index {} of {} is out of range", *file_index, fn.name));
  }
  auto file = view.c_string(header_.filetab_offset + *file_offset, kMaxNameLength);
  if (!file) return fail(fmt::format("pclntab: file name of {} out of bounds", fn.name));
  return SourceLine{std::string(*file), *line};
}

std::vector<size_t> find_pclntab_candidates(std::span<const std::byte> data) {
  std::vector<size_t> found;
  ByteView le(data, false);
  ByteView be(data, true);
  for (size_t offset = 0; offset + 8 <= data.size(); offset += 4) {
    const uint32_t m_le = *le.u32(offset);
    const uint32_t m_be = *be.u32(offset);
    if (!version_of(m_le) && !version_of(m_be)) continue;
    if (parse_pclntab_header(data.subspan(offset))) found.push_back(offset);
  }
  return found;
}

}  // namespace syncscope::probes::go
