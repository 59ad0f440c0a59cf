// x86-64 instruction decoding (capstone) for probe placement.
//
// Go code must never get uretprobes (the return trampoline breaks when the
// goroutine stack moves), so a "return probe" on Go is a uprobe on every RET
// instruction of the function: ret_offsets() finds them with a linear sweep
// over the function's bytes that keeps going past the first RET and through
// int3/nop padding. direct_call_targets() lists the targets of `call rel32`
// inside a function, which is how a stripped glibc's local __lll_lock_wait is
// found from pthread_mutex_lock. All addresses are ELF vaddrs; convert them
// with ElfFile::vaddr_to_offset() before attaching. A byte sequence that does
// not decode inside a function is an error (a wrong RET guess would plant an
// int3 in the middle of an instruction and crash the target), unless only
// padding follows it.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/core/result.h"
#include "probes/elf_file.h"

namespace syncscope::probes {

enum class InstructionKind : uint8_t {
  ret,            // ret, ret imm16, repz ret
  call_direct,    // call rel32: `target` is set
  call_indirect,  // call reg / call [mem]
  jump_direct,    // jmp / jcc rel: `target` is set
  jump_indirect,
  syscall,
  int3,
  other,
};

struct Instruction {
  uint64_t vaddr = 0;
  uint8_t size = 0;
  InstructionKind kind = InstructionKind::other;
  uint64_t target = 0;
};

// Every instruction in [vaddr, vaddr + size) of `elf`'s file bytes.
Result<std::vector<Instruction>> decode(const ElfFile& elf, uint64_t vaddr, uint64_t size);
// Instructions from `vaddr` up to and including the first RET, reading at
// most `max_bytes`: for code without a symbol size (a local function found
// through a call target).
Result<std::vector<Instruction>> decode_until_ret(const ElfFile& elf, uint64_t vaddr, uint64_t max_bytes);

// vaddrs of every RET instruction inside `func` (which needs a size).
Result<std::vector<uint64_t>> ret_offsets(const ElfFile& elf, const Symbol& func);
// Distinct targets of direct calls inside `func`, sorted.
Result<std::vector<uint64_t>> direct_call_targets(const ElfFile& elf, const Symbol& func);

}  // namespace syncscope::probes
