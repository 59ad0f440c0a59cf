#include "probes/disasm.h"

#include <capstone/capstone.h>

#include <algorithm>
#include <span>

#include "agent/core/format.h"

namespace syncscope::probes {
namespace {

// A capstone handle plus its one reusable instruction buffer. Handles are
// cheap and not thread-safe, so each decode owns one.
class Capstone {
 public:
  static Result<Capstone> open() {
    Capstone cs;
    if (cs_err err = cs_open(CS_ARCH_X86, CS_MODE_64, &cs.handle_); err != CS_ERR_OK)
      return fail(fmt::format("capstone: cs_open: {}", cs_strerror(err)));
    cs.open_ = true;
    cs_option(cs.handle_, CS_OPT_DETAIL, CS_OPT_ON);  // operands: call/jump targets
    cs.insn_ = cs_malloc(cs.handle_);
    if (!cs.insn_) return fail("capstone: cs_malloc failed");
    return cs;
  }
  Capstone(Capstone&& other) noexcept
      : handle_(other.handle_), insn_(std::exchange(other.insn_, nullptr)), open_(std::exchange(other.open_, false)) {}
  Capstone& operator=(Capstone&&) = delete;
  Capstone(const Capstone&) = delete;
  ~Capstone() {
    if (insn_) cs_free(insn_, 1);
    if (open_) cs_close(&handle_);
  }

  // Decodes one instruction at *code; advances code/size/address on success.
  bool next(const uint8_t** code, size_t* size, uint64_t* address) {
    return cs_disasm_iter(handle_, code, size, address, insn_);
  }
  Instruction current() const {
    Instruction out;
    out.vaddr = insn_->address;
    out.size = static_cast<uint8_t>(insn_->size);
    const cs_x86& x86 = insn_->detail->x86;
    const bool imm_target = x86.op_count == 1 && x86.operands[0].type == X86_OP_IMM;
    if (cs_insn_group(handle_, insn_, CS_GRP_RET)) {
      out.kind = InstructionKind::ret;
    } else if (insn_->id == X86_INS_CALL) {
      out.kind = imm_target ? InstructionKind::call_direct : InstructionKind::call_indirect;
    } else if (cs_insn_group(handle_, insn_, CS_GRP_JUMP)) {
      out.kind = imm_target ? InstructionKind::jump_direct : InstructionKind::jump_indirect;
    } else if (insn_->id == X86_INS_SYSCALL) {
      out.kind = InstructionKind::syscall;
    } else if (insn_->id == X86_INS_INT3) {
      out.kind = InstructionKind::int3;
    }
    if (imm_target && (out.kind == InstructionKind::call_direct || out.kind == InstructionKind::jump_direct))
      out.target = static_cast<uint64_t>(x86.operands[0].imm);
    return out;
  }

 private:
  Capstone() = default;
  csh handle_ = 0;
  cs_insn* insn_ = nullptr;
  bool open_ = false;
};

// Compilers pad functions with int3 (0xcc), nop (0x90) or zero bytes.
bool only_padding(std::span<const uint8_t> bytes) {
  return std::ranges::all_of(bytes, [](uint8_t b) { return b == 0xCC || b == 0x90 || b == 0x00; });
}

std::string where(const ElfFile& elf, uint64_t vaddr) {
  if (auto match = elf.function_at(vaddr))
    return fmt::format("{:#x} ({}+{:#x}) in {}", vaddr, match->symbol->name, match->offset, elf.path());
  return fmt::format("{:#x} in {}", vaddr, elf.path());
}

Result<std::vector<Instruction>> sweep(const ElfFile& elf, uint64_t vaddr, std::span<const uint8_t> bytes,
                                       bool stop_at_ret) {
  Capstone cs = TRY(Capstone::open());
  std::vector<Instruction> out;
  const uint8_t* code = bytes.data();
  size_t left = bytes.size();
  uint64_t address = vaddr;
  while (left > 0) {
    if (!cs.next(&code, &left, &address)) {
      std::span<const uint8_t> rest(code, left);
      if (only_padding(rest)) break;
      return fail(fmt::format("cannot decode the x86-64 instruction at {} (byte {:#04x}); refusing to guess",
                              where(elf, address), *code));
    }
    out.push_back(cs.current());
    if (stop_at_ret && out.back().kind == InstructionKind::ret) break;
  }
  return out;
}

Result<std::span<const uint8_t>> function_bytes(const ElfFile& elf, const Symbol& func) {
  if (func.size == 0)
    return fail(fmt::format("{}: function {} has no size; cannot tell where it ends", elf.path(), func.name));
  auto bytes = elf.read(func.value, func.size);
  if (!bytes) return std::unexpected(bytes.error().wrap(fmt::format("function {}", func.name)));
  return *bytes;
}

}  // namespace

Result<std::vector<Instruction>> decode(const ElfFile& elf, uint64_t vaddr, uint64_t size) {
  std::span<const uint8_t> bytes = TRY(elf.read(vaddr, size));
  return sweep(elf, vaddr, bytes, false);
}

Result<std::vector<Instruction>> decode_until_ret(const ElfFile& elf, uint64_t vaddr, uint64_t max_bytes) {
  uint64_t available = 0;
  for (const LoadSegment& seg : elf.load_segments())
    if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.file_size) available = seg.file_size - (vaddr - seg.vaddr);
  std::span<const uint8_t> bytes = TRY(elf.read(vaddr, std::min(max_bytes, available)));
  auto out = TRY(sweep(elf, vaddr, bytes, true));
  if (out.empty() || out.back().kind != InstructionKind::ret)
    return fail(fmt::format("no RET within {} bytes of {}", max_bytes, where(elf, vaddr)));
  return out;
}

Result<std::vector<uint64_t>> ret_offsets(const ElfFile& elf, const Symbol& func) {
  std::span<const uint8_t> bytes = TRY(function_bytes(elf, func));
  auto insns = TRY(sweep(elf, func.value, bytes, false));
  std::vector<uint64_t> rets;
  for (const Instruction& insn : insns)
    if (insn.kind == InstructionKind::ret) rets.push_back(insn.vaddr);
  return rets;
}

Result<std::vector<uint64_t>> direct_call_targets(const ElfFile& elf, const Symbol& func) {
  std::span<const uint8_t> bytes = TRY(function_bytes(elf, func));
  auto insns = TRY(sweep(elf, func.value, bytes, false));
  std::vector<uint64_t> targets;
  for (const Instruction& insn : insns)
    if (insn.kind == InstructionKind::call_direct) targets.push_back(insn.target);
  std::ranges::sort(targets);
  auto dup = std::ranges::unique(targets);
  targets.erase(dup.begin(), dup.end());
  return targets;
}

}  // namespace syncscope::probes
