// What the SLO engine calls to tell the world, and the delivery behind it.
//
// Notifier is the engine's only view of delivery: two calls, both cheap and
// non-blocking apart from one fsync per circuit event. Dispatcher is the real
// implementation: it fans each call out to the notifiers named in the SLO's
// circuit.notify —
//   circuit_event → every named webhook: signed body into the durable outbox
//   alert_state   → every named Alertmanager: the alert's current state
// — and delivers from its own threads (start()), or from the caller's thread
// when a test calls pump() with a FakeClock and a fake HttpSender.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/result.h"
#include "agent/metrics/metric.h"
#include "agent/notify/alertmanager.h"
#include "agent/notify/http_sender.h"
#include "agent/notify/outbox.h"
#include "agent/notify/webhook.h"

namespace syncscope::notify {

class Notifier {
 public:
  virtual ~Notifier() = default;
  // A circuit changed state or renewed its lease. Durable once this returns
  // (unless the outbox refused it, which is counted and logged).
  virtual void circuit_event(const CircuitNotification& notification) = 0;
  // The current state of a burn-rate alert: called every evaluation while it
  // fires, and once with firing = false when it stops.
  virtual void alert_state(const AlertNotification& alert) = 0;
};

struct DispatcherOptions {
  AlertmanagerOptions alertmanager;  // host empty: this machine's hostname
  OutboxOptions outbox;
  size_t batch = 32;  // webhook entries sent per endpoint per round
};

class Dispatcher final : public Notifier, public metrics::MetricSource {
 public:
  // Loads every webhook secret (an unreadable or malformed secret_file is an
  // error naming the notifier and the file) and opens state_dir/outbox,
  // picking up what a previous run left undelivered.
  static Result<std::unique_ptr<Dispatcher>> create(const std::map<std::string, config::NotifierConfig>& notifiers,
                                                    const config::OutboxConfig& outbox, const std::string& state_dir,
                                                    HttpSender& sender, const Clock& clock,
                                                    DispatcherOptions options = {});
  ~Dispatcher() override;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void circuit_event(const CircuitNotification& notification) override;
  void alert_state(const AlertNotification& alert) override;

  // One delivery round for every notifier, on the calling thread.
  void pump();
  // One delivery thread per notifier, so a slow receiver delays only itself.
  // They sleep until the next due attempt (at most 1 s, in real time) and
  // wake at once for a new notification. stop() joins them; the destructor
  // calls it.
  void start();
  void stop();

  void collect(std::vector<metrics::Family>& out) const override;
  size_t pending() const;
  bool disabled(const std::string& notifier) const;

 private:
  struct Counters {
    std::atomic<uint64_t> delivered{0};
    std::atomic<uint64_t> failed{0};
    std::atomic<uint64_t> retried{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> disabled{0};
  };
  struct Webhook {
    config::NotifierConfig config;
    WebhookKey key;
    Counters counters;
    std::atomic<bool> disabled{false};
    std::mutex mu;  // not_before
    std::chrono::system_clock::time_point not_before{};
  };
  struct Alertmanager {
    std::unique_ptr<AlertmanagerClient> client;
  };

  Dispatcher(HttpSender& sender, const Clock& clock, DispatcherOptions options);
  void pump_webhook(const std::string& name, Webhook& webhook);
  void wake();
  std::chrono::milliseconds idle_wait(const std::string& name);
  void run(std::stop_token stop, std::string name);

  HttpSender& sender_;
  const Clock& clock_;
  DispatcherOptions options_;
  std::unique_ptr<Outbox> outbox_;
  std::map<std::string, std::unique_ptr<Webhook>, std::less<>> webhooks_;
  std::map<std::string, Alertmanager, std::less<>> alertmanagers_;

  std::mutex wake_mu_;
  std::condition_variable_any wake_cv_;
  uint64_t wake_generation_ = 0;
  std::vector<std::jthread> threads_;
};

}  // namespace syncscope::notify
