// Bounds-checked reads over bytes taken from a file the agent does not
// control. Every accessor returns nullopt instead of reading past the end, so
// the Go parsers (buildinfo, pclntab) can be fed truncated or hostile input,
// and fuzzed, without a single unchecked index.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

namespace syncscope::probes::go {

class ByteView {
 public:
  ByteView() = default;
  explicit ByteView(std::span<const std::byte> data, bool big_endian = false)
      : data_(data), big_endian_(big_endian) {}

  size_t size() const { return data_.size(); }
  bool big_endian() const { return big_endian_; }
  std::span<const std::byte> bytes() const { return data_; }

  bool contains(uint64_t offset, uint64_t length) const {
    return offset <= data_.size() && length <= data_.size() - offset;
  }

  // The bytes [offset, offset + length), or nullopt when any of it is missing.
  std::optional<std::span<const std::byte>> slice(uint64_t offset, uint64_t length) const {
    if (!contains(offset, length)) return std::nullopt;
    return data_.subspan(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  // Everything from offset to the end (empty when offset is past the end).
  ByteView tail(uint64_t offset) const {
    if (offset >= data_.size()) return ByteView({}, big_endian_);
    return ByteView(data_.subspan(static_cast<size_t>(offset)), big_endian_);
  }

  std::optional<uint8_t> u8(uint64_t offset) const {
    if (!contains(offset, 1)) return std::nullopt;
    return static_cast<uint8_t>(data_[static_cast<size_t>(offset)]);
  }
  std::optional<uint32_t> u32(uint64_t offset) const { return read_uint<uint32_t>(offset); }
  std::optional<uint64_t> u64(uint64_t offset) const { return read_uint<uint64_t>(offset); }
  // A pointer-sized word (4 or 8 bytes): the width Go's tables store uintptr in.
  std::optional<uint64_t> word(uint64_t offset, unsigned ptr_size) const {
    if (ptr_size == 4) {
      auto v = u32(offset);
      if (!v) return std::nullopt;
      return *v;
    }
    if (ptr_size == 8) return u64(offset);
    return std::nullopt;
  }

  // A NUL-terminated string starting at offset; nullopt when no NUL appears
  // within max_length bytes (a corrupt offset would otherwise swallow the file).
  std::optional<std::string_view> c_string(uint64_t offset, size_t max_length = 4096) const {
    if (offset >= data_.size()) return std::nullopt;
    const size_t start = static_cast<size_t>(offset);
    const size_t limit = std::min(data_.size() - start, max_length);
    const auto* base = reinterpret_cast<const char*>(data_.data()) + start;
    const void* nul = std::memchr(base, 0, limit);
    if (!nul) return std::nullopt;
    return std::string_view(base, static_cast<const char*>(nul) - base);
  }

  // `length` raw bytes as text (Go strings are not NUL-terminated).
  std::optional<std::string_view> text(uint64_t offset, uint64_t length) const {
    auto s = slice(offset, length);
    if (!s) return std::nullopt;
    return std::string_view(reinterpret_cast<const char*>(s->data()), s->size());
  }

  // An unsigned LEB128 varint (encoding/binary.Uvarint) at *offset, at most
  // `max_bytes` long; advances *offset past it.
  std::optional<uint64_t> uvarint(uint64_t* offset, unsigned max_bytes = 10) const {
    uint64_t value = 0;
    unsigned shift = 0;
    for (unsigned i = 0; i < max_bytes; ++i) {
      auto b = u8(*offset);
      if (!b) return std::nullopt;
      ++*offset;
      if (shift < 64) value |= static_cast<uint64_t>(*b & 0x7f) << shift;
      if ((*b & 0x80) == 0) return value;
      shift += 7;
    }
    return std::nullopt;
  }

 private:
  template <typename T>
  std::optional<T> read_uint(uint64_t offset) const {
    if (!contains(offset, sizeof(T))) return std::nullopt;
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, data_.data() + offset, sizeof(T));
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      const size_t shift_index = big_endian_ ? sizeof(T) - 1 - i : i;
      value |= static_cast<T>(raw[i]) << (8 * shift_index);
    }
    return value;
  }

  std::span<const std::byte> data_;
  bool big_endian_ = false;
};

// The memory image of a binary, addressed by virtual address: the Go tables
// hold pointers (pre-1.18 buildinfo, moduledata, string headers) that must be
// followed to wherever they point in the file. The ELF loader implements it
// over PT_LOAD segments and applies R_*_RELATIVE relocations of PIE binaries,
// whose pointer words are zero in the file; tests implement it over a buffer.
class AddressSpace {
 public:
  virtual ~AddressSpace() = default;
  // The file bytes backing [vaddr, vaddr + length), or nullopt when any of
  // them is unmapped or not in the file (.bss).
  virtual std::optional<std::span<const std::byte>> read(uint64_t vaddr, uint64_t length) const = 0;
  // A pointer stored at vaddr, as the loaded program would see it.
  virtual std::optional<uint64_t> read_pointer(uint64_t vaddr, unsigned ptr_size, bool big_endian) const {
    auto bytes = read(vaddr, ptr_size);
    if (!bytes) return std::nullopt;
    return ByteView(*bytes, big_endian).word(0, ptr_size);
  }
};

// An AddressSpace of one contiguous buffer loaded at `base`.
class FlatAddressSpace : public AddressSpace {
 public:
  FlatAddressSpace(std::span<const std::byte> data, uint64_t base) : data_(data), base_(base) {}
  std::optional<std::span<const std::byte>> read(uint64_t vaddr, uint64_t length) const override {
    if (vaddr < base_) return std::nullopt;
    return ByteView(data_).slice(vaddr - base_, length);
  }

 private:
  std::span<const std::byte> data_;
  uint64_t base_;
};

// Views a string or vector of chars as bytes (tests and fuzzers build inputs
// that way).
inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace syncscope::probes::go
