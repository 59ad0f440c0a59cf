// The durable outbox: webhook notifications survive a receiver outage, an
// agent SIGKILL and a restart.
//
// One file per notification in `dir` (state_dir/outbox/), named by a
// monotonically increasing ordinal, holding the endpoint (notifier name), the
// webhook-id, the body, the attempt count and the next attempt time. It is
// written and fsynced (file, then directory) before enqueue() returns, so
// before the first send attempt; it is removed after a 2xx. A crash between
// the two sends it again after the restart: delivery is at-least-once and
// receivers deduplicate by webhook-id, which is stored with the entry and so
// stable across retries and restarts.
//
// Retries: exponential backoff with full jitter — the delay before attempt
// n+1 is uniform in [0, min(max_backoff, base × 2^(n-1))] — unless the
// receiver said Retry-After, which is honoured (up to an hour, so a bogus
// far-future date cannot stall an endpoint for good).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/duration.h"
#include "agent/core/result.h"

namespace syncscope::notify {

// Writes `path` so that a crash leaves either the old content or the new one:
// path.tmp, fsync, rename over path, fsync the directory. Also used for the
// SLO engine's state files.
Result<void> durable_write(const std::string& path, std::string_view bytes);
// The whole file (read(2), not iostreams: errors carry errno).
Result<std::string> read_whole_file(const std::string& path);
// mkdir -p.
Result<void> ensure_directory(const std::string& path);

// Uniform 64-bit random numbers (jitter). Injectable for tests.
using Random = std::function<uint64_t()>;
Random default_random();

struct OutboxEntry {
  uint64_t ordinal = 0;  // creation order, also the file name
  std::string id;        // webhook-id
  std::string endpoint;  // notifier name
  std::string body;
  uint32_t attempts = 0;  // failed attempts so far
  std::chrono::system_clock::time_point created{};
  std::chrono::system_clock::time_point next_attempt{};
};

struct OutboxOptions {
  Nanoseconds base_backoff = std::chrono::seconds(1);
  Nanoseconds max_retry_after = std::chrono::hours(1);
  Random random;  // empty: default_random()
};

class Outbox {
 public:
  // Creates `dir` if needed and loads what a previous run left there
  // (leftover *.tmp files are removed; unreadable entries are renamed
  // *.corrupt and logged).
  static Result<std::unique_ptr<Outbox>> open(std::string dir, const config::OutboxConfig& config,
                                              const Clock& clock, OutboxOptions options = {});

  // Durably stores a notification for `endpoint`; returns its webhook-id.
  // Fails when the outbox holds max_pending entries (errno ENOSPC; counted in
  // refused() and logged) or when the write fails.
  Result<std::string> enqueue(const std::string& endpoint, std::string body);

  // Entries of `endpoint` whose next attempt is due, oldest first.
  std::vector<OutboxEntry> due(std::string_view endpoint, size_t limit) const;
  // The earliest next attempt among `endpoint`'s entries.
  std::optional<std::chrono::system_clock::time_point> next_attempt(std::string_view endpoint) const;

  // A 2xx: forget the entry.
  void delivered(const std::string& id);
  // A failed attempt: count it, schedule the next one, persist both. Returns
  // the delay until the next attempt.
  Nanoseconds failed(const std::string& id, std::optional<Nanoseconds> retry_after);
  // The endpoint is gone (HTTP 410): remove all its entries; returns how many.
  size_t drop_endpoint(std::string_view endpoint);

  size_t pending() const;
  size_t pending(std::string_view endpoint) const;
  std::vector<std::string> endpoints() const;  // those with pending entries
  uint64_t refused() const;

  // Full jitter for the delay after `attempts` failures (attempts >= 1).
  Nanoseconds backoff(uint32_t attempts);

 private:
  Outbox(std::string dir, const config::OutboxConfig& config, const Clock& clock, OutboxOptions options);
  Result<void> load();
  Result<void> persist(const OutboxEntry& entry) const;
  std::string path_of(uint64_t ordinal) const;
  std::string new_id();

  std::string dir_;
  config::OutboxConfig config_;
  const Clock& clock_;
  OutboxOptions options_;

  mutable std::mutex mu_;
  std::map<uint64_t, OutboxEntry> entries_;  // by ordinal
  std::unordered_map<std::string, uint64_t> by_id_;
  uint64_t next_ordinal_ = 1;
  uint64_t refused_ = 0;
  std::chrono::steady_clock::time_point last_full_log_{};
  uint64_t refused_since_log_ = 0;
};

}  // namespace syncscope::notify
