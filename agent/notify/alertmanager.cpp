#include "agent/notify/alertmanager.h"

#include <cmath>
#include "agent/core/format.h"

#include <nlohmann/json.hpp>

#include "agent/core/log.h"

namespace syncscope::notify {
namespace {

// Shortest form of a value rounded to 3 decimals: 14.4, 0.932, 20.
std::string short_number(double value) {
  if (!std::isfinite(value)) return value > 0 ? "+Inf" : "NaN";
  return fmt::format("{}", std::round(value * 1000) / 1000 + 0.0);
}

std::string burn_rate_list(const AlertNotification& alert) {
  std::string out;
  for (const auto& [window, rate] : alert.burn_rates) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{}={}", window, short_number(rate));
  }
  return out;
}

nlohmann::ordered_json object_of(const LabelList& pairs) {
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (const auto& [name, value] : pairs) object[name] = value;
  return object;
}

}  // namespace

PostableAlert postable_alert(const AlertNotification& alert, const AlertmanagerOptions& options,
                             std::chrono::system_clock::time_point starts_at,
                             std::chrono::system_clock::time_point ends_at) {
  PostableAlert out;
  out.labels = {
      {"alertname", options.alertname},
      {"slo", alert.slo},
      {"target", alert.target},
      {"severity", alert.severity},
      {"host", options.host},
  };
  out.annotations = {
      {"summary", fmt::format("SLO {} on {} is burning its error budget too fast", alert.slo, alert.target)},
      {"description", fmt::format("objective {}% over {}; burn rates {}; error budget remaining {}",
                                  short_number(alert.objective), alert.window, burn_rate_list(alert),
                                  short_number(alert.error_budget_remaining))},
      {"burn_rates", burn_rate_list(alert)},
      {"error_budget_remaining", short_number(alert.error_budget_remaining)},
  };
  out.starts_at = starts_at;
  out.ends_at = ends_at;
  return out;
}

std::string alertmanager_payload(const std::vector<PostableAlert>& alerts) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const PostableAlert& alert : alerts) {
    array.push_back({
        {"labels", object_of(alert.labels)},
        {"annotations", object_of(alert.annotations)},
        {"startsAt", format_rfc3339(alert.starts_at)},
        {"endsAt", format_rfc3339(alert.ends_at)},
    });
  }
  return array.dump();
}

AlertmanagerClient::AlertmanagerClient(std::string name, std::string base_url, Nanoseconds timeout,
                                       AlertmanagerOptions options, HttpSender& sender, const Clock& clock)
    : name_(std::move(name)), timeout_(timeout), options_(std::move(options)), sender_(sender), clock_(clock) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  url_ = base_url + "/api/v2/alerts";
}

void AlertmanagerClient::update(const AlertNotification& alert) {
  const std::string key = alert.slo + '\x1f' + alert.target + '\x1f' + alert.severity;
  std::lock_guard lock(mu_);
  auto it = alerts_.find(key);
  if (alert.firing) {
    if (it == alerts_.end() || it->second.resolved_at) {
      // New, or firing again after resolving: a new alert instance.
      alerts_.insert_or_assign(key, Tracked{alert, clock_.wall_now(), std::nullopt, {}});
      dirty_ = true;
    } else {
      it->second.last = alert;
    }
    return;
  }
  if (it == alerts_.end() || it->second.resolved_at) return;
  it->second.last = alert;
  it->second.resolved_at = clock_.wall_now();
  it->second.resolved_steady = clock_.steady_now();
  dirty_ = true;
}

std::optional<std::chrono::steady_clock::time_point> AlertmanagerClient::next_push() const {
  std::lock_guard lock(mu_);
  if (alerts_.empty()) return std::nullopt;
  if (dirty_ || !pushed_) return clock_.steady_now();
  return last_attempt_ + options_.resend_interval;
}

bool AlertmanagerClient::pump() {
  std::unique_lock lock(mu_);
  const auto now = clock_.steady_now();
  const auto wall = clock_.wall_now();
  std::erase_if(alerts_, [&](const auto& item) {
    return item.second.resolved_at && now - item.second.resolved_steady > options_.resolved_resend_for;
  });
  if (alerts_.empty()) {
    dirty_ = false;
    return false;
  }
  if (!dirty_ && pushed_ && now - last_attempt_ < options_.resend_interval) return false;

  std::vector<PostableAlert> batch;
  const auto firing_ends = wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                      4 * options_.resend_interval);
  for (const auto& [key, tracked] : alerts_)
    batch.push_back(postable_alert(tracked.last, options_, tracked.starts_at,
                                   tracked.resolved_at ? *tracked.resolved_at : firing_ends));
  dirty_ = false;
  pushed_ = true;
  last_attempt_ = now;
  const bool retry = last_failed_;
  const std::string payload = alertmanager_payload(batch);
  lock.unlock();

  auto response = sender_.post(url_, {{"content-type", "application/json"}}, payload, timeout_);
  const bool ok = response && response->status >= 200 && response->status < 300;

  lock.lock();
  if (retry) ++stats_.retried;
  last_failed_ = !ok;
  if (ok) {
    ++stats_.delivered;
    return true;
  }
  ++stats_.failed;
  lock.unlock();
  if (!response)
    log::warn("alertmanager {}: push of {} alert(s) failed: {}; retrying in {}", name_, batch.size(),
              response.error().message(), format_duration(options_.resend_interval));
  else
    log::warn("alertmanager {}: push of {} alert(s) answered HTTP {}: {}; retrying in {}", name_, batch.size(),
              response->status, response->body.substr(0, 200), format_duration(options_.resend_interval));
  return true;
}

AlertmanagerClient::Stats AlertmanagerClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

size_t AlertmanagerClient::tracked() const {
  std::lock_guard lock(mu_);
  return alerts_.size();
}

}  // namespace syncscope::notify
