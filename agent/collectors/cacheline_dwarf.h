// Field names for data addresses, from DWARF (libdw): "g_stats+0x48" becomes
// "g_stats.slots[4].hits" when the binary (or its debug file) describes the
// global's type.
//
// The path stops where more detail would only name the library's insides:
// at a member whose name starts with "_" (std::mutex's _M_mutex, glibc's
// __data), at a template type (std::atomic<long>), at a scalar, or after
// four levels. Base classes are transparent. A file without DWARF, an
// unknown variable, or padding between members give nothing.
#pragma once

#include <elfutils/libdw.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agent/core/fd.h"
#include "agent/core/result.h"

namespace syncscope::collectors {

class DataFields {
 public:
  // DWARF of `path`, or of its separate debug file (build-id) when `path`
  // has none.
  static Result<std::unique_ptr<DataFields>> open(const std::string& path);

  // ".field[1]" for `offset` bytes into the global `variable` (its plain
  // DW_AT_name: "g_stats", not "ns::g_stats"); nullopt when unknown.
  std::optional<std::string> field_at(std::string_view variable, uint64_t offset) const;
  size_t variables() const { return variables_.size(); }

 private:
  DataFields() = default;
  void index(Dwarf_Die* scope, int depth);

  Fd fd_;
  CHandle<Dwarf, dwarf_end> dwarf_;
  std::unordered_map<std::string, Dwarf_Off> variables_;  // name → DIE offset of a DW_TAG_variable with a type
};

}  // namespace syncscope::collectors
