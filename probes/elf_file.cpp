#include "probes/elf_file.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "agent/core/format.h"

namespace syncscope::probes {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr size_t kMaxBuildIdBytes = 64;
// Enough for any real verdef chain; bounds the walk over a corrupt one.
constexpr size_t kMaxVerdefs = 1 << 16;

bool libelf_ready() {
  static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
  return ready;
}

std::string libelf_error() {
  const char* msg = elf_errmsg(-1);
  return msg ? msg : "unknown libelf error";
}

// a + b <= limit without overflowing.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

SymbolType symbol_type(unsigned char info) {
  switch (GELF_ST_TYPE(info)) {
    case STT_NOTYPE: return SymbolType::notype;
    case STT_OBJECT: return SymbolType::object;
    case STT_FUNC: return SymbolType::func;
    case STT_GNU_IFUNC: return SymbolType::gnu_ifunc;
    case STT_TLS: return SymbolType::tls;
    case STT_COMMON: return SymbolType::common;
    default: return SymbolType::other;
  }
}

SymbolBinding symbol_binding(unsigned char info) {
  switch (GELF_ST_BIND(info)) {
    case STB_LOCAL: return SymbolBinding::local;
    case STB_GLOBAL: return SymbolBinding::global;
    case STB_WEAK: return SymbolBinding::weak;
    case STB_GNU_UNIQUE: return SymbolBinding::gnu_unique;
    default: return SymbolBinding::other;
  }
}

// Which of several aliases at one address names it best: an exported name over
// a local one, glibc's internal "__GI_" aliases last, the default version, then
// the shorter name ("pthread_mutex_lock" over "___pthread_mutex_lock").
auto alias_rank(const Symbol& s) {
  int binding = s.binding == SymbolBinding::global ? 0
                : (s.binding == SymbolBinding::weak || s.binding == SymbolBinding::gnu_unique) ? 1
                                                                                              : 2;
  return std::make_tuple(s.name.starts_with("__GI_") ? 1 : 0, binding, s.default_version ? 0 : 1,
                         s.table == SymbolTable::symtab ? 0 : 1, s.name.size());
}

// Which of several definitions of one name find_symbol() returns.
auto definition_rank(const Symbol& s) {
  int binding = s.binding == SymbolBinding::global ? 0 : s.binding == SymbolBinding::local ? 2 : 1;
  int type = (s.type == SymbolType::func || s.type == SymbolType::object || s.type == SymbolType::gnu_ifunc) ? 0 : 1;
  return std::make_tuple(s.default_version ? 0 : 1, s.table == SymbolTable::symtab ? 0 : 1, binding, type);
}

// "name@@VER" → {name, VER, default}; "name@VER" → {name, VER, compat}.
struct SplitName {
  std::string_view name;
  std::string_view version;
  bool default_version = true;
  bool versioned = false;
};
SplitName split_versioned(std::string_view full) {
  size_t at = full.find('@');
  if (at == std::string_view::npos || at == 0) return {full, {}, true, false};
  bool dflt = at + 1 < full.size() && full[at + 1] == '@';
  return {full.substr(0, at), full.substr(at + (dflt ? 2 : 1)), dflt, true};
}

}  // namespace

std::string_view to_string(SymbolType type) {
  switch (type) {
    case SymbolType::notype: return "NOTYPE";
    case SymbolType::object: return "OBJECT";
    case SymbolType::func: return "FUNC";
    case SymbolType::gnu_ifunc: return "IFUNC";
    case SymbolType::tls: return "TLS";
    case SymbolType::common: return "COMMON";
    case SymbolType::other: return "OTHER";
  }
  return "?";
}

std::string_view to_string(SymbolBinding binding) {
  switch (binding) {
    case SymbolBinding::local: return "LOCAL";
    case SymbolBinding::global: return "GLOBAL";
    case SymbolBinding::weak: return "WEAK";
    case SymbolBinding::gnu_unique: return "UNIQUE";
    case SymbolBinding::other: return "OTHER";
  }
  return "?";
}

std::string Symbol::full_name() const {
  if (version.empty()) return name;
  return fmt::format("{}{}{}", name, default_version ? "@@" : "@", version);
}

bool Section::has_file_bytes() const { return type != SHT_NOBITS && type != SHT_NULL; }
bool Section::executable() const { return (flags & SHF_EXECINSTR) != 0; }
bool Section::writable() const { return (flags & SHF_WRITE) != 0; }
bool LoadSegment::executable() const { return (flags & PF_X) != 0; }
bool LoadSegment::writable() const { return (flags & PF_W) != 0; }

std::string build_id_debug_path(std::string_view build_id, std::string_view debug_root) {
  if (build_id.size() < 3) return {};
  return fmt::format("{}/.build-id/{}/{}.debug", debug_root, build_id.substr(0, 2), build_id.substr(2));
}

Result<uint32_t> debuglink_crc32(const std::string& path) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  uint32_t crc = 0xFFFFFFFFu;
  std::array<uint8_t, 1 << 16> buf{};
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(fmt::format("read {}", path));
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) crc = table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

ElfFile::~ElfFile() = default;

Error ElfFile::error(std::string_view what) const { return Error(fmt::format("{}: {}", path_, what)); }

Result<std::unique_ptr<ElfFile>> ElfFile::open(const std::string& path) {
  std::unique_ptr<ElfFile> file(new ElfFile());
  TRY(file->load(path));
  return file;
}

Result<void> ElfFile::load(const std::string& path) {
  path_ = path;
  if (!libelf_ready()) return std::unexpected(error("libelf version mismatch"));
  // O_NONBLOCK: a FIFO handed to us as a "binary" must not hang the agent.
  fd_ = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd_) return fail_errno(fmt::format("open {}", path));
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return fail_errno(fmt::format("stat {}", path));
  if (!S_ISREG(st.st_mode)) return std::unexpected(error("not a regular file"));
  if (st.st_size < static_cast<off_t>(EI_NIDENT)) return std::unexpected(error("too small to be an ELF file"));

  elf_.reset(elf_begin(fd_.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf_) return std::unexpected(error(fmt::format("elf_begin: {}", libelf_error())));
  if (elf_kind(elf_.get()) != ELF_K_ELF) return std::unexpected(error("not an ELF file"));
  size_t raw_size = 0;
  const char* raw = elf_rawfile(elf_.get(), &raw_size);
  if (!raw) return std::unexpected(error(fmt::format("elf_rawfile: {}", libelf_error())));
  bytes_ = {reinterpret_cast<const uint8_t*>(raw), raw_size};

  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf_.get(), &ehdr)) return std::unexpected(error(fmt::format("bad ELF header: {}", libelf_error())));
  switch (ehdr.e_type) {
    case ET_REL: type_ = ElfType::relocatable; break;
    case ET_EXEC: type_ = ElfType::executable; break;
    case ET_DYN: type_ = ElfType::shared; break;
    case ET_CORE: type_ = ElfType::core; break;
    default: type_ = ElfType::other; break;
  }
  machine_ = ehdr.e_machine;

  TRY(load_program_headers());
  TRY(load_sections());
  TRY(load_symbols());
  load_notes();
  build_indexes();
  return {};
}

Result<void> ElfFile::load_program_headers() {
  size_t count = 0;
  if (elf_getphdrnum(elf_.get(), &count) != 0)
    return std::unexpected(error(fmt::format("bad program header table: {}", libelf_error())));
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf_.get(), static_cast<int>(i), &ph))
      return std::unexpected(error(fmt::format("program header {}: {}", i, libelf_error())));
    if (ph.p_type != PT_LOAD && ph.p_type != PT_GNU_RELRO) continue;
    LoadSegment seg{ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_flags, ph.p_align};
    if (ph.p_type == PT_GNU_RELRO) {
      relro_ = seg;
      continue;
    }
    if (!fits(seg.offset, seg.file_size, bytes_.size()))
      return std::unexpected(error(fmt::format(
          "PT_LOAD {} (offset {:#x}, {} bytes) extends past the end of the file ({} bytes): truncated or corrupt",
          i, seg.offset, seg.file_size, bytes_.size())));
    if (seg.file_size > seg.mem_size || !fits(seg.vaddr, seg.mem_size, UINT64_MAX))
      return std::unexpected(error(fmt::format("PT_LOAD {} has inconsistent sizes: corrupt", i)));
    segments_.push_back(seg);
  }
  std::ranges::sort(segments_, {}, &LoadSegment::vaddr);
  return {};
}

Result<void> ElfFile::load_sections() {
  size_t shstrndx = 0;
  bool have_names = elf_getshdrstrndx(elf_.get(), &shstrndx) == 0;
  for (Elf_Scn* scn = elf_nextscn(elf_.get(), nullptr); scn; scn = elf_nextscn(elf_.get(), scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) return std::unexpected(error(fmt::format("bad section header: {}", libelf_error())));
    Section s;
    s.index = static_cast<uint32_t>(elf_ndxscn(scn));
    const char* name = have_names ? elf_strptr(elf_.get(), shstrndx, sh.sh_name) : nullptr;
    s.name = name ? name : "";
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.vaddr = (sh.sh_flags & SHF_ALLOC) ? sh.sh_addr : 0;
    s.offset = sh.sh_offset;
    s.size = sh.sh_size;
    if (s.has_file_bytes() && !fits(s.offset, s.size, bytes_.size()))
      return std::unexpected(error(fmt::format(
          "section [{}] {} (offset {:#x}, {} bytes) extends past the end of the file ({} bytes): truncated or corrupt",
          s.index, s.name, s.offset, s.size, bytes_.size())));
    sections_.push_back(std::move(s));
  }
  return {};
}

Result<void> ElfFile::load_symbols() {
  const size_t sym_size = gelf_fsize(elf_.get(), ELF_T_SYM, 1, EV_CURRENT);
  if (sym_size == 0) return std::unexpected(error("unsupported ELF class"));

  auto section_by_index = [&](size_t index) -> const Section* {
    for (const Section& s : sections_)
      if (s.index == index) return &s;
    return nullptr;
  };

  for (const Section& table : sections_) {
    if (table.type != SHT_SYMTAB && table.type != SHT_DYNSYM) continue;
    bool dynamic = table.type == SHT_DYNSYM;
    Elf_Scn* scn = elf_getscn(elf_.get(), table.index);
    GElf_Shdr sh;
    if (!scn || !gelf_getshdr(scn, &sh)) continue;
    const Section* strtab = section_by_index(sh.sh_link);
    if (!strtab || strtab->type != SHT_STRTAB)
      return std::unexpected(error(fmt::format("{}: sh_link {} is not a string table", table.name, sh.sh_link)));
    if (sh.sh_entsize != sym_size)
      return std::unexpected(error(fmt::format("{}: entry size {} (expected {})", table.name, sh.sh_entsize, sym_size)));
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) return std::unexpected(error(fmt::format("{}: {}", table.name, libelf_error())));
    const size_t count = data->d_size / sym_size;

    // .dynsym versions live in .gnu.version (one index per symbol) and
    // .gnu.version_d (index → name). Undefined symbols are skipped below, so
    // .gnu.version_r (versions of imports) is not needed.
    Elf_Data* versym = nullptr;
    std::unordered_map<uint16_t, std::string> version_names;
    if (dynamic) {
      for (const Section& s : sections_) {
        Elf_Scn* vscn = elf_getscn(elf_.get(), s.index);
        GElf_Shdr vsh;
        if (!vscn || !gelf_getshdr(vscn, &vsh)) continue;
        if (s.type == SHT_GNU_versym && vsh.sh_link == table.index) {
          versym = elf_getdata(vscn, nullptr);
        } else if (s.type == SHT_GNU_verdef) {
          Elf_Data* vd_data = elf_getdata(vscn, nullptr);
          if (!vd_data) continue;
          size_t offset = 0;
          for (size_t n = 0; n < kMaxVerdefs; ++n) {
            GElf_Verdef vd;
            if (!gelf_getverdef(vd_data, static_cast<int>(offset), &vd)) break;
            GElf_Verdaux aux;
            if (vd.vd_aux != 0 && offset + vd.vd_aux <= INT32_MAX &&
                gelf_getverdaux(vd_data, static_cast<int>(offset + vd.vd_aux), &aux)) {
              const char* vname = elf_strptr(elf_.get(), vsh.sh_link, aux.vda_name);
              if (vname && !(vd.vd_flags & VER_FLG_BASE)) version_names[vd.vd_ndx] = vname;
            }
            if (vd.vd_next == 0 || offset + vd.vd_next > INT32_MAX) break;
            offset += vd.vd_next;
          }
        }
      }
    }

    size_t defined = 0;
    for (size_t i = 1; i < count; ++i) {  // entry 0 is the reserved null symbol
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
      if (sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS || sym.st_shndx == SHN_COMMON) continue;
      if (sym.st_shndx >= SHN_LORESERVE && sym.st_shndx != SHN_XINDEX) continue;
      unsigned type = GELF_ST_TYPE(sym.st_info);
      if (type == STT_SECTION || type == STT_FILE) continue;
      const char* raw_name = elf_strptr(elf_.get(), strtab->index, sym.st_name);
      if (!raw_name || !*raw_name) continue;

      Symbol s;
      SplitName split = split_versioned(raw_name);
      s.name = std::string(split.name);
      s.version = std::string(split.version);
      s.default_version = split.default_version;
      if (dynamic && versym && !split.versioned) {
        GElf_Versym v;
        if (gelf_getversym(versym, static_cast<int>(i), &v)) {
          auto it = version_names.find(static_cast<uint16_t>(v & 0x7fff));
          if (it != version_names.end()) {
            s.version = it->second;
            s.default_version = (v & 0x8000) == 0;  // VERSYM_HIDDEN: a compat "@" version
          }
        }
      }
      s.value = sym.st_value;
      s.size = sym.st_size;
      s.type = symbol_type(sym.st_info);
      s.binding = symbol_binding(sym.st_info);
      s.section_index = sym.st_shndx;
      if (const Section* sec = section_by_index(sym.st_shndx)) s.section_name = sec->name;
      s.table = dynamic ? SymbolTable::dynsym : SymbolTable::symtab;
      symbols_.push_back(std::move(s));
      ++defined;
    }
    if (!dynamic && defined > 0) has_symtab_ = true;
  }
  return {};
}

void ElfFile::load_notes() {
  auto scan = [&](Elf_Data* data) {
    if (!data || !data->d_buf) return;
    size_t offset = 0;
    GElf_Nhdr nh;
    size_t name_off = 0, desc_off = 0;
    while (build_id_.empty() && offset < data->d_size) {
      size_t next = gelf_getnote(data, offset, &nh, &name_off, &desc_off);
      if (next == 0 || next <= offset) break;
      offset = next;
      const auto* base = static_cast<const uint8_t*>(data->d_buf);
      if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 || std::memcmp(base + name_off, "GNU", 4) != 0) continue;
      if (nh.n_descsz == 0 || nh.n_descsz > kMaxBuildIdBytes) continue;
      for (size_t k = 0; k < nh.n_descsz; ++k) build_id_ += fmt::format("{:02x}", base[desc_off + k]);
    }
  };
  for (const Section& s : sections_) {
    if (s.type != SHT_NOTE || !build_id_.empty()) continue;
    if (Elf_Scn* scn = elf_getscn(elf_.get(), s.index)) scan(elf_getdata(scn, nullptr));
  }
  // Files whose section headers were stripped still carry PT_NOTE.
  if (build_id_.empty()) {
    size_t count = 0;
    if (elf_getphdrnum(elf_.get(), &count) == 0) {
      for (size_t i = 0; i < count && build_id_.empty(); ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf_.get(), static_cast<int>(i), &ph) || ph.p_type != PT_NOTE) continue;
        if (!fits(ph.p_offset, ph.p_filesz, bytes_.size())) continue;
        scan(elf_getdata_rawchunk(elf_.get(), static_cast<int64_t>(ph.p_offset), ph.p_filesz,
                                  ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR));
      }
    }
  }

  if (const Section* link = section(".gnu_debuglink"); link && link->has_file_bytes()) {
    std::span<const uint8_t> b = bytes_.subspan(link->offset, link->size);
    size_t len = static_cast<size_t>(std::ranges::find(b, uint8_t{0}) - b.begin());
    size_t crc_at = (len + 1 + 3) & ~size_t{3};
    if (len > 0 && len < b.size() && crc_at + 4 <= b.size()) {
      const bool big_endian = elf_getident(elf_.get(), nullptr)[EI_DATA] == ELFDATA2MSB;
      uint32_t crc = 0;
      for (int k = 0; k < 4; ++k) {
        uint32_t byte = b[crc_at + (big_endian ? k : 3 - k)];
        crc = (crc << 8) | byte;
      }
      debuglink_ = DebugLink{std::string(reinterpret_cast<const char*>(b.data()), len), crc};
    }
  }
}

void ElfFile::build_indexes() {
  // string_views into symbols_ stay valid: the vector is final from here on.
  by_name_.reserve(symbols_.size());
  for (uint32_t i = 0; i < symbols_.size(); ++i) by_name_.emplace(symbols_[i].name, i);

  auto build = [&](AddressIndex& index, auto&& wanted) {
    for (uint32_t i = 0; i < symbols_.size(); ++i)
      if (wanted(symbols_[i])) index.by_start.push_back(i);
    std::ranges::sort(index.by_start, [&](uint32_t a, uint32_t b) { return symbols_[a].value < symbols_[b].value; });
    index.max_end.resize(index.by_start.size());
    uint64_t max_end = 0;
    for (size_t k = 0; k < index.by_start.size(); ++k) {
      const Symbol& s = symbols_[index.by_start[k]];
      uint64_t end = fits(s.value, s.size, UINT64_MAX) ? s.value + s.size : UINT64_MAX;
      max_end = std::max(max_end, end);
      index.max_end[k] = max_end;
    }
  };
  build(functions_, [&](const Symbol& s) {
    if (s.type == SymbolType::func || s.type == SymbolType::gnu_ifunc) return true;
    if (s.type != SymbolType::notype || s.size == 0) return false;
    const Section* sec = section_at(s.value);
    return sec && sec->executable();
  });
  build(objects_, [](const Symbol& s) { return s.type == SymbolType::object && s.size > 0; });
}

const Section* ElfFile::section_at(uint64_t vaddr) const {
  for (const Section& s : sections_)
    if ((s.flags & SHF_ALLOC) && s.size > 0 && vaddr >= s.vaddr && vaddr - s.vaddr < s.size && !(s.flags & SHF_TLS))
      return &s;
  return nullptr;
}

std::optional<SymbolMatch> ElfFile::lookup(const AddressIndex& index, uint64_t vaddr, bool allow_unsized) const {
  const auto& order = index.by_start;
  auto it = std::ranges::upper_bound(order, vaddr, {}, [&](uint32_t i) { return symbols_[i].value; });
  if (it == order.begin()) return std::nullopt;
  const size_t nearest = static_cast<size_t>(it - order.begin()) - 1;

  // Walk back while an earlier symbol could still reach vaddr; the first one
  // that contains it is the innermost, then pick the best of its aliases.
  const Symbol* best = nullptr;
  for (size_t k = nearest + 1; k-- > 0;) {
    if (index.max_end[k] <= vaddr) break;
    const Symbol& s = symbols_[order[k]];
    if (best && s.value < best->value) break;
    if (s.contains(vaddr) && (!best || alias_rank(s) < alias_rank(*best))) best = &s;
  }
  if (best) return SymbolMatch{best, vaddr - best->value, true};

  if (!allow_unsized) return std::nullopt;
  // Hand-written assembly often has no .size: accept the nearest unsized
  // symbol in the same section as a guess.
  const Symbol& prev = symbols_[order[nearest]];
  const Section* sec = section_at(vaddr);
  if (prev.size != 0 || !sec || sec->index != prev.section_index) return std::nullopt;
  const Symbol* pick = &prev;
  for (size_t k = nearest + 1; k-- > 0 && symbols_[order[k]].value == prev.value;)
    if (alias_rank(symbols_[order[k]]) < alias_rank(*pick)) pick = &symbols_[order[k]];
  return SymbolMatch{pick, vaddr - pick->value, false};
}

std::optional<SymbolMatch> ElfFile::function_at(uint64_t vaddr) const { return lookup(functions_, vaddr, true); }
std::optional<SymbolMatch> ElfFile::object_at(uint64_t vaddr) const { return lookup(objects_, vaddr, false); }

std::vector<const Symbol*> ElfFile::find_symbols(std::string_view query) const {
  SplitName q = split_versioned(query);
  std::vector<const Symbol*> out;
  auto [lo, hi] = by_name_.equal_range(q.name);
  for (auto it = lo; it != hi; ++it) {
    const Symbol& s = symbols_[it->second];
    if (q.versioned && (s.version != q.version || (q.default_version && !s.default_version))) continue;
    out.push_back(&s);
  }
  std::ranges::stable_sort(out, [](const Symbol* a, const Symbol* b) { return definition_rank(*a) < definition_rank(*b); });
  return out;
}

const Symbol* ElfFile::find_symbol(std::string_view name) const {
  auto all = find_symbols(name);
  return all.empty() ? nullptr : all.front();
}

std::vector<const Symbol*> ElfFile::data_objects() const {
  std::vector<const Symbol*> out;
  for (uint32_t i : objects_.by_start) {
    const Symbol& s = symbols_[i];
    const Section* sec = nullptr;
    for (const Section& candidate : sections_)
      if (candidate.index == s.section_index) sec = &candidate;
    if (!sec || !(sec->flags & SHF_ALLOC) || !(sec->flags & SHF_WRITE) || (sec->flags & SHF_TLS)) continue;
    // RELRO data is read-only after relocation: nobody writes it, nothing to share falsely.
    if (relro_ && s.value >= relro_->vaddr && s.value - relro_->vaddr < relro_->mem_size) continue;
    if (!out.empty() && out.back()->value == s.value) {
      if (alias_rank(s) < alias_rank(*out.back())) out.back() = &s;
      continue;
    }
    out.push_back(&s);
  }
  return out;
}

Result<uint64_t> ElfFile::vaddr_to_offset(uint64_t vaddr) const {
  for (const LoadSegment& seg : segments_) {
    if (vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.mem_size) continue;
    if (vaddr - seg.vaddr < seg.file_size) return seg.offset + (vaddr - seg.vaddr);
    return std::unexpected(error(fmt::format(
        "vaddr {:#x} has no bytes in the file (zero-filled .bss, or a separate debug file)", vaddr)));
  }
  return std::unexpected(error(fmt::format("vaddr {:#x} is outside every PT_LOAD segment", vaddr)));
}

Result<uint64_t> ElfFile::offset_to_vaddr(uint64_t offset) const {
  for (const LoadSegment& seg : segments_)
    if (offset >= seg.offset && offset - seg.offset < seg.file_size) return seg.vaddr + (offset - seg.offset);
  return std::unexpected(error(fmt::format("file offset {:#x} is outside every PT_LOAD segment", offset)));
}

const LoadSegment* ElfFile::segment_for_map_offset(uint64_t offset) const {
  for (const LoadSegment& seg : segments_)
    if (offset >= seg.offset && offset - seg.offset < seg.file_size) return &seg;
  for (const LoadSegment& seg : segments_) {
    uint64_t page = seg.offset & ~(kPageSize - 1);
    if (offset >= page && offset - page < seg.file_size + (seg.offset - page)) return &seg;
  }
  return nullptr;
}

const Section* ElfFile::section(std::string_view name) const {
  for (const Section& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

Result<std::span<const uint8_t>> ElfFile::section_bytes(const Section& s) const {
  if (!s.has_file_bytes()) return std::unexpected(error(fmt::format("section {} has no bytes in the file (NOBITS)", s.name)));
  if (s.flags & SHF_COMPRESSED) return std::unexpected(error(fmt::format("section {} is compressed", s.name)));
  if (!fits(s.offset, s.size, bytes_.size()))  // checked at open; kept for sections built elsewhere
    return std::unexpected(error(fmt::format("section {} lies outside the file", s.name)));
  return bytes_.subspan(s.offset, s.size);
}

Result<std::span<const uint8_t>> ElfFile::read(uint64_t vaddr, uint64_t size) const {
  for (const LoadSegment& seg : segments_) {
    if (vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.mem_size) continue;
    uint64_t rel = vaddr - seg.vaddr;
    if (rel >= seg.file_size || size > seg.file_size - rel)
      return std::unexpected(error(fmt::format(
          "{} bytes at vaddr {:#x} are not all in the file (zero-filled .bss, or a separate debug file)", size, vaddr)));
    return bytes_.subspan(seg.offset + rel, size);
  }
  return std::unexpected(error(fmt::format("vaddr {:#x} is outside every PT_LOAD segment", vaddr)));
}

Result<std::string> ElfFile::debug_file_path(std::string_view debug_root) const {
  std::error_code ec;
  std::string by_id = build_id_debug_path(build_id_, debug_root);
  if (!by_id.empty() && std::filesystem::is_regular_file(by_id, ec)) return by_id;

  std::vector<std::string> tried;
  if (!by_id.empty()) tried.push_back(by_id);
  if (debuglink_ && debuglink_->name.find('/') == std::string::npos && debuglink_->name != "..") {
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    std::filesystem::path self = std::filesystem::weakly_canonical(path_, ec);
    for (const std::filesystem::path& candidate :
         {dir / debuglink_->name, dir / ".debug" / debuglink_->name,
          std::filesystem::path(std::string(debug_root) + dir.string()) / debuglink_->name}) {
      tried.push_back(candidate.string());
      if (!std::filesystem::is_regular_file(candidate, ec)) continue;
      if (std::filesystem::weakly_canonical(candidate, ec) == self) continue;
      auto crc = debuglink_crc32(candidate.string());
      if (crc && *crc == debuglink_->crc) return candidate.string();
    }
  }
  std::string where;
  for (const std::string& t : tried) where += (where.empty() ? "" : ", ") + t;
  if (where.empty()) return std::unexpected(error("no separate debug file: the file has neither a build-id nor .gnu_debuglink"));
  return std::unexpected(error(fmt::format("no separate debug file (looked for {}); install the matching -dbg package", where)));
}

Result<std::unique_ptr<ElfFile>> ElfFile::open_debug_file(std::string_view debug_root) const {
  std::string debug_path = TRY(debug_file_path(debug_root));
  auto debug = TRY(ElfFile::open(debug_path));
  if (!build_id_.empty() && !debug->build_id().empty() && debug->build_id() != build_id_)
    return std::unexpected(error(fmt::format("debug file {} has build-id {}, expected {}", debug_path,
                                             debug->build_id(), build_id_)));
  return debug;
}

}  // namespace syncscope::probes
