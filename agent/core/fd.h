// A move-only owner of a file descriptor, and unique_ptr deleters for the C
// handles the agent holds (libbpf objects, ring buffers, links, CURL).
#pragma once

#include <unistd.h>

#include <memory>
#include <utility>

namespace syncscope {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// unique_ptr<T, CDeleter<fn>>: calls fn(ptr) when the owner goes away.
template <auto DeleteFn>
struct CDeleter {
  template <typename T>
  void operator()(T* ptr) const {
    if (ptr) DeleteFn(ptr);
  }
};

template <typename T, auto DeleteFn>
using CHandle = std::unique_ptr<T, CDeleter<DeleteFn>>;

}  // namespace syncscope
