// Cache-line sharing with known answers, for the cache-line detector's tests
// and benchmarks. Every mode works on globals of this binary (found by the
// detector through .bss symbols) or a region it prints, and reports its own
// throughput so the detector's cost can be measured.
//
//   falseshare MODE THREADS SECONDS [REPORT_MS]
//
// MODE
//   false_sharing  thread i hammers g_false_shared.field[i % 2]: two
//                  std::atomic<long> side by side on one 64-byte line
//   padded         the same on g_padded, whose fields are alignas(64): none
//   heap_false_sharing  the same as false_sharing on a heap copy of the struct
//                  (printed as "heap addr=0x…")
//   true_sharing   every thread hammers the one counter g_true_shared
//   mutexes        thread i locks and unlocks g_mutex_pair.m[i % 2]: two
//                  std::mutex whose lock words share one line
//   big_atomic     every thread does compare-exchange loops on g_big_atomic,
//                  a 24-byte std::atomic: calls libatomic's __atomic_load and
//                  __atomic_compare_exchange (the address is argument 1)
//   user_atomic    every thread calls bump_counter(&g_user_counter), an
//                  out-of-line function taking the address in argument 0
//   page_faults    thread i writes address region + p*4096 + 128 + 8*i of
//                  every page p with p % THREADS == i, then the pages are
//                  dropped (MADV_DONTNEED) and touched again, so every round
//                  faults at exactly those addresses
// SECONDS 0 runs until a second line arrives on stdin (or stdin closes).
//
// Output: "ready pid=N mode=M", one "global name=… addr=0x… size=N line=0x…"
// per global, then it waits for a line on stdin ("go"). Then "thread
// index=I tid=T" per thread, "rate ops_per_s=X" every REPORT_MS (default
// 500), and at the end "done ops=N seconds=S ops_per_s=X"; then it waits for
// stdin to close.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct alignas(64) FalseShared {
  std::atomic<long> field[2];
};
struct alignas(64) Padded {
  alignas(64) std::atomic<long> a;
  alignas(64) std::atomic<long> b;
};
struct alignas(64) MutexPair {
  std::mutex m[2];
};
struct Triple {
  long a, b, c;
};

FalseShared g_false_shared;
Padded g_padded;
alignas(64) std::atomic<long> g_true_shared;
MutexPair g_mutex_pair;
alignas(64) std::atomic<Triple> g_big_atomic;
alignas(64) std::atomic<long> g_user_counter;

// The null check keeps the first instruction free of a LOCK prefix: x86
// uprobes refuse to single-step locked instructions (ENOTSUPP).
extern "C" __attribute__((noinline)) void bump_counter(std::atomic<long>* counter) {
  if (!counter) return;
  counter->fetch_add(1, std::memory_order_relaxed);
  asm volatile("" ::: "memory");  // keep the call out of line
}

namespace {

constexpr size_t kPages = 64;

struct alignas(64) ThreadOps {
  std::atomic<uint64_t> ops{0};
};

std::atomic<bool> g_stop{false};
char* g_region = nullptr;
FalseShared* g_heap = nullptr;

void print_global(const char* name, const void* addr, size_t size) {
  auto a = reinterpret_cast<uintptr_t>(addr);
  std::printf("global name=%s addr=%#lx size=%zu line=%#lx\n", name, static_cast<unsigned long>(a), size,
              static_cast<unsigned long>(a & ~uintptr_t{63}));
}

bool wait_for_line() {
  char line[64];
  return std::fgets(line, sizeof line, stdin) != nullptr;
}

void work(const std::string& mode, int index, int threads, ThreadOps& counter) {
  uint64_t ops = 0;
  auto publish = [&] { counter.ops.store(ops, std::memory_order_relaxed); };
  if (mode == "false_sharing" || mode == "padded" || mode == "true_sharing" || mode == "heap_false_sharing") {
    std::atomic<long>& target = mode == "false_sharing"        ? g_false_shared.field[index % 2]
                                : mode == "heap_false_sharing" ? g_heap->field[index % 2]
                                : mode == "padded"             ? (index % 2 ? g_padded.b : g_padded.a)
                                                               : g_true_shared;
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 1024; ++i) target.fetch_add(1, std::memory_order_relaxed);
      ops += 1024;
      publish();
    }
  } else if (mode == "mutexes") {
    std::mutex& m = g_mutex_pair.m[index % 2];
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 256; ++i) {
        m.lock();
        asm volatile("" ::: "memory");
        m.unlock();
      }
      ops += 256;
      publish();
    }
  } else if (mode == "big_atomic") {
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i) {
        Triple seen = g_big_atomic.load(std::memory_order_relaxed);
        Triple next{seen.a + 1, seen.b, seen.c + index};
        while (!g_big_atomic.compare_exchange_weak(seen, next, std::memory_order_relaxed))
          next = Triple{seen.a + 1, seen.b, seen.c + index};
      }
      ops += 64;
      publish();
    }
  } else if (mode == "user_atomic") {
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 256; ++i) bump_counter(&g_user_counter);
      ops += 256;
      publish();
    }
  } else if (mode == "page_faults") {
    while (!g_stop.load(std::memory_order_relaxed)) {
      for (size_t p = static_cast<size_t>(index); p < kPages; p += static_cast<size_t>(threads)) {
        volatile char* where = g_region + p * 4096 + 128 + 8 * index;
        *where = 1;
        ++ops;
      }
      publish();
      // Drop this thread's pages so the next round faults again.
      for (size_t p = static_cast<size_t>(index); p < kPages; p += static_cast<size_t>(threads))
        madvise(g_region + p * 4096, 4096, MADV_DONTNEED);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s false_sharing|padded|true_sharing|heap_false_sharing|mutexes|big_atomic|user_atomic|"
                 "page_faults THREADS SECONDS [REPORT_MS]\n",
                 argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  int threads = std::atoi(argv[2]);
  double seconds = std::atof(argv[3]);
  int report_ms = argc > 4 ? std::atoi(argv[4]) : 500;
  static const char* kModes[] = {"false_sharing", "padded",     "true_sharing", "heap_false_sharing",
                                 "mutexes",       "big_atomic", "user_atomic",  "page_faults"};
  bool known = false;
  for (const char* m : kModes) known |= mode == m;
  if (!known || threads < 1 || report_ms < 1) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  g_region =
      static_cast<char*>(mmap(nullptr, kPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  std::printf("ready pid=%d mode=%s\n", getpid(), mode.c_str());
  print_global("g_false_shared", &g_false_shared, sizeof g_false_shared);
  print_global("g_padded", &g_padded, sizeof g_padded);
  print_global("g_true_shared", &g_true_shared, sizeof g_true_shared);
  print_global("g_mutex_pair", &g_mutex_pair, sizeof g_mutex_pair);
  print_global("g_big_atomic", &g_big_atomic, sizeof g_big_atomic);
  print_global("g_user_counter", &g_user_counter, sizeof g_user_counter);
  g_heap = new FalseShared();
  std::printf("heap addr=%#lx\n", reinterpret_cast<unsigned long>(g_heap));
  std::printf("region addr=%#lx pages=%zu\n", reinterpret_cast<unsigned long>(g_region), kPages);
  if (!wait_for_line()) return 0;

  std::vector<ThreadOps> counters(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  std::atomic<int> started{0};
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      std::printf("thread index=%d tid=%ld\n", i, static_cast<long>(syscall(SYS_gettid)));
      started.fetch_add(1);
      work(mode, i, threads, counters[static_cast<size_t>(i)]);
    });
  }
  while (started.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // With SECONDS 0, a second line on stdin (or its end) stops the work.
  std::thread stopper;
  if (seconds <= 0)
    stopper = std::thread([] {
      wait_for_line();
      g_stop = true;
    });
  auto total = [&] {
    uint64_t sum = 0;
    for (const ThreadOps& c : counters) sum += c.ops.load(std::memory_order_relaxed);
    return sum;
  };
  auto start = std::chrono::steady_clock::now();
  auto last = start;
  uint64_t last_ops = 0;
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(report_ms));
    auto now = std::chrono::steady_clock::now();
    uint64_t ops = total();
    double dt = std::chrono::duration<double>(now - last).count();
    std::printf("rate ops_per_s=%.0f\n", static_cast<double>(ops - last_ops) / dt);
    last = now;
    last_ops = ops;
    if (seconds > 0 && std::chrono::duration<double>(now - start).count() >= seconds) g_stop = true;
  }
  for (std::thread& w : workers) w.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t ops = total();
  std::printf("done ops=%llu seconds=%.3f ops_per_s=%.0f\n", static_cast<unsigned long long>(ops), elapsed,
              static_cast<double>(ops) / elapsed);
  if (stopper.joinable()) stopper.join();
  wait_for_line();
  return 0;
}
