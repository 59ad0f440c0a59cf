#include "agent/notify/notifier.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "agent/core/log.h"

namespace syncscope::notify {
namespace {

std::string this_host() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace

Dispatcher::Dispatcher(HttpSender& sender, const Clock& clock, DispatcherOptions options)
    : sender_(sender), clock_(clock), options_(std::move(options)) {
  if (options_.alertmanager.host.empty()) options_.alertmanager.host = this_host();
}

Dispatcher::~Dispatcher() { stop(); }

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(const std::map<std::string, config::NotifierConfig>& notifiers,
                                                       const config::OutboxConfig& outbox,
                                                       const std::string& state_dir, HttpSender& sender,
                                                       const Clock& clock, DispatcherOptions options) {
  std::unique_ptr<Dispatcher> dispatcher(new Dispatcher(sender, clock, std::move(options)));
  for (const auto& [name, config] : notifiers) {
    if (config.type == config::NotifierConfig::Type::webhook) {
      auto webhook = std::make_unique<Webhook>();
      webhook->config = config;
      auto key = load_webhook_secret(config.secret_file);
      if (!key) return std::unexpected(key.error().wrap(fmt::format("notifiers.{}", name)));
      webhook->key = std::move(*key);
      dispatcher->webhooks_.emplace(name, std::move(webhook));
    } else {
      dispatcher->alertmanagers_.emplace(
          name, Alertmanager{std::make_unique<AlertmanagerClient>(name, config.url, config.timeout,
                                                                  dispatcher->options_.alertmanager, sender, clock)});
    }
  }
  if (!dispatcher->webhooks_.empty()) {
    if (state_dir.empty()) return fail("webhook notifiers need a state_dir for their outbox");
    dispatcher->outbox_ = TRY(Outbox::open(state_dir + "/outbox", outbox, clock, dispatcher->options_.outbox));
    // Entries for a webhook no longer configured stay on disk (it may come
    // back in the next config) but are said loudly, since nothing sends them.
    for (const std::string& endpoint : dispatcher->outbox_->endpoints())
      if (!dispatcher->webhooks_.contains(endpoint))
        log::warn("outbox: {} notification(s) for notifier \"{}\", which is no longer configured, stay undelivered",
                  dispatcher->outbox_->pending(endpoint), endpoint);
  }
  return dispatcher;
}

void Dispatcher::circuit_event(const CircuitNotification& notification) {
  const std::string body = circuit_webhook_body(notification);
  bool queued = false;
  for (const std::string& name : notification.notifiers) {
    auto it = webhooks_.find(name);
    if (it == webhooks_.end()) continue;  // an Alertmanager: it gets alert_state()
    Webhook& webhook = *it->second;
    if (webhook.disabled.load()) {
      ++webhook.counters.disabled;
      log::warn("webhook {}: disabled after HTTP 410, not sending {} #{} of {}", name, notification.type,
                notification.sequence, notification.circuit);
      continue;
    }
    auto id = outbox_->enqueue(name, body);
    if (!id) {
      ++webhook.counters.dropped;
      if (id.error().sys_errno() != ENOSPC)  // a full outbox logs on its own
        log::error("webhook {}: could not store {} #{} of {}: {}", name, notification.type, notification.sequence,
                   notification.circuit, id.error().message());
      continue;
    }
    log::debug("webhook {}: queued {} #{} of {} as {}", name, notification.type, notification.sequence,
               notification.circuit, *id);
    queued = true;
  }
  if (queued) wake();
}

void Dispatcher::alert_state(const AlertNotification& alert) {
  bool any = false;
  for (const std::string& name : alert.notifiers) {
    auto it = alertmanagers_.find(name);
    if (it == alertmanagers_.end()) continue;
    it->second.client->update(alert);
    any = true;
  }
  if (any && !alert.firing) wake();
}

void Dispatcher::pump_webhook(const std::string& name, Webhook& webhook) {
  if (webhook.disabled.load()) return;
  {
    std::lock_guard lock(webhook.mu);
    if (clock_.wall_now() < webhook.not_before) return;
  }
  for (const OutboxEntry& entry : outbox_->due(name, options_.batch)) {
    const int64_t timestamp =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
    if (entry.attempts > 0) ++webhook.counters.retried;
    auto response = sender_.post(webhook.config.url, webhook_headers(webhook.key, entry.id, timestamp, entry.body),
                                 entry.body, webhook.config.timeout);
    if (response && response->status >= 200 && response->status < 300) {
      ++webhook.counters.delivered;
      outbox_->delivered(entry.id);
      log::debug("webhook {}: delivered {} (HTTP {})", name, entry.id, response->status);
      continue;
    }
    if (response && response->status == 410) {
      // 410 Gone: the receiver says this endpoint will never take deliveries
      // again. Stop until the agent is restarted (the operator has fixed the
      // config by then) instead of retrying forever.
      webhook.disabled.store(true);
      const size_t dropped = outbox_->drop_endpoint(name);
      webhook.counters.disabled += dropped;
      log::error("webhook {}: {} answered 410 Gone: endpoint DISABLED until restart, {} queued notification(s) "
                 "dropped",
                 name, webhook.config.url, dropped);
      return;
    }
    ++webhook.counters.failed;
    std::optional<Nanoseconds> retry_after;
    if (response && response->retry_after) retry_after = parse_retry_after(*response->retry_after, clock_.wall_now());
    const Nanoseconds delay = outbox_->failed(entry.id, retry_after);
    {
      // The whole endpoint waits, not just this entry: the others would only
      // fail the same way, and Retry-After speaks for the server.
      std::lock_guard lock(webhook.mu);
      webhook.not_before = clock_.wall_now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(delay);
    }
    const std::string why = response ? fmt::format("HTTP {}", response->status) : response.error().message();
    log::warn("webhook {}: attempt {} of {} failed ({}); next attempt in {}{}", name, entry.attempts + 1, entry.id,
              why, format_duration(std::chrono::ceil<std::chrono::milliseconds>(delay)),
              retry_after ? " (Retry-After)" : "");
    return;
  }
}

void Dispatcher::pump() {
  for (auto& [name, webhook] : webhooks_) pump_webhook(name, *webhook);
  for (auto& [name, alertmanager] : alertmanagers_) alertmanager.client->pump();
}

void Dispatcher::wake() {
  {
    std::lock_guard lock(wake_mu_);
    ++wake_generation_;
  }
  wake_cv_.notify_all();
}

std::chrono::milliseconds Dispatcher::idle_wait(const std::string& name) {
  using namespace std::chrono_literals;
  std::chrono::nanoseconds wait = 1s;
  if (auto it = webhooks_.find(name); it != webhooks_.end() && outbox_) {
    if (auto next = outbox_->next_attempt(name)) {
      auto at = *next;
      {
        std::lock_guard lock(it->second->mu);
        at = std::max(at, it->second->not_before);
      }
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::nanoseconds>(at - clock_.wall_now()));
    }
  } else if (auto am = alertmanagers_.find(name); am != alertmanagers_.end()) {
    if (auto next = am->second.client->next_push()) wait = std::min(wait, *next - clock_.steady_now());
  }
  return std::clamp(std::chrono::ceil<std::chrono::milliseconds>(wait), 5ms, 1000ms);
}

void Dispatcher::run(std::stop_token stop, std::string name) {
  while (!stop.stop_requested()) {
    uint64_t generation;
    {
      std::lock_guard lock(wake_mu_);
      generation = wake_generation_;
    }
    if (auto it = webhooks_.find(name); it != webhooks_.end()) pump_webhook(name, *it->second);
    else if (auto am = alertmanagers_.find(name); am != alertmanagers_.end()) am->second.client->pump();
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_for(lock, stop, idle_wait(name), [&] { return wake_generation_ != generation; });
  }
}

void Dispatcher::start() {
  if (!threads_.empty()) return;
  for (const auto& [name, webhook] : webhooks_)
    threads_.emplace_back([this, name = name](std::stop_token stop) { run(stop, name); });
  for (const auto& [name, alertmanager] : alertmanagers_)
    threads_.emplace_back([this, name = name](std::stop_token stop) { run(stop, name); });
}

void Dispatcher::stop() {
  for (std::jthread& thread : threads_) thread.request_stop();
  wake_cv_.notify_all();
  threads_.clear();  // joins
}

size_t Dispatcher::pending() const { return outbox_ ? outbox_->pending() : 0; }

bool Dispatcher::disabled(const std::string& notifier) const {
  auto it = webhooks_.find(notifier);
  return it != webhooks_.end() && it->second->disabled.load();
}

void Dispatcher::collect(std::vector<metrics::Family>& out) const {
  metrics::Family total = metrics::counter(
      "syncscope_notifications_total",
      "Notifications by notifier and result: delivered (2xx), failed (an attempt that did not succeed), "
      "retried (an attempt after a failed one), dropped (refused: outbox full or unwritable), "
      "disabled (discarded because the endpoint answered 410 Gone).");
  auto add = [&](const std::string& name, uint64_t delivered, uint64_t failed, uint64_t retried, uint64_t dropped,
                 uint64_t disabled) {
    for (const auto& [result, value] : {std::pair<const char*, uint64_t>{"delivered", delivered},
                                        {"failed", failed},
                                        {"retried", retried},
                                        {"dropped", dropped},
                                        {"disabled", disabled}})
      total.add({{"notifier", name}, {"result", result}}, static_cast<double>(value));
  };
  for (const auto& [name, webhook] : webhooks_) {
    const Counters& c = webhook->counters;
    add(name, c.delivered.load(), c.failed.load(), c.retried.load(), c.dropped.load(), c.disabled.load());
  }
  for (const auto& [name, alertmanager] : alertmanagers_) {
    const AlertmanagerClient::Stats stats = alertmanager.client->stats();
    add(name, stats.delivered, stats.failed, stats.retried, 0, 0);
  }
  out.push_back(std::move(total));
  out.push_back(metrics::gauge("syncscope_outbox_pending",
                               "Webhook notifications stored in the outbox and not yet delivered.")
                    .add({}, static_cast<double>(pending())));
}

}  // namespace syncscope::notify
