// The pclntab reader: synthetic tables in each header format (only Go 1.19
// is installed here, so the 1.16 and 1.20+ layouts are built by hand),
// hostile inputs, and the real Go 1.19 workloads, stripped and not.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "probes/go/byte_view.h"
#include "probes/go/go_binary.h"
#include "probes/go/pclntab.h"

namespace syncscope::probes::go {
namespace {

std::string workload(const std::string& name) {
  const char* build = std::getenv("SYNCSCOPE_BUILD");
  return std::string(build && *build ? build : "build") + "/workloads/" + name;
}

#define REQUIRE_WORKLOAD(path)                                                                        \
  if (!std::filesystem::exists(path))                                                                  \
  FAIL() << "missing " << (path) << ": build the Go workloads first (make workloads, or make test); " \
         << "SYNCSCOPE_BUILD names the build directory"

// ---------------------------------------------------------------------------
// A pclntab writer for tests, following the layout documented in pclntab.h.
// Each function gets its own compilation unit with one file; its pcln table
// says `line` for the first half of its code and `line + 1` for the rest.

struct SynthFunc {
  std::string name;
  uint32_t size;  // bytes of code
  std::string file;
  int line;
};

struct SynthSpec {
  uint32_t magic = 0xfffffff1;
  bool big_endian = false;
  uint8_t ptr_size = 8;
  uint8_t quantum = 1;
  uint64_t text_start = 0x401000;
  bool write_text_start = true;  // false: 0 in the header, as Go 1.26 does
  std::vector<SynthFunc> funcs;
};

class Writer {
 public:
  Writer(bool big_endian, unsigned ptr_size) : big_(big_endian), ptr_(ptr_size) {}
  size_t size() const { return out_.size(); }
  void u8(uint8_t v) { out_.push_back(static_cast<std::byte>(v)); }
  void uint(uint64_t v, unsigned width) {
    for (unsigned i = 0; i < width; ++i) {
      const unsigned shift = big_ ? 8 * (width - 1 - i) : 8 * i;
      u8(static_cast<uint8_t>(v >> shift));
    }
  }
  void u32(uint64_t v) { uint(v, 4); }
  void word(uint64_t v) { uint(v, ptr_); }
  void patch(size_t at, uint64_t v, unsigned width) {
    for (unsigned i = 0; i < width; ++i) {
      const unsigned shift = big_ ? 8 * (width - 1 - i) : 8 * i;
      out_[at + i] = static_cast<std::byte>(v >> shift);
    }
  }
  void cstr(std::string_view s) {
    for (char c : s) u8(static_cast<uint8_t>(c));
    u8(0);
  }
  void uvarint(uint64_t v) {
    while (v >= 0x80) {
      u8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    u8(static_cast<uint8_t>(v));
  }
  void align(size_t to) {
    while (out_.size() % to) u8(0);
  }
  std::vector<std::byte> take() { return std::move(out_); }

 private:
  bool big_;
  unsigned ptr_;
  std::vector<std::byte> out_;
};

uint64_t zigzag(int64_t v) { return v < 0 ? ((static_cast<uint64_t>(-v - 1) << 1) | 1) : static_cast<uint64_t>(v) << 1; }

// Code of function i starts at text_start + entry_offset(i): sizes rounded up to 16.
std::vector<uint64_t> entry_offsets(const SynthSpec& spec) {
  std::vector<uint64_t> out;
  uint64_t at = 0;
  for (const auto& f : spec.funcs) {
    out.push_back(at);
    at += (f.size + 15) & ~15u;
  }
  out.push_back(at);
  return out;
}

std::vector<std::byte> build_pclntab(const SynthSpec& spec) {
  const bool v116 = spec.magic == 0xfffffffa;
  const bool v120 = spec.magic == 0xfffffff1;
  const unsigned ps = spec.ptr_size;
  const size_t n = spec.funcs.size();
  const unsigned words = v116 ? 7 : 8;
  const auto entries = entry_offsets(spec);

  Writer w(spec.big_endian, ps);
  w.u32(spec.magic);
  w.u8(0);
  w.u8(0);
  w.u8(spec.quantum);
  w.u8(ps);
  const size_t header_words_at = w.size();
  for (unsigned i = 0; i < words; ++i) w.word(0);

  const size_t funcname_off = w.size();
  std::vector<uint64_t> name_offs;
  for (const auto& f : spec.funcs) {
    name_offs.push_back(w.size() - funcname_off);
    w.cstr(f.name);
  }
  w.align(4);
  const size_t cu_off = w.size();
  const size_t cutab_bytes = n * 4;
  for (size_t i = 0; i < n; ++i) w.u32(0);  // patched below
  const size_t filetab_off = w.size();
  std::vector<uint64_t> file_offs;
  for (const auto& f : spec.funcs) {
    file_offs.push_back(w.size() - filetab_off);
    w.cstr(f.file);
  }
  const size_t pctab_off = w.size();
  w.u8(0);  // offset 0 means "no table"
  struct Tables { uint64_t sp, file, ln; };
  std::vector<Tables> tables;
  for (const auto& f : spec.funcs) {
    Tables t{};
    const uint32_t units = f.size / spec.quantum;
    const uint32_t half = units / 2;
    t.sp = w.size() - pctab_off;  // frame size 0 over the whole function
    w.uvarint(zigzag(1));
    w.uvarint(units);
    w.u8(0);
    t.file = w.size() - pctab_off;  // file index 0 of the function's CU
    w.uvarint(zigzag(1));
    w.uvarint(units);
    w.u8(0);
    t.ln = w.size() - pctab_off;  // line, then line + 1
    w.uvarint(zigzag(f.line + 1));
    w.uvarint(half);
    w.uvarint(zigzag(1));
    w.uvarint(units - half);
    w.u8(0);
    tables.push_back(t);
  }
  w.align(ps);
  const size_t pcln_off = w.size();
  const unsigned es = v116 ? ps : 4;
  const size_t functab_at = w.size();
  for (size_t i = 0; i < 2 * n + 1; ++i) w.uint(0, es);
  w.align(ps);
  std::vector<uint64_t> func_offs;
  for (size_t i = 0; i < n; ++i) {
    func_offs.push_back(w.size() - pcln_off);
    const uint64_t entry = entries[i];
    if (v116) {
      w.word(spec.text_start + entry);
    } else {
      w.u32(entry);
    }
    w.u32(name_offs[i]);  // nameoff
    w.u32(0);             // args
    w.u32(0);             // deferreturn
    w.u32(tables[i].sp);
    w.u32(tables[i].file);
    w.u32(tables[i].ln);
    w.u32(0);  // npcdata
    w.u32(i);  // cuOffset: CU i starts at cutab slot i
    if (v120) w.u32(static_cast<uint32_t>(spec.funcs[i].line));  // startLine
    w.u8(0);   // funcID
    w.u8(0);   // flag
    w.u8(0);
    w.u8(0);   // nfuncdata
    w.align(ps);
  }
  for (size_t i = 0; i < n; ++i) {
    const uint64_t entry = v116 ? spec.text_start + entries[i] : entries[i];
    w.patch(functab_at + 2 * i * es, entry, es);
    w.patch(functab_at + (2 * i + 1) * es, func_offs[i], es);
    w.patch(cu_off + 4 * i, file_offs[i], 4);
  }
  w.patch(functab_at + 2 * n * es, v116 ? spec.text_start + entries[n] : entries[n], es);
  (void)cutab_bytes;

  std::vector<uint64_t> header = {n, n};
  if (!v116) header.push_back(spec.write_text_start ? spec.text_start : 0);
  for (uint64_t off : {funcname_off, cu_off, filetab_off, pctab_off, pcln_off}) header.push_back(off);
  for (unsigned i = 0; i < words; ++i) w.patch(header_words_at + i * ps, header[i], ps);
  return w.take();
}

SynthSpec sample(uint32_t magic) {
  SynthSpec s;
  s.magic = magic;
  s.funcs = {
      {"runtime.text_start_marker", 32, "/go/src/runtime/asm_amd64.s", 10},
      {"sync.(*Mutex).lockSlow", 200, "/go/src/sync/mutex.go", 117},
      {"main.contendMutex", 120, "/src/gomutex/main.go", 58},
      {"main.main", 64, "/src/gomutex/main.go", 90},
  };
  return s;
}

void expect_sample_table(const PclnTable& t, const SynthSpec& spec) {
  const auto entries = entry_offsets(spec);
  ASSERT_EQ(t.functions().size(), spec.funcs.size());
  for (size_t i = 0; i < spec.funcs.size(); ++i) {
    const auto& fn = t.functions()[i];
    EXPECT_EQ(fn.name, spec.funcs[i].name);
    EXPECT_EQ(fn.entry, spec.text_start + entries[i]);
    EXPECT_EQ(fn.end, fn.entry + spec.funcs[i].size) << fn.name;  // exact, from pcsp, not padded
    const GoFunction* by_name = t.find_function(spec.funcs[i].name);
    ASSERT_NE(by_name, nullptr);
    EXPECT_EQ(by_name->entry, fn.entry);
    // Padding after the code still belongs to the function (as in the runtime).
    const GoFunction* by_pc = t.function_for_pc(spec.text_start + entries[i + 1] - 1);
    ASSERT_NE(by_pc, nullptr);
    EXPECT_EQ(by_pc->name, fn.name);

    auto first = t.source_line(fn.entry);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->file, spec.funcs[i].file);
    EXPECT_EQ(first->line, spec.funcs[i].line);
    auto last = t.source_line(fn.end - 1);
    ASSERT_TRUE(last) << last.error().message();
    EXPECT_EQ(last->line, spec.funcs[i].line + 1);
  }
  EXPECT_EQ(t.find_function("main.nothere"), nullptr);
  EXPECT_EQ(t.function_for_pc(spec.text_start - 1), nullptr);
  EXPECT_EQ(t.function_for_pc(spec.text_start + entries.back()), nullptr);
  EXPECT_FALSE(t.source_line(0));
}

TEST(GoPclntab, Go116Format) {
  auto spec = sample(0xfffffffa);
  auto bytes = build_pclntab(spec);
  auto t = PclnTable::parse(bytes);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->header().version, PclnVersion::go116);
  EXPECT_EQ(t->header().text_start, 0u);
  expect_sample_table(*t, spec);
}

TEST(GoPclntab, Go118Format) {
  auto spec = sample(0xfffffff0);
  auto t = PclnTable::parse(build_pclntab(spec));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->header().version, PclnVersion::go118);
  EXPECT_EQ(t->text_start(), spec.text_start);
  expect_sample_table(*t, spec);
}

TEST(GoPclntab, Go120Format) {
  auto spec = sample(0xfffffff1);
  auto t = PclnTable::parse(build_pclntab(spec));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->header().version, PclnVersion::go120);
  EXPECT_EQ(pcln_version_range(t->header().version), "1.20+");
  expect_sample_table(*t, spec);
}

TEST(GoPclntab, BigEndian32BitWithQuantum4) {
  auto spec = sample(0xfffffff1);
  spec.big_endian = true;
  spec.ptr_size = 4;
  spec.quantum = 4;
  spec.text_start = 0x10000;
  auto t = PclnTable::parse(build_pclntab(spec));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_TRUE(t->header().big_endian);
  EXPECT_EQ(t->header().ptr_size, 4);
  expect_sample_table(*t, spec);
}

TEST(GoPclntab, Go126ZeroTextStartNeedsTheCallersBase) {
  auto spec = sample(0xfffffff1);
  spec.write_text_start = false;
  auto bytes = build_pclntab(spec);
  auto without = PclnTable::parse(bytes);
  ASSERT_FALSE(without);
  EXPECT_NE(without.error().message().find("text start"), std::string::npos);
  auto with = PclnTable::parse(bytes, PclnTable::Options{spec.text_start});
  ASSERT_TRUE(with) << with.error().message();
  expect_sample_table(*with, spec);
}

TEST(GoPclntab, RejectsOldAndUnknownMagics) {
  auto spec = sample(0xfffffffb);
  auto old = PclnTable::parse(build_pclntab(spec));
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message().find("1.2-1.15"), std::string::npos) << old.error().message();
  spec.magic = 0x12345678;
  EXPECT_FALSE(PclnTable::parse(build_pclntab(spec)));
  EXPECT_FALSE(PclnTable::parse(std::span<const std::byte>()));
}

TEST(GoPclntab, HeaderSanityChecks) {
  auto good = build_pclntab(sample(0xfffffff0));
  ASSERT_TRUE(parse_pclntab_header(good));
  auto bad_quantum = good;
  bad_quantum[6] = std::byte{3};
  EXPECT_FALSE(parse_pclntab_header(bad_quantum));
  auto bad_ptr = good;
  bad_ptr[7] = std::byte{16};
  EXPECT_FALSE(parse_pclntab_header(bad_ptr));
  auto bad_pad = good;
  bad_pad[4] = std::byte{1};
  EXPECT_FALSE(parse_pclntab_header(bad_pad));
  auto huge_nfunc = good;
  for (int i = 8; i < 16; ++i) huge_nfunc[i] = std::byte{0xff};
  EXPECT_FALSE(parse_pclntab_header(huge_nfunc));
  EXPECT_FALSE(PclnTable::parse(huge_nfunc));
}

TEST(GoPclntab, TruncationsAndCorruptionNeverCrash) {
  for (uint32_t magic : {0xfffffffau, 0xfffffff0u, 0xfffffff1u}) {
    auto bytes = build_pclntab(sample(magic));
    // Every prefix: the functab or records are cut off somewhere.
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto t = PclnTable::parse(std::span<const std::byte>(bytes).first(n));
      if (t) {
        for (const auto& fn : t->functions()) (void)t->source_line(fn.entry);
      }
    }
    // Random byte corruption, then exercise every query on what still parses.
    std::mt19937 rng(magic);
    for (int round = 0; round < 3000; ++round) {
      auto copy = bytes;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) copy[rng() % copy.size()] = static_cast<std::byte>(rng());
      auto t = PclnTable::parse(copy, PclnTable::Options{0x401000});
      if (!t) continue;
      for (const auto& fn : t->functions()) {
        (void)t->find_function(fn.name);
        (void)t->function_for_pc(fn.entry);
        (void)t->source_line(fn.entry);
        (void)t->source_line(fn.end ? fn.end - 1 : 0);
      }
    }
  }
}

TEST(GoPclntab, CandidateScanFindsEmbeddedTable) {
  auto table = build_pclntab(sample(0xfffffff1));
  std::vector<std::byte> blob(1000, std::byte{0x5a});
  // A lone magic with a bogus header must not count.
  const uint8_t fake[8] = {0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8};
  std::memcpy(blob.data() + 100, fake, sizeof(fake));
  const size_t at = 512;
  blob.insert(blob.begin() + at, table.begin(), table.end());
  auto found = find_pclntab_candidates(blob);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], at);
  EXPECT_TRUE(PclnTable::parse(std::span<const std::byte>(blob).subspan(at)));
}

// ---------------------------------------------------------------------------
// Real binaries built here by Go 1.19.

int line_of(const std::string& file, std::string_view needle) {
  std::ifstream in(file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(needle) != std::string::npos) return n;
  }
  return 0;
}

TEST(GoPclntabReal, StrippedResolvesTheSameAddressesAsSymtab) {
  const std::string plain_path = workload("gomutex");
  const std::string stripped_path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(plain_path);
  REQUIRE_WORKLOAD(stripped_path);
  auto plain = GoBinary::open(plain_path);
  ASSERT_TRUE(plain) << plain.error().message();
  auto stripped = GoBinary::open(stripped_path);
  ASSERT_TRUE(stripped) << stripped.error().message();
  ASSERT_EQ(plain->function_source(), FunctionSource::symtab);
  ASSERT_EQ(stripped->function_source(), FunctionSource::pclntab);
  EXPECT_EQ(stripped->pclntab().header().version, PclnVersion::go118);  // Go 1.19

  for (const char* name : {"sync.(*Mutex).lockSlow", "main.contendMutex", "sync.(*RWMutex).Lock", "main.rwReader",
                           "runtime.gopark", "runtime.newproc1"}) {
    auto from_symtab = plain->find_function(name);
    auto from_pclntab = stripped->find_function(name);
    ASSERT_TRUE(from_symtab) << name;
    ASSERT_TRUE(from_pclntab) << name;
    EXPECT_EQ(from_symtab->entry, from_pclntab->entry) << name;
    // The pcsp table ends where the linker's symbol size says the code ends.
    EXPECT_EQ(from_symtab->end, from_pclntab->end) << name;
  }

  // Every function of the pclntab resolves to the same address as in .symtab
  // (where a name is both a function and its ABI0 wrapper, .symtab calls the
  // wrapper NAME.abi0 and both sides must pick the function).
  size_t compared = 0;
  for (const auto& fn : stripped->functions()) {
    auto sym = plain->find_function(fn.name);
    auto mine = stripped->find_function(fn.name);
    if (!sym || !mine) continue;
    EXPECT_EQ(sym->entry, mine->entry) << fn.name;
    ++compared;
  }
  EXPECT_GT(compared, 1000u);
}

TEST(GoPclntabReal, ResolveFirstOfAcceptsOldAndNewMutexNames) {
  const std::string path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(path);
  auto bin = GoBinary::open(path);
  ASSERT_TRUE(bin) << bin.error().message();
  auto fn = bin->resolve_first_of({"internal/sync.(*Mutex).lockSlow", "sync.(*Mutex).lockSlow"});
  ASSERT_TRUE(fn) << fn.error().message();
  EXPECT_EQ(fn->name, "sync.(*Mutex).lockSlow");  // Go 1.19: the pre-1.24 name
  auto none = bin->resolve_first_of({"main.noSuchThing", "also.(*Not).here"});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("main.noSuchThing, also.(*Not).here"), std::string::npos);
}

TEST(GoPclntabReal, PcToFileAndLine) {
  const std::string path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(path);
  auto bin = GoBinary::open(path);
  ASSERT_TRUE(bin) << bin.error().message();
  auto fn = bin->find_function("main.contendMutex");
  ASSERT_TRUE(fn);
  auto at_entry = bin->symbolize(fn->entry);
  ASSERT_TRUE(at_entry) << at_entry.error().message();
  EXPECT_EQ(at_entry->function, "main.contendMutex");
  EXPECT_TRUE(at_entry->file.ends_with("tests/workloads/go/gomutex/main.go")) << at_entry->file;
  // The entry pc maps to the line of the func declaration; read it from the
  // source the binary was built from.
  const int decl = line_of(at_entry->file, "func contendMutex(");
  ASSERT_GT(decl, 0) << "cannot read " << at_entry->file;
  EXPECT_EQ(at_entry->line, decl);

  // A pc inside the body stays in the function, on a later line of the same file.
  auto inside = bin->symbolize(fn->entry + (fn->end - fn->entry) / 2);
  ASSERT_TRUE(inside);
  EXPECT_EQ(inside->function, "main.contendMutex");
  EXPECT_EQ(inside->entry, fn->entry);
  EXPECT_GE(inside->line, decl);

  // A runtime function resolves into the Go distribution's sources.
  auto lock_slow = bin->find_function("sync.(*Mutex).lockSlow");
  ASSERT_TRUE(lock_slow);
  auto in_sync = bin->symbolize(lock_slow->entry);
  ASSERT_TRUE(in_sync);
  EXPECT_TRUE(in_sync->file.ends_with("src/sync/mutex.go")) << in_sync->file;
  EXPECT_GT(in_sync->line, 0);

  EXPECT_FALSE(bin->symbolize(0x10));
}

TEST(GoPclntabReal, UprobeFileOffsets) {
  const std::string path = workload("gomutex");
  REQUIRE_WORKLOAD(path);
  auto bin = GoBinary::open(path);
  ASSERT_TRUE(bin) << bin.error().message();
  auto fn = bin->find_function("main.contendMutex");
  ASSERT_TRUE(fn);
  auto off = bin->file_offset(fn->entry);
  ASSERT_TRUE(off) << off.error().message();
  // The bytes at the file offset are the function's first instructions: Go
  // 1.19 amd64 functions with a stack frame start with the stack check
  // "cmp rsp, [r14+0x10]" = 49 3b 66 10.
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(*off));
  unsigned char code[4] = {};
  in.read(reinterpret_cast<char*>(code), 4);
  EXPECT_EQ(code[0], 0x49);
  EXPECT_EQ(code[1], 0x3b);
  EXPECT_EQ(code[2], 0x66);
  EXPECT_EQ(code[3], 0x10);
  EXPECT_FALSE(bin->file_offset(0x10));
}

TEST(GoPclntabReal, ScanFindsTheTableInARawStrippedFile) {
  const std::string path = workload("gomutex.stripped");
  REQUIRE_WORKLOAD(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bytes = as_bytes(std::string_view(raw.data(), raw.size()));
  auto candidates = find_pclntab_candidates(bytes);
  ASSERT_FALSE(candidates.empty());
  bool parsed = false;
  for (size_t at : candidates) {
    if (auto t = PclnTable::parse(bytes.subspan(at))) {
      parsed = true;
      EXPECT_NE(t->find_function("main.contendMutex"), nullptr);
    }
  }
  EXPECT_TRUE(parsed);
}

// Regenerates the fuzz seeds (run by hand with
// --gtest_also_run_disabled_tests and SYNCSCOPE_FUZZ_SEEDS=dir).
TEST(GoPclntab, DISABLED_WriteFuzzSeeds) {
  const char* dir = std::getenv("SYNCSCOPE_FUZZ_SEEDS");
  ASSERT_NE(dir, nullptr);
  auto write = [&](const std::string& name, const std::vector<std::byte>& bytes) {
    std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  write("go116_le64", build_pclntab(sample(0xfffffffa)));
  write("go118_le64", build_pclntab(sample(0xfffffff0)));
  write("go120_le64", build_pclntab(sample(0xfffffff1)));
  auto be = sample(0xfffffff1);
  be.big_endian = true;
  be.ptr_size = 4;
  be.quantum = 4;
  write("go120_be32_q4", build_pclntab(be));
  auto zero = sample(0xfffffff1);
  zero.write_text_start = false;
  write("go126_zero_text", build_pclntab(zero));
}

}  // namespace
}  // namespace syncscope::probes::go
