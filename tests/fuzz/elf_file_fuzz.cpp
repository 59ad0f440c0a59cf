// libFuzzer target for the ELF reader: the agent opens every executable and
// shared library a watched process maps, so a truncated, corrupt or hostile
// file must give an Error naming it, never a crash, a hang or a read out of
// bounds. ElfFile only opens paths (it mmaps the file through libelf), so each
// input is written to a memfd and opened as /proc/self/fd/N.
// fuzz-sources: probes/elf_file.cpp probes/proc_maps.cpp
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/core/fd.h"
#include "probes/elf_file.h"
#include "probes/proc_maps.h"

using namespace syncscope::probes;
using syncscope::Fd;

namespace {

bool write_all(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Every query the probes make of an opened file, on addresses the file itself
// names (symbols, segments), which is where corrupt offsets would bite.
void exercise(const ElfFile& f) {
  size_t queried = 0;
  for (const Symbol& s : f.symbols()) {
    if (++queried > 512) break;  // keep each input fast
    (void)f.function_at(s.value);
    (void)f.function_at(s.value + s.size / 2);
    (void)f.object_at(s.value + 1);
    (void)f.read(s.value, std::min<uint64_t>(s.size, 64));
    (void)f.vaddr_to_offset(s.value);
    (void)f.find_symbol(s.name);
    (void)f.find_symbol(s.full_name());
  }
  for (const Section& s : f.sections()) (void)f.section_bytes(s);
  for (const LoadSegment& seg : f.load_segments()) {
    (void)f.offset_to_vaddr(seg.offset);
    (void)f.segment_for_map_offset(seg.offset & ~uint64_t{0xfff});
    (void)f.read(seg.vaddr, seg.file_size);
    (void)f.read(seg.vaddr + seg.mem_size - 1, 2);
    // The /proc/PID/maps side: a mapping of this segment at a random bias.
    Mapping m;
    m.start = (seg.vaddr & ~uint64_t{0xfff}) + 0x7f0000000000;
    m.end = m.start + std::max<uint64_t>(seg.mem_size, 1);
    m.offset = seg.offset & ~uint64_t{0xfff};
    m.kind = MappingKind::file;
    (void)load_bias(m, f);
    (void)file_vaddr(m, m.start, f);
    (void)file_vaddr(m, m.end - 1, f);
  }
  (void)f.data_objects();
  (void)f.find_symbol("pthread_mutex_lock@@GLIBC_2.2.5");
  (void)f.find_symbol("__lll_lock_wait");
  (void)f.function_at(0);
  (void)f.function_at(~uint64_t{0});
  (void)f.debug_file_path("/nonexistent-debug-root");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fd fd(::memfd_create("elf_file_fuzz", MFD_CLOEXEC));
  if (!fd || !write_all(fd.get(), data, size)) return 0;
  auto elf = ElfFile::open("/proc/self/fd/" + std::to_string(fd.get()));
  if (elf) exercise(**elf);
  return 0;
}
