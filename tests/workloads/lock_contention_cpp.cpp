// Contended C++ standard-library locks with known waits, the C++ twin of
// lock_contention.c: std::mutex (a pthread mutex underneath) and
// std::shared_mutex (a pthread rwlock), each lock call timed with
// clock_gettime.
//
//   lock_contention_cpp MODE THREADS ITERATIONS HOLD_US
//
// MODE: std_mutex, shared_mutex (even iterations lock(), odd lock_shared()).
// Output as lock_contention.c: "ready pid=N", a line on stdin starts it, then
// "lock name=… addr=0x… kind=… wait_ns=N calls=N", "done", and it waits for
// stdin to close.
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex g_std_mutex;
std::shared_mutex g_shared_mutex;
std::atomic<uint64_t> g_wait_ns{0};
std::atomic<uint64_t> g_calls{0};

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void hold(long us) {
  timespec ts{us / 1'000'000, (us % 1'000'000) * 1000};
  nanosleep(&ts, nullptr);
}

void wait_for_line() {
  char line[64];
  if (!std::fgets(line, sizeof line, stdin)) std::exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s std_mutex|shared_mutex THREADS ITERATIONS HOLD_US\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  int threads = std::atoi(argv[2]);
  long iterations = std::atol(argv[3]);
  long hold_us = std::atol(argv[4]);
  if (mode != "std_mutex" && mode != "shared_mutex") {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  std::printf("ready pid=%d\n", getpid());
  wait_for_line();

  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (long i = 0; i < iterations; ++i) {
        if (mode == "std_mutex") {
          uint64_t t0 = now_ns();
          g_std_mutex.lock();
          g_wait_ns += now_ns() - t0;
          g_calls += 1;
          hold(hold_us);
          g_std_mutex.unlock();
        } else if (i % 2 == 0) {
          uint64_t t0 = now_ns();
          g_shared_mutex.lock();
          g_wait_ns += now_ns() - t0;
          g_calls += 1;
          hold(hold_us);
          g_shared_mutex.unlock();
        } else {
          uint64_t t0 = now_ns();
          g_shared_mutex.lock_shared();
          g_wait_ns += now_ns() - t0;
          g_calls += 1;
          hold(hold_us);
          g_shared_mutex.unlock_shared();
        }
        std::this_thread::yield();
      }
    });
  }
  for (std::thread& w : workers) w.join();

  const void* addr = mode == "std_mutex" ? static_cast<const void*>(&g_std_mutex) : &g_shared_mutex;
  std::printf("lock name=%s addr=%p kind=%s wait_ns=%llu calls=%llu\n",
              mode == "std_mutex" ? "g_std_mutex" : "g_shared_mutex", addr,
              mode == "std_mutex" ? "mutex" : "rwlock", static_cast<unsigned long long>(g_wait_ns.load()),
              static_cast<unsigned long long>(g_calls.load()));
  std::printf("done\n");
  wait_for_line();
  return 0;
}
