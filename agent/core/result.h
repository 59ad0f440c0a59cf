// One error type for the whole agent.
//
// Every fallible function returns Result<T> = std::expected<T, Error>. The
// message names the object that failed (file, key, process, program) and, when
// a system call failed, the errno text. Recoverable errors travel up as values;
// only main() turns them into an exit code.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include "agent/core/format.h"
#include <string>
#include <utility>

namespace syncscope {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message, int sys_errno = 0)
      : message_(std::move(message)), errno_(sys_errno) {}

  // "open /sys/fs/cgroup: Permission denied" — the errno text is appended once.
  static Error from_errno(std::string what, int sys_errno = errno) {
    return Error(fmt::format("{}: {}", what, std::strerror(sys_errno)), sys_errno);
  }

  const std::string& message() const { return message_; }
  int sys_errno() const { return errno_; }

  // Adds outer context: Error("bad value").wrap("config.yaml:3:5") →
  // "config.yaml:3:5: bad value".
  Error wrap(std::string_view context) const {
    return Error(fmt::format("{}: {}", context, message_), errno_);
  }

 private:
  std::string message_;
  int errno_ = 0;
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message, int sys_errno = 0) {
  return std::unexpected(Error(std::move(message), sys_errno));
}

inline std::unexpected<Error> fail_errno(std::string what, int sys_errno = errno) {
  return std::unexpected(Error::from_errno(std::move(what), sys_errno));
}

// libbpf returns negative errno values; this keeps the conversion in one place.
inline std::unexpected<Error> fail_libbpf(std::string what, int negative_errno) {
  return fail_errno(std::move(what), negative_errno < 0 ? -negative_errno : negative_errno);
}

namespace detail {
template <typename T>
T take_value(std::expected<T, Error>&& r) { return std::move(*r); }
inline void take_value(std::expected<void, Error>&&) {}
}  // namespace detail

}  // namespace syncscope

// Propagate an error from an expression returning Result<T>, yielding its value.
// (A GNU statement expression: the same idiom bpftrace and systemd use.)
#define TRY(expr)                                              \
  ({                                                           \
    auto try_result_ = (expr);                                 \
    if (!try_result_) return std::unexpected(try_result_.error()); \
    ::syncscope::detail::take_value(std::move(try_result_));   \
  })
