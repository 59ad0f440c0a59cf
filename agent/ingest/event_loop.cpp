#include "agent/ingest/event_loop.h"

#include <sys/epoll.h>

#include <array>

namespace syncscope::ingest {

Result<EventLoop> EventLoop::create() {
  EventLoop loop;
  loop.epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!loop.epoll_) return fail_errno("epoll_create1");
  return loop;
}

Result<void> EventLoop::watch(int fd, Callback on_readable) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return fail_errno(fmt::format("epoll add fd {}", fd));
  callbacks_[fd] = std::move(on_readable);
  return {};
}

void EventLoop::unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

Result<void> EventLoop::run_once(std::chrono::milliseconds timeout) {
  std::array<epoll_event, 16> events{};
  int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                       static_cast<int>(timeout.count()));
  if (n < 0) {
    if (errno == EINTR) return {};
    return fail_errno("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    auto it = callbacks_.find(events[static_cast<size_t>(i)].data.fd);
    if (it != callbacks_.end()) {
      Callback callback = it->second;  // the callback may unwatch itself
      callback();
    }
  }
  return {};
}

}  // namespace syncscope::ingest
