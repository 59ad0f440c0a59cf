// Alertmanager API v2: POST {url}/api/v2/alerts with a JSON array of alerts.
//
// Alertmanager holds alert *state*: an alert stays active until its endsAt
// passes, and a client keeps it alive by re-sending it. So pushes do not go
// through the durable outbox: a lost push is repaired by the next one, and
// after an agent restart the engine re-derives which alerts fire from the
// persisted window counters and pushes them again. A failed push is counted
// and simply retried at the next resend.
//
// Timing (Prometheus' own convention for clients of this API):
//   firing    pushed at once, then every resend_interval (30 s), with
//             endsAt = now + 4 × resend_interval, so Alertmanager resolves
//             the alert on its own if the agent dies;
//   resolved  pushed at once with endsAt = the time it stopped, and re-sent
//             with every push for resolved_resend_for (15 min), so an
//             Alertmanager that missed one push still sees it resolve.
// Each push carries every tracked alert (firing and recently resolved).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/duration.h"
#include "agent/notify/http_sender.h"

namespace syncscope::notify {

// The state of one burn-rate alert of one SLO, as the engine sees it now.
struct AlertNotification {
  std::string slo;
  std::string target;
  std::string severity;  // page | ticket
  bool firing = false;
  double objective = 0;  // percent
  std::string window;    // the SLO window, "30d"
  std::vector<std::pair<std::string, double>> burn_rates;  // window → rate
  double error_budget_remaining = 1;
  std::vector<std::string> notifiers;  // names from the SLO's circuit.notify
};

struct AlertmanagerOptions {
  std::string alertname = "SyncscopeSLOBurn";
  std::string host;  // the host label
  Nanoseconds resend_interval = std::chrono::seconds(30);
  Nanoseconds resolved_resend_for = std::chrono::minutes(15);
};

using LabelList = std::vector<std::pair<std::string, std::string>>;

struct PostableAlert {
  LabelList labels;
  LabelList annotations;
  std::chrono::system_clock::time_point starts_at{};
  std::chrono::system_clock::time_point ends_at{};
};

// Pure: the alert as it is posted (labels alertname, slo, target, severity,
// host; annotations summary, description, burn_rates, error_budget_remaining).
PostableAlert postable_alert(const AlertNotification& alert, const AlertmanagerOptions& options,
                             std::chrono::system_clock::time_point starts_at,
                             std::chrono::system_clock::time_point ends_at);
// Pure: the request body, a JSON array.
std::string alertmanager_payload(const std::vector<PostableAlert>& alerts);

class AlertmanagerClient {
 public:
  AlertmanagerClient(std::string name, std::string base_url, Nanoseconds timeout, AlertmanagerOptions options,
                     HttpSender& sender, const Clock& clock);

  // From the engine's thread: the current state of one alert. Firing alerts
  // are updated every evaluation (fresh annotations); a new alert or a
  // resolution makes the next pump() push at once.
  void update(const AlertNotification& alert);

  // From the delivery thread: pushes if something changed or the resend
  // interval has passed. Returns true when a request was made.
  bool pump();
  // When pump() next has something to do (nullopt: nothing tracked).
  std::optional<std::chrono::steady_clock::time_point> next_push() const;

  struct Stats {
    uint64_t delivered = 0;  // pushes answered 2xx
    uint64_t failed = 0;     // pushes that failed (transport or non-2xx)
    uint64_t retried = 0;    // pushes that followed a failed one
  };
  Stats stats() const;
  size_t tracked() const;
  const std::string& name() const { return name_; }
  std::string url() const { return url_; }

 private:
  struct Tracked {
    AlertNotification last;
    std::chrono::system_clock::time_point starts_at{};
    std::optional<std::chrono::system_clock::time_point> resolved_at;
    std::chrono::steady_clock::time_point resolved_steady{};
  };

  std::string name_;
  std::string url_;
  Nanoseconds timeout_;
  AlertmanagerOptions options_;
  HttpSender& sender_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::map<std::string, Tracked> alerts_;
  bool dirty_ = false;
  bool pushed_ = false;
  bool last_failed_ = false;
  std::chrono::steady_clock::time_point last_attempt_{};
  Stats stats_;
};

}  // namespace syncscope::notify
