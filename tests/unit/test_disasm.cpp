// RET and call-target discovery on hand-written assembly (exact answers
// known), on compiled code, and on the real libc.
#include "probes/disasm.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

// Functions whose instruction layout we control. Labels mark the answers.
//  - two RETs with int3 padding between and after them, and 0xc3 bytes inside
//    a mov immediate that must not count as RETs;
//  - a direct call to a local leaf, an indirect call and a jump that must not
//    count as call targets;
//  - a function whose last byte is a lone 0x00 (undecodable but padding);
//  - a function with an invalid opcode (0x06) in the middle of its code.
asm(R"(
  .text
  .p2align 4
  .type syncscope_test_leaf, @function
syncscope_test_leaf:
  ret
  .size syncscope_test_leaf, .-syncscope_test_leaf

  .p2align 4
  .globl syncscope_test_two_rets
  .type syncscope_test_two_rets, @function
syncscope_test_two_rets:
  test %edi, %edi
  je 1f
  mov $0xc3c3c3c3, %eax
  .globl syncscope_test_ret_1
syncscope_test_ret_1:
  ret
  int3
  int3
1:
  xor %eax, %eax
  .globl syncscope_test_call_site
syncscope_test_call_site:
  call syncscope_test_leaf
  lea syncscope_test_leaf(%rip), %rdx
  call *%rdx
  cmp $0xc3, %eax
  jne 2f
2:
  .globl syncscope_test_ret_2
syncscope_test_ret_2:
  ret
  int3
  int3
  int3
  .size syncscope_test_two_rets, .-syncscope_test_two_rets

  .p2align 4
  .globl syncscope_test_trailing_pad
  .type syncscope_test_trailing_pad, @function
syncscope_test_trailing_pad:
  nop
  ret
  .byte 0x00
  .size syncscope_test_trailing_pad, .-syncscope_test_trailing_pad

  .p2align 4
  .globl syncscope_test_bad_opcode
  .type syncscope_test_bad_opcode, @function
syncscope_test_bad_opcode:
  nop
  .byte 0x06
  ret
  .size syncscope_test_bad_opcode, .-syncscope_test_bad_opcode
)");

extern "C" {
int syncscope_test_two_rets(int);
extern const char syncscope_test_ret_1[];
extern const char syncscope_test_ret_2[];
extern const char syncscope_test_call_site[];

__attribute__((noinline, used)) int syncscope_test_branchy(int x) {
  asm volatile("" ::: "memory");
  if (x > 10) return x * 2;
  return x - 1;
}
}

namespace syncscope::probes {
namespace {

class DisasmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = ElfFile::open("/proc/self/exe");
    ASSERT_TRUE(opened) << opened.error().message();
    exe_ = std::move(*opened);
    Dl_info info{};
    ASSERT_NE(dladdr(reinterpret_cast<void*>(&syncscope_test_two_rets), &info), 0);
    bias_ = exe_->position_independent() ? reinterpret_cast<uint64_t>(info.dli_fbase) : 0;
  }
  const Symbol& sym(std::string_view name) {
    const Symbol* s = exe_->find_symbol(name);
    EXPECT_NE(s, nullptr) << name;
    static const Symbol none;
    return s ? *s : none;
  }
  uint64_t vaddr_of(const void* p) const { return reinterpret_cast<uint64_t>(p) - bias_; }

  std::unique_ptr<ElfFile> exe_;
  uint64_t bias_ = 0;
};

TEST_F(DisasmTest, FindsEveryRetAndIgnoresC3InsideInstructions) {
  auto rets = ret_offsets(*exe_, sym("syncscope_test_two_rets"));
  ASSERT_TRUE(rets) << rets.error().message();
  EXPECT_EQ(*rets, (std::vector<uint64_t>{vaddr_of(syncscope_test_ret_1), vaddr_of(syncscope_test_ret_2)}));
}

TEST_F(DisasmTest, DirectCallTargetsOnly) {
  auto targets = direct_call_targets(*exe_, sym("syncscope_test_two_rets"));
  ASSERT_TRUE(targets) << targets.error().message();
  EXPECT_EQ(*targets, std::vector<uint64_t>{sym("syncscope_test_leaf").value});

  auto insns = decode(*exe_, vaddr_of(syncscope_test_call_site), 5);
  ASSERT_TRUE(insns) << insns.error().message();
  ASSERT_EQ(insns->size(), 1u);
  EXPECT_EQ((*insns)[0].kind, InstructionKind::call_direct);
  EXPECT_EQ((*insns)[0].size, 5);
}

TEST_F(DisasmTest, DecodeUntilRetStopsAtTheFirstRet) {
  auto insns = decode_until_ret(*exe_, sym("syncscope_test_two_rets").value, 256);
  ASSERT_TRUE(insns) << insns.error().message();
  ASSERT_EQ(insns->size(), 4u);  // test, je, mov, ret
  EXPECT_EQ(insns->back().kind, InstructionKind::ret);
  EXPECT_EQ(insns->back().vaddr, vaddr_of(syncscope_test_ret_1));
  EXPECT_EQ((*insns)[1].kind, InstructionKind::jump_direct);
}

TEST_F(DisasmTest, TrailingPaddingIsTolerated) {
  auto rets = ret_offsets(*exe_, sym("syncscope_test_trailing_pad"));
  ASSERT_TRUE(rets) << rets.error().message();
  EXPECT_EQ(*rets, std::vector<uint64_t>{sym("syncscope_test_trailing_pad").value + 1});
}

TEST_F(DisasmTest, UndecodableCodeIsAnErrorNotAGuess) {
  auto rets = ret_offsets(*exe_, sym("syncscope_test_bad_opcode"));
  ASSERT_FALSE(rets);
  EXPECT_NE(rets.error().message().find("syncscope_test_bad_opcode+0x1"), std::string::npos) << rets.error().message();

  Symbol unsized = sym("syncscope_test_branchy");
  unsized.size = 0;
  auto no_size = ret_offsets(*exe_, unsized);
  ASSERT_FALSE(no_size);
  EXPECT_NE(no_size.error().message().find("no size"), std::string::npos);
}

TEST_F(DisasmTest, CompiledFunctionRetsPointAtRetOpcodes) {
  const Symbol& f = sym("syncscope_test_branchy");
  auto rets = ret_offsets(*exe_, f);
  ASSERT_TRUE(rets) << rets.error().message();
  ASSERT_FALSE(rets->empty());
  for (uint64_t r : *rets) {
    EXPECT_GE(r, f.value);
    EXPECT_LT(r, f.value + f.size);
    auto byte = *reinterpret_cast<const uint8_t*>(r + bias_);
    EXPECT_TRUE(byte == 0xc3 || byte == 0xf3 || byte == 0xf2) << std::hex << int(byte);
  }
}

TEST(DisasmLibc, EveryRetInLibcIsARetOpcode) {
  auto libc = ElfFile::open("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(libc) << libc.error().message();
  size_t functions = 0, rets = 0, refused = 0;
  for (const Symbol& s : (*libc)->symbols()) {
    if (s.type != SymbolType::func || s.size == 0 || s.table != SymbolTable::dynsym) continue;
    ++functions;
    auto found = ret_offsets(**libc, s);
    if (!found) {
      ++refused;  // capstone 4 does not know a few newer opcodes (rdpkru in pkey_get)
      continue;
    }
    for (uint64_t r : *found) {
      auto byte = (*libc)->read(r, 1);
      ASSERT_TRUE(byte);
      uint8_t b = (*byte)[0];
      EXPECT_TRUE(b == 0xc3 || b == 0xc2 || b == 0xf3 || b == 0xf2) << s.name << " " << std::hex << r;
      ++rets;
    }
  }
  EXPECT_GT(functions, 1000u);
  EXPECT_GT(rets, functions / 2);
  EXPECT_LT(refused, 10u) << "decoding should refuse only a handful of exotic functions";
}

}  // namespace
}  // namespace syncscope::probes
