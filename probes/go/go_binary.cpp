#include "probes/go/go_binary.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>

#include <algorithm>

#include "agent/core/fd.h"
#include "agent/core/format.h"
#include "agent/core/log.h"

namespace syncscope::probes::go {
namespace {

// Relocation types that mean "load bias + addend": how PIE binaries fill in
// the pointers of the Go tables at load time.
constexpr uint32_t kRelativeX86_64 = 8;     // R_X86_64_RELATIVE
constexpr uint32_t kRelativeAarch64 = 1027; // R_AARCH64_RELATIVE
// Field index of moduledata.text, counted in pointer-sized words: pcHeader,
// then six slices (funcnametab, cutab, filetab, pctab, pclntable, ftab) of 3
// words, findfunctab, minpc, maxpc. Unchanged from Go 1.16 to 1.26.
constexpr uint64_t kModuledataTextWord = 1 + 6 * 3 + 3;

struct Segment {
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  uint32_t flags = 0;
};

struct Section {
  std::string name;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t type = 0;
  uint64_t flags = 0;
};

struct Symbol {
  uint64_t value = 0;
  uint64_t size = 0;
  unsigned type = 0;
};

bool is_printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// "go1.21.3", "go1.22rc1", "go1.21.0 X:loopvar": what runtime.buildVersion
// holds. Strict, because the scan that uses it looks at arbitrary strings.
bool looks_like_release_version(std::string_view s) {
  if (!s.starts_with("go1.") || s.size() > 64 || !is_printable(s)) return false;
  auto parsed = parse_go_version(s);
  if (!parsed) return false;
  const std::string canonical = parsed->patch ? fmt::format("go{}.{}.{}", parsed->major, parsed->minor, parsed->patch)
                                              : fmt::format("go{}.{}", parsed->major, parsed->minor);
  if (s == canonical) return true;
  if (!s.starts_with(canonical)) return false;
  std::string_view rest = s.substr(canonical.size());
  if (rest.starts_with(".0")) rest.remove_prefix(2);  // "go1.21.0 X:…" parses as patch 0
  return rest.empty() || rest.starts_with(" X:") || rest.starts_with("rc") || rest.starts_with("beta");
}

}  // namespace

struct GoBinary::Image : AddressSpace {
  Fd fd;
  CHandle<Elf, elf_end> elf;
  std::span<const std::byte> file;
  bool big_endian = false;
  unsigned ptr_size = 8;
  uint16_t elf_type = 0;
  std::vector<Segment> loads;
  std::vector<Section> sections;
  std::unordered_map<std::string, Symbol> symbols;
  bool has_symtab = false;
  std::unordered_map<uint64_t, uint64_t> relative_relocs;

  // Maps the file and indexes its segments, sections, symbols and relative
  // relocations.
  static Result<std::unique_ptr<Image>> map(const std::string& path);

  std::optional<std::span<const std::byte>> read(uint64_t vaddr, uint64_t length) const override {
    for (const auto& seg : loads) {
      if (vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.filesz) continue;
      const uint64_t in_segment = vaddr - seg.vaddr;
      if (length > seg.filesz - in_segment) return std::nullopt;
      return ByteView(file).slice(seg.offset + in_segment, length);
    }
    return std::nullopt;
  }

  std::optional<uint64_t> read_pointer(uint64_t vaddr, unsigned size, bool big) const override {
    auto value = AddressSpace::read_pointer(vaddr, size, big);
    if (value && *value == 0) {
      // An unrelocated PIE word: the dynamic relocation has the value.
      auto reloc = relative_relocs.find(vaddr);
      if (reloc != relative_relocs.end()) return reloc->second;
    }
    return value;
  }

  const Section* section(std::string_view name) const {
    for (const auto& s : sections) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  std::optional<std::span<const std::byte>> section_bytes(const Section& s) const {
    if (s.type == SHT_NOBITS) return std::nullopt;
    return ByteView(file).slice(s.offset, s.size);
  }

  std::optional<uint64_t> symbol(std::string_view name) const {
    auto it = symbols.find(std::string(name));
    if (it == symbols.end()) return std::nullopt;
    return it->second.value;
  }

  // Allocated sections holding data (not code, not .bss), optionally only
  // writable ones: where the Go tables and variables live.
  std::vector<const Section*> data_sections(bool writable_only) const {
    std::vector<const Section*> out;
    for (const auto& s : sections) {
      if (s.type != SHT_PROGBITS || !(s.flags & SHF_ALLOC) || (s.flags & SHF_EXECINSTR)) continue;
      if (writable_only && !(s.flags & SHF_WRITE)) continue;
      out.push_back(&s);
    }
    return out;
  }
};

// Out of line: Image is incomplete in the header.
GoBinary::GoBinary() = default;
GoBinary::GoBinary(GoBinary&&) noexcept = default;
GoBinary& GoBinary::operator=(GoBinary&&) noexcept = default;
GoBinary::~GoBinary() = default;

Result<std::unique_ptr<GoBinary::Image>> GoBinary::Image::map(const std::string& path) {
  auto image = std::make_unique<Image>();
  image->fd = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!image->fd) return fail_errno("open " + path);
  if (elf_version(EV_CURRENT) == EV_NONE) return fail(fmt::format("{}: libelf: {}", path, elf_errmsg(-1)));
  image->elf.reset(elf_begin(image->fd.get(), ELF_C_READ_MMAP, nullptr));
  Elf* elf = image->elf.get();
  if (!elf || elf_kind(elf) != ELF_K_ELF) return fail(fmt::format("{}: not an ELF file", path));
  size_t file_size = 0;
  const char* raw = elf_rawfile(elf, &file_size);
  if (!raw) return fail(fmt::format("{}: cannot map: {}", path, elf_errmsg(-1)));
  image->file = std::span<const std::byte>(reinterpret_cast<const std::byte*>(raw), file_size);

  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf, &ehdr)) return fail(fmt::format("{}: bad ELF header: {}", path, elf_errmsg(-1)));
  image->big_endian = ehdr.e_ident[EI_DATA] == ELFDATA2MSB;
  image->ptr_size = ehdr.e_ident[EI_CLASS] == ELFCLASS32 ? 4 : 8;
  image->elf_type = ehdr.e_type;

  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return fail(fmt::format("{}: bad program headers", path));
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf, static_cast<int>(i), &phdr) || phdr.p_type != PT_LOAD) continue;
    if (phdr.p_offset > file_size || phdr.p_filesz > file_size - phdr.p_offset) continue;
    image->loads.push_back({phdr.p_vaddr, phdr.p_memsz, phdr.p_offset, phdr.p_filesz, phdr.p_flags});
  }

  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) shstrndx = 0;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    const char* name = shstrndx ? elf_strptr(elf, shstrndx, shdr.sh_name) : nullptr;
    image->sections.push_back({name ? name : "", shdr.sh_addr, shdr.sh_offset, shdr.sh_size, shdr.sh_type, shdr.sh_flags});

    if (shdr.sh_type == SHT_SYMTAB) {
      image->has_symtab = true;
      Elf_Data* data = elf_getdata(scn, nullptr);
      const size_t count = shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;
      for (size_t i = 0; data && i < count; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
        const char* sym_name = elf_strptr(elf, shdr.sh_link, sym.st_name);
        if (!sym_name || !*sym_name) continue;
        image->symbols.try_emplace(sym_name, Symbol{sym.st_value, sym.st_size, GELF_ST_TYPE(sym.st_info)});
      }
    } else if (shdr.sh_type == SHT_RELA && ehdr.e_type == ET_DYN) {
      Elf_Data* data = elf_getdata(scn, nullptr);
      const size_t count = shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;
      for (size_t i = 0; data && i < count; ++i) {
        GElf_Rela rela;
        if (!gelf_getrela(data, static_cast<int>(i), &rela)) break;
        const auto type = static_cast<uint32_t>(GELF_R_TYPE(rela.r_info));
        if (type == kRelativeX86_64 || type == kRelativeAarch64) {
          image->relative_relocs[rela.r_offset] = static_cast<uint64_t>(rela.r_addend);
        }
      }
    }
  }
  return image;
}

Result<GoBinary> GoBinary::open(const std::string& path) {
  GoBinary bin;
  bin.path_ = path;
  bin.image_ = TRY(Image::map(path));
  const Image& image = *bin.image_;
  bin.has_symtab_ = image.has_symtab;
  bin.pie_ = image.elf_type == ET_DYN;
  for (const auto& s : image.sections) {
    if (s.name == ".debug_info" || s.name == ".zdebug_info") bin.has_dwarf_ = true;
  }
  if (const Section* note = image.section(".note.go.buildid")) {
    if (auto bytes = image.section_bytes(*note)) {
      if (auto id = parse_go_buildid_note(*bytes, image.big_endian)) bin.build_id_ = *id;
    }
  }

  if (auto loaded = bin.load_pclntab(); !loaded) {
    return std::unexpected(loaded.error().wrap(path + ": not a usable Go binary"));
  }
  bin.load_version();

  if (bin.has_symtab_) {
    for (const auto& [name, sym] : image.symbols) {
      if (sym.type != STT_FUNC || sym.value == 0) continue;
      uint64_t end = sym.value + sym.size;
      if (sym.size == 0) {
        const GoFunction* fn = bin.pclntab_.function_for_pc(sym.value);
        end = fn ? fn->end : sym.value;
      }
      bin.symtab_functions_.push_back({name, sym.value, end});
    }
    std::sort(bin.symtab_functions_.begin(), bin.symtab_functions_.end(),
              [](const GoFunction& a, const GoFunction& b) { return a.entry < b.entry; });
    for (size_t i = 0; i < bin.symtab_functions_.size(); ++i) {
      bin.symtab_function_index_.try_emplace(bin.symtab_functions_[i].name, i);
    }
  }
  bin.load_offsets();
  bin.load_wait_reasons();
  return bin;
}

Result<void> GoBinary::load_pclntab() {
  const Image& image = *image_;
  // The address functab offsets are relative to, when the header does not
  // carry it (Go 1.26+): runtime.text, else moduledata.text — moduledata
  // starts with a pointer to the pclntab followed by the funcnametab slice —
  // else the .text section (right for internal linking only).
  auto text_start_for = [&](uint64_t pclntab_vaddr, const PclnHeader& header) -> std::optional<uint64_t> {
    if (auto text = image.symbol("runtime.text")) return text;
    const unsigned ps = image.ptr_size;
    for (const Section* s : image.data_sections(false)) {
      auto bytes = image.section_bytes(*s);
      if (!bytes) continue;
      ByteView view(*bytes, image.big_endian);
      for (uint64_t off = 0; off + 2 * ps <= view.size(); off += ps) {
        const uint64_t vaddr = s->addr + off;
        if (image.read_pointer(vaddr, ps, image.big_endian) != pclntab_vaddr) continue;
        if (image.read_pointer(vaddr + ps, ps, image.big_endian) != pclntab_vaddr + header.funcname_offset) continue;
        if (auto text = image.read_pointer(vaddr + kModuledataTextWord * ps, ps, image.big_endian); text && *text) return text;
      }
    }
    if (const Section* text = image.section(".text")) return text->addr;
    return std::nullopt;
  };
  auto try_parse = [&](std::span<const std::byte> bytes, uint64_t vaddr, std::string origin) -> Result<void> {
    auto header = TRY(parse_pclntab_header(bytes));
    PclnTable::Options options;
    if (header.version != PclnVersion::go116 && header.text_start == 0) options.text_start = text_start_for(vaddr, header);
    pclntab_ = TRY(PclnTable::parse(bytes, options));
    pclntab_origin_ = std::move(origin);
    return {};
  };

  std::optional<Error> first_error;
  auto note_error = [&](const Error& e) {
    if (!first_error) first_error = e;
  };
  // 1. A section named for it (.gopclntab; .data.rel.ro.gopclntab in PIE).
  for (const auto& s : image.sections) {
    if (!s.name.ends_with(".gopclntab")) continue;
    auto bytes = image.section_bytes(s);
    if (!bytes) continue;
    auto parsed = try_parse(*bytes, s.addr, "section " + s.name);
    if (parsed) return {};
    note_error(parsed.error());
  }
  // 2. The linker's bracketing symbols (external linking merges the section
  //    into .data.rel.ro, but the symbols survive unless stripped).
  auto begin = image.symbol("runtime.pclntab");
  auto end = image.symbol("runtime.epclntab");
  if (begin && end && *end > *begin) {
    if (auto bytes = image.read(*begin, *end - *begin)) {
      auto parsed = try_parse(*bytes, *begin, "symbols runtime.pclntab..runtime.epclntab");
      if (parsed) return {};
      note_error(parsed.error());
    }
  }
  // 3. Stripped and merged: scan read-only and relro data for the magic.
  for (const Section* s : image.data_sections(false)) {
    if ((s->flags & SHF_WRITE) && !s->name.starts_with(".data.rel.ro")) continue;
    auto bytes = image.section_bytes(*s);
    if (!bytes) continue;
    for (size_t offset : find_pclntab_candidates(*bytes)) {
      auto parsed = try_parse(bytes->subspan(offset), s->addr + offset, fmt::format("scan of {} at +{:#x}", s->name, offset));
      if (parsed) return {};
      note_error(parsed.error());
    }
  }
  // 4. No section headers at all: scan the read-only PT_LOAD segments.
  if (image.sections.empty()) {
    for (const auto& seg : image.loads) {
      if (seg.flags & PF_X) continue;
      auto bytes = ByteView(image.file).slice(seg.offset, seg.filesz);
      if (!bytes) continue;
      for (size_t offset : find_pclntab_candidates(*bytes)) {
        auto parsed = try_parse(bytes->subspan(offset), seg.vaddr + offset, fmt::format("scan of segment {:#x}", seg.vaddr));
        if (parsed) return {};
        note_error(parsed.error());
      }
    }
  }
  if (first_error) return std::unexpected(*first_error);
  return fail("no Go pclntab found (section, symbols or header magic)");
}

void GoBinary::load_version() {
  const Image& image = *image_;
  auto accept = [&](const std::string& text) {
    if (auto v = parse_go_version(text)) version_ = *v;
  };
  // 1. .go.buildinfo, as a section or anywhere 16-aligned in writable data.
  std::vector<std::span<const std::byte>> candidates;
  if (const Section* s = image.section(".go.buildinfo")) {
    if (auto bytes = image.section_bytes(*s)) candidates.push_back(*bytes);
  }
  for (const auto& seg : image.loads) {
    if (!(seg.flags & PF_W)) continue;
    auto bytes = ByteView(image.file).slice(seg.offset, seg.filesz);
    // Segment file offsets are page aligned, so 16-alignment in the file is
    // 16-alignment in memory.
    if (!bytes) continue;
    if (auto at = find_buildinfo(*bytes)) candidates.push_back(bytes->subspan(*at));
  }
  for (auto bytes : candidates) {
    if (auto info = parse_buildinfo(bytes, &image)) {
      build_info_ = *info;
      accept(info->version);
      if (version_) return;
    }
  }
  // 2. runtime.buildVersion, a Go string the linker fills in.
  const unsigned ps = image.ptr_size;
  auto read_go_string = [&](uint64_t header) -> std::optional<std::string> {
    auto data = image.read_pointer(header, ps, image.big_endian);
    auto length = image.read_pointer(header + ps, ps, image.big_endian);
    if (!data || !length || *length == 0 || *length > 64) return std::nullopt;
    auto bytes = image.read(*data, *length);
    if (!bytes) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  };
  if (auto sym = image.symbol("runtime.buildVersion")) {
    if (auto text = read_go_string(*sym)) accept(*text);
    if (version_) return;
  }
  // 3. Stripped and without buildinfo (some release pipelines drop it): the
  //    same string header, found by what it points at.
  for (const Section* s : image.data_sections(true)) {
    auto bytes = image.section_bytes(*s);
    if (!bytes) continue;
    ByteView view(*bytes, image.big_endian);
    for (uint64_t off = 0; off + 2 * ps <= view.size(); off += ps) {
      auto length = view.word(off + ps, ps);
      if (!length || *length < 4 || *length > 64) continue;
      auto text = read_go_string(s->addr + off);
      if (text && looks_like_release_version(*text)) {
        accept(*text);
        if (version_) return;
      }
    }
  }
}

void GoBinary::load_offsets() {
  if (has_dwarf_) {
    if (auto dwarf = read_dwarf_runtime(path_)) {
      offsets_ = dwarf->offsets;
      if (dwarf->allgs) dwarf_variables_["runtime.allgs"] = *dwarf->allgs;
      if (dwarf->allglen) dwarf_variables_["runtime.allglen"] = *dwarf->allglen;
      if (dwarf->sched) dwarf_variables_["runtime.sched"] = *dwarf->sched;
      return;
    } else {
      log::debug("{}: DWARF offsets unavailable ({}), using the version table", path_, dwarf.error().message());
    }
  }
  if (!version_) {
    offsets_error_ = Error(path_ + ": no DWARF and no Go version: runtime offsets unknown");
    return;
  }
  if (auto table = offsets_for_version(*version_)) {
    offsets_ = *table;
  } else {
    offsets_error_ = table.error().wrap(path_);
  }
}

void GoBinary::load_wait_reasons() {
  const Image& image = *image_;
  if (auto sym = image.symbols.find("runtime.waitReasonStrings"); sym != image.symbols.end() && sym->second.size) {
    const unsigned ps = image.ptr_size;
    const uint64_t count = sym->second.size / (2 * ps);
    std::vector<std::string> names;
    for (uint64_t i = 0; i < count && i < 256; ++i) {
      const uint64_t header = sym->second.value + i * 2 * ps;
      auto data = image.read_pointer(header, ps, image.big_endian);
      auto length = image.read_pointer(header + ps, ps, image.big_endian);
      if (!data || !length || *length > 256) break;
      auto bytes = *length ? image.read(*data, *length) : std::optional<std::span<const std::byte>>(std::span<const std::byte>());
      if (!bytes) break;
      names.emplace_back(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    }
    if (names.size() > 2) {
      wait_reasons_ = std::move(names);
      wait_reasons_from_binary_ = true;
      return;
    }
  }
  for (const Section* s : image.data_sections(true)) {
    auto bytes = image.section_bytes(*s);
    if (!bytes) continue;
    auto names = find_wait_reason_strings(*bytes, s->addr, image);
    if (!names.empty()) {
      wait_reasons_ = std::move(names);
      wait_reasons_from_binary_ = true;
      return;
    }
  }
  if (version_) wait_reasons_ = wait_reason_names_for_version(*version_);
}

std::vector<std::string> find_wait_reason_strings(std::span<const std::byte> data, uint64_t base,
                                                  const AddressSpace& image) {
  // 64-bit only: the agent runs on amd64/arm64 and so do the binaries it probes.
  constexpr unsigned ps = 8;
  constexpr uint64_t kEntry = 2 * ps;
  constexpr size_t kMaxEntries = 256;  // waitReason is a uint8
  ByteView view(data);
  auto string_at = [&](uint64_t header) -> std::optional<std::string> {
    auto ptr = image.read_pointer(header, ps, false);
    auto length = image.read_pointer(header + ps, ps, false);
    if (!ptr || !length || *length > 64) return std::nullopt;
    if (*length == 0) return std::string();
    auto bytes = image.read(*ptr, *length);
    if (!bytes) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    if (!is_printable(s)) return std::nullopt;
    return s;
  };
  for (uint64_t off = 0; off + 3 * kEntry <= view.size(); off += ps) {
    // Cheap filter on the lengths before following any pointer.
    if (view.u64(off + ps) != 0 || view.u64(off + kEntry + ps) != 17 || view.u64(off + 2 * kEntry + ps) != 7) continue;
    const uint64_t vaddr = base + off;
    if (string_at(vaddr + kEntry) != "GC assist marking" || string_at(vaddr + 2 * kEntry) != "IO wait") continue;
    std::vector<std::string> names;
    size_t known_count = 0;  // names[0, known_count) ends on a known reason
    for (size_t i = 0; i < kMaxEntries && off + (i + 1) * kEntry <= view.size(); ++i) {
      auto s = string_at(vaddr + i * kEntry);
      // The array ends where the next variable begins: an empty string past
      // index 0, a non-string, or two unknown reasons in a row. One unknown
      // reason between known ones is kept: a newer Go added it.
      if (!s || (i > 0 && s->empty())) break;
      const bool known = i == 0 || is_known_wait_reason(*s);
      if (!known && names.size() > known_count) break;
      names.push_back(std::move(*s));
      if (known) known_count = names.size();
    }
    names.resize(known_count);
    return names;
  }
  return {};
}

const std::vector<GoFunction>& GoBinary::functions() const {
  return has_symtab_ && !symtab_functions_.empty() ? symtab_functions_ : pclntab_.functions();
}

std::optional<GoFunction> GoBinary::find_function(std::string_view name) const {
  if (auto it = symtab_function_index_.find(std::string(name)); it != symtab_function_index_.end()) {
    return symtab_functions_[it->second];
  }
  if (const GoFunction* fn = pclntab_.find_function(name)) return *fn;
  return std::nullopt;
}

Result<GoFunction> GoBinary::resolve_first_of(std::initializer_list<std::string_view> names) const {
  std::string tried;
  for (auto name : names) {
    if (auto fn = find_function(name)) return *fn;
    tried += tried.empty() ? "" : ", ";
    tried += name;
  }
  return fail(fmt::format("{}: none of [{}] found", path_, tried));
}

Result<GoFunction> GoBinary::resolve_first_of(const std::vector<std::string>& names) const {
  std::string tried;
  for (const auto& name : names) {
    if (auto fn = find_function(name)) return *fn;
    tried += tried.empty() ? "" : ", ";
    tried += name;
  }
  return fail(fmt::format("{}: none of [{}] found", path_, tried));
}

Result<uint64_t> GoBinary::file_offset(uint64_t vaddr) const {
  for (const auto& seg : image_->loads) {
    if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.filesz) return seg.offset + (vaddr - seg.vaddr);
  }
  return fail(fmt::format("{}: address {:#x} is not in any loaded segment", path_, vaddr));
}

Result<Symbolized> GoBinary::symbolize(uint64_t pc) const {
  const GoFunction* fn = pclntab_.function_for_pc(pc);
  if (!fn) return fail(fmt::format("{}: no Go function contains pc {:#x}", path_, pc));
  Symbolized out;
  out.function = fn->name;
  out.entry = fn->entry;
  if (auto line = pclntab_.source_line(pc)) {
    out.file = std::move(line->file);
    out.line = line->line;
  }
  return out;
}

Result<RuntimeOffsets> GoBinary::runtime_offsets() const {
  if (offsets_) return *offsets_;
  return std::unexpected(offsets_error_.value_or(Error(path_ + ": runtime offsets unknown")));
}

std::optional<uint64_t> GoBinary::symbol_address(std::string_view name) const {
  if (auto sym = image_->symbol(name)) return sym;
  if (auto it = dwarf_variables_.find(std::string(name)); it != dwarf_variables_.end()) return it->second;
  return std::nullopt;
}

std::string_view GoBinary::wait_reason(uint8_t value) const {
  if (value < wait_reasons_.size()) return wait_reasons_[value];
  return {};
}

}  // namespace syncscope::probes::go
