#include "agent/collectors/cacheline_dwarf.h"

#include <dwarf.h>
#include <fcntl.h>

#include "agent/core/format.h"
#include "probes/elf_file.h"

namespace syncscope::collectors {
namespace {

constexpr int kMaxDepth = 4;

std::optional<Dwarf_Die> type_of(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  Dwarf_Die type;
  if (!dwarf_attr_integrate(die, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &type)) return std::nullopt;
  return type;
}

const char* name_of(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  if (!dwarf_attr_integrate(die, DW_AT_name, &attr)) return nullptr;
  return dwarf_formstring(&attr);
}

// The member path from `type` down to `offset`, appended to `out`.
bool describe(Dwarf_Die type, uint64_t offset, int depth, std::string& out) {
  Dwarf_Die peeled;
  if (dwarf_peel_type(&type, &peeled) != 0) return false;
  int tag = dwarf_tag(&peeled);
  if (tag == DW_TAG_array_type) {
    auto element = type_of(&peeled);
    Dwarf_Word size = 0;
    if (!element || dwarf_aggregate_size(&*element, &size) != 0 || size == 0) return false;
    out += fmt::format("[{}]", offset / size);
    if (depth >= kMaxDepth) return true;
    describe(*element, offset % size, depth + 1, out);
    return true;
  }
  if (tag != DW_TAG_structure_type && tag != DW_TAG_class_type && tag != DW_TAG_union_type) return true;  // a scalar
  // Templates (std::atomic<long>) end the path: their members are the library's.
  if (const char* type_name = dwarf_diename(&peeled);
      type_name && std::string_view(type_name).find('<') != std::string_view::npos)
    return true;
  Dwarf_Die member;
  if (dwarf_child(&peeled, &member) != 0) return false;
  do {
    int member_tag = dwarf_tag(&member);
    if (member_tag != DW_TAG_member && member_tag != DW_TAG_inheritance) continue;
    Dwarf_Attribute attr;
    Dwarf_Word start = 0;  // union members have no location: all at 0
    if (dwarf_attr(&member, DW_AT_data_member_location, &attr) && dwarf_formudata(&attr, &start) != 0) continue;
    auto member_type = type_of(&member);
    Dwarf_Word size = 0;
    if (!member_type || dwarf_aggregate_size(&*member_type, &size) != 0) continue;
    if (offset < start || offset >= start + size) continue;
    if (member_tag == DW_TAG_inheritance) return describe(*member_type, offset - start, depth, out);  // transparent
    const char* name = dwarf_diename(&member);
    if (!name) return describe(*member_type, offset - start, depth, out);  // an anonymous struct or union
    if (name[0] == '_') return true;                                       // the implementation's insides
    out += fmt::format(".{}", name);
    if (depth < kMaxDepth) describe(*member_type, offset - start, depth + 1, out);
    return true;
  } while (dwarf_siblingof(&member, &member) == 0);
  return false;  // padding between members
}

}  // namespace

Result<std::unique_ptr<DataFields>> DataFields::open(const std::string& path) {
  auto fields = std::unique_ptr<DataFields>(new DataFields());
  auto try_file = [&](const std::string& file) -> bool {
    Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return false;
    Dwarf* dwarf = dwarf_begin(fd.get(), DWARF_C_READ);
    if (!dwarf) return false;
    fields->dwarf_.reset(dwarf);
    fields->fd_ = std::move(fd);
    return true;
  };
  if (!try_file(path)) {
    auto elf = probes::ElfFile::open(path);
    auto debug = elf ? (*elf)->debug_file_path() : Result<std::string>(std::unexpected(elf.error()));
    if (!debug || !try_file(*debug)) return fail(fmt::format("{}: no DWARF", path));
  }
  Dwarf_Off offset = 0, next = 0;
  size_t header_size = 0;
  while (dwarf_nextcu(fields->dwarf_.get(), offset, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    if (dwarf_offdie(fields->dwarf_.get(), offset + header_size, &cu)) fields->index(&cu, 0);
    offset = next;
  }
  return fields;
}

void DataFields::index(Dwarf_Die* scope, int depth) {
  Dwarf_Die child;
  if (dwarf_child(scope, &child) != 0) return;
  do {
    int tag = dwarf_tag(&child);
    if (tag == DW_TAG_namespace && depth < 4) {
      index(&child, depth + 1);
    } else if (tag == DW_TAG_variable) {
      // The definition (it may only point at its declaration through
      // DW_AT_specification: name and type are integrated from there).
      if (dwarf_hasattr(&child, DW_AT_declaration)) continue;
      const char* name = name_of(&child);
      if (name && type_of(&child)) variables_.try_emplace(name, dwarf_dieoffset(&child));
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

std::optional<std::string> DataFields::field_at(std::string_view variable, uint64_t offset) const {
  auto it = variables_.find(std::string(variable));
  if (it == variables_.end()) return std::nullopt;
  Dwarf_Die die;
  if (!dwarf_offdie(dwarf_.get(), it->second, &die)) return std::nullopt;
  auto type = type_of(&die);
  if (!type) return std::nullopt;
  std::string out;
  if (!describe(*type, offset, 0, out)) return std::nullopt;
  return out;
}

}  // namespace syncscope::collectors
