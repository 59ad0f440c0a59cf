#include "agent/notify/outbox.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "agent/core/fd.h"
#include "agent/core/log.h"

namespace syncscope::notify {
namespace {

namespace fs = std::filesystem;

Result<void> write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(fmt::format("write {}", path));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> fsync_directory(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open directory {}", dir));
  if (::fsync(fd.get()) != 0) return fail_errno(fmt::format("fsync directory {}", dir));
  return {};
}

int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_ms(int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

}  // namespace

Result<void> durable_write(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd) return fail_errno(fmt::format("create {}", tmp));
    TRY(write_all(fd.get(), bytes, tmp));
    if (::fsync(fd.get()) != 0) return fail_errno(fmt::format("fsync {}", tmp));
    if (::close(fd.release()) != 0) return fail_errno(fmt::format("close {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(tmp.c_str());
    return fail_errno(fmt::format("rename {} to {}", tmp, path), saved);
  }
  std::string dir = fs::path(path).parent_path().string();
  TRY(fsync_directory(dir.empty() ? "." : dir));
  return {};
}

Result<std::string> read_whole_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  std::string out;
  char buffer[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(fmt::format("read {}", path));
    }
    if (n == 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

Result<void> ensure_directory(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return fail(fmt::format("create directory {}: {}", path, ec.message()), ec.value());
  return {};
}

Random default_random() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  auto mu = std::make_shared<std::mutex>();
  return [engine, mu] {
    std::lock_guard lock(*mu);
    return (*engine)();
  };
}

Outbox::Outbox(std::string dir, const config::OutboxConfig& config, const Clock& clock, OutboxOptions options)
    : dir_(std::move(dir)), config_(config), clock_(clock), options_(std::move(options)) {
  if (!options_.random) options_.random = default_random();
}

Result<std::unique_ptr<Outbox>> Outbox::open(std::string dir, const config::OutboxConfig& config,
                                             const Clock& clock, OutboxOptions options) {
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(dir), config, clock, std::move(options)));
  TRY(ensure_directory(outbox->dir_));
  TRY(outbox->load());
  return outbox;
}

std::string Outbox::path_of(uint64_t ordinal) const {
  return fmt::format("{}/{:020}.json", dir_, ordinal);
}

Result<void> Outbox::load() {
  std::error_code ec;
  for (const fs::directory_entry& file : fs::directory_iterator(dir_, ec)) {
    const fs::path& path = file.path();
    // Ordinals are never reused, not even those of files set aside.
    const std::string stem = path.filename().string().substr(0, path.filename().string().find('.'));
    uint64_t ordinal = 0;
    if (auto [end, parse_error] = std::from_chars(stem.data(), stem.data() + stem.size(), ordinal);
        parse_error == std::errc() && end == stem.data() + stem.size() && !stem.empty())
      next_ordinal_ = std::max<uint64_t>(next_ordinal_, ordinal + 1);
    if (path.extension() == ".tmp") {  // a write that never reached its rename
      fs::remove(path, ec);
      continue;
    }
    if (path.extension() != ".json") continue;
    auto text = read_whole_file(path.string());
    if (!text) {
      log::error("outbox: {}", text.error().message());
      continue;
    }
    OutboxEntry entry;
    try {
      const nlohmann::json json = nlohmann::json::parse(*text);
      entry.ordinal = json.at("ordinal").get<uint64_t>();
      entry.id = json.at("id").get<std::string>();
      entry.endpoint = json.at("endpoint").get<std::string>();
      entry.body = json.at("body").get<std::string>();
      entry.attempts = json.at("attempts").get<uint32_t>();
      entry.created = from_ms(json.at("created_ms").get<int64_t>());
      entry.next_attempt = from_ms(json.at("next_attempt_ms").get<int64_t>());
    } catch (const nlohmann::json::exception& e) {
      fs::path aside = path;
      aside.replace_extension(".corrupt");
      fs::rename(path, aside, ec);
      log::error("outbox: {} is unreadable ({}); moved aside to {}", path.string(), e.what(), aside.string());
      continue;
    }
    if (path.filename().string() != fs::path(path_of(entry.ordinal)).filename().string() ||
        by_id_.contains(entry.id)) {
      log::error("outbox: {} does not match its name or repeats id {}; ignored", path.string(), entry.id);
      continue;
    }
    next_ordinal_ = std::max(next_ordinal_, entry.ordinal + 1);
    by_id_.emplace(entry.id, entry.ordinal);
    entries_.emplace(entry.ordinal, std::move(entry));
  }
  if (ec) return fail(fmt::format("read outbox {}: {}", dir_, ec.message()), ec.value());
  if (!entries_.empty())
    log::info("outbox {}: {} notification(s) from a previous run to deliver", dir_, entries_.size());
  return {};
}

Result<void> Outbox::persist(const OutboxEntry& entry) const {
  const nlohmann::json json = {
      {"ordinal", entry.ordinal},
      {"id", entry.id},
      {"endpoint", entry.endpoint},
      {"attempts", entry.attempts},
      {"created_ms", to_ms(entry.created)},
      {"next_attempt_ms", to_ms(entry.next_attempt)},
      {"body", entry.body},
  };
  return durable_write(path_of(entry.ordinal), json.dump());
}

std::string Outbox::new_id() {
  // Unique across restarts without coordination: 128 random bits. Not from
  // options_.random, which tests may make constant for the jitter.
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  return fmt::format("msg_{:016x}{:016x}", engine(), engine());
}

Result<std::string> Outbox::enqueue(const std::string& endpoint, std::string body) {
  std::lock_guard lock(mu_);
  if (entries_.size() >= config_.max_pending) {
    // Refuse the newest rather than evict the oldest: every entry already
    // here was accepted as durable, and receivers may be counting on it
    // (a circuit.open whose close is still queued, say). What is refused is
    // not lost for good either: the body is the circuit's full state, the
    // next transition or lease renewal carries it again, and a receiver
    // that hears nothing more sees the open_until lease lapse.
    ++refused_;
    ++refused_since_log_;
    const auto now = clock_.steady_now();
    if (last_full_log_ == std::chrono::steady_clock::time_point{} ||
        now - last_full_log_ >= std::chrono::seconds(10)) {
      log::error("outbox {} is FULL ({} pending, max_pending {}): refused {} new notification(s) for \"{}\" "
                 "since the last message, {} in total; receivers are not taking deliveries",
                 dir_, entries_.size(), config_.max_pending, refused_since_log_, endpoint, refused_);
      last_full_log_ = now;
      refused_since_log_ = 0;
    }
    return fail(fmt::format("outbox {} is full ({} pending)", dir_, entries_.size()), ENOSPC);
  }
  OutboxEntry entry;
  entry.ordinal = next_ordinal_;
  entry.id = new_id();
  entry.endpoint = endpoint;
  entry.body = std::move(body);
  entry.created = clock_.wall_now();
  entry.next_attempt = entry.created;
  TRY(persist(entry));
  ++next_ordinal_;
  std::string id = entry.id;
  by_id_.emplace(id, entry.ordinal);
  entries_.emplace(entry.ordinal, std::move(entry));
  return id;
}

std::vector<OutboxEntry> Outbox::due(std::string_view endpoint, size_t limit) const {
  std::lock_guard lock(mu_);
  const auto now = clock_.wall_now();
  std::vector<OutboxEntry> out;
  for (const auto& [ordinal, entry] : entries_) {
    if (out.size() >= limit) break;
    if (entry.endpoint == endpoint && entry.next_attempt <= now) out.push_back(entry);
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> Outbox::next_attempt(std::string_view endpoint) const {
  std::lock_guard lock(mu_);
  std::optional<std::chrono::system_clock::time_point> earliest;
  for (const auto& [ordinal, entry] : entries_)
    if (entry.endpoint == endpoint && (!earliest || entry.next_attempt < *earliest)) earliest = entry.next_attempt;
  return earliest;
}

void Outbox::delivered(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  const std::string path = path_of(it->second);
  entries_.erase(it->second);
  by_id_.erase(it);
  // No directory fsync: if the unlink is lost in a crash the entry is sent
  // once more, which at-least-once allows.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    log::error("outbox: remove {}: {} (it will be delivered again after a restart)", path, std::strerror(errno));
}

Nanoseconds Outbox::backoff(uint32_t attempts) {
  const double cap = std::chrono::duration<double>(config_.max_backoff).count();
  const double base = std::chrono::duration<double>(options_.base_backoff).count();
  const double exponent = std::min<double>(std::max<uint32_t>(attempts, 1) - 1, 62);
  const double ceiling = std::min(cap, base * std::exp2(exponent));
  // Top 53 bits → [0, 1).
  const double unit = static_cast<double>(options_.random() >> 11) * 0x1.0p-53;
  return std::chrono::duration_cast<Nanoseconds>(std::chrono::duration<double>(unit * ceiling));
}

Nanoseconds Outbox::failed(const std::string& id, std::optional<Nanoseconds> retry_after) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return Nanoseconds(0);
  OutboxEntry& entry = entries_.at(it->second);
  ++entry.attempts;
  const Nanoseconds delay = retry_after ? std::clamp(*retry_after, Nanoseconds(0), options_.max_retry_after)
                                        : backoff(entry.attempts);
  entry.next_attempt = clock_.wall_now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(delay);
  // Persisting the schedule keeps the backoff across a restart; if it fails
  // the entry is still safe on disk, only retried sooner.
  if (auto written = persist(entry); !written)
    log::warn("outbox: could not record attempt {} of {}: {}", entry.attempts, entry.id, written.error().message());
  return delay;
}

size_t Outbox::drop_endpoint(std::string_view endpoint) {
  std::lock_guard lock(mu_);
  size_t dropped = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.endpoint != endpoint) {
      ++it;
      continue;
    }
    ::unlink(path_of(it->first).c_str());
    by_id_.erase(it->second.id);
    it = entries_.erase(it);
    ++dropped;
  }
  return dropped;
}

size_t Outbox::pending() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

size_t Outbox::pending(std::string_view endpoint) const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                           [&](const auto& item) { return item.second.endpoint == endpoint; }));
}

std::vector<std::string> Outbox::endpoints() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [ordinal, entry] : entries_)
    if (std::find(out.begin(), out.end(), entry.endpoint) == out.end()) out.push_back(entry.endpoint);
  return out;
}

uint64_t Outbox::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

}  // namespace syncscope::notify
