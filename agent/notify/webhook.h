// Circuit webhooks: the JSON body (a pure function of the circuit's state,
// golden-tested) and Standard Webhooks 1.0 signing:
//
//   webhook-id:        msg_<32 hex>, chosen at enqueue, the same on every retry
//   webhook-timestamp: unix seconds of this attempt
//   webhook-signature: v1,<base64(HMAC-SHA256(key, id "." timestamp "." body))>
//
// The key comes from `secret_file`, which holds "whsec_<base64 of the key>".
//
// The body is the circuit's full state, not an edge, so a receiver that
// missed or reordered deliveries only needs the one with the highest
// `sequence`:
//   {"type": "circuit.open" | "circuit.half_open" | "circuit.close",
//    "sequence": 7,                      monotonic per circuit, persisted
//    "circuit": "api-runq/unit=api.service",
//    "slo": {"name": "api-runq", "objective": 99.0, "window": "30d"},
//    "target": "unit=api.service",
//    "reason": "page-level burn rate exceeded",
//    "burn_rates": {"1h": 15.2, "5m": 20.1, ...},
//    "error_budget_remaining": 0.87,
//    "open_until": "2027-01-15T08:01:00.000Z" | null,   the lease, while open
//    "evidence": {...},                  from the collectors, at that time
//    "timestamp": "2027-01-15T08:00:00.000Z"}
// While the burn continues the agent renews the lease and sends the body again
// as circuit.open with a higher sequence, every min_open / 2.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/result.h"
#include "agent/notify/http_sender.h"

namespace syncscope::notify {

struct CircuitNotification {
  std::string type;  // circuit.open | circuit.half_open | circuit.close
  uint64_t sequence = 0;
  std::string circuit;
  std::string slo_name;
  double objective = 0;  // percent
  std::string window;    // "30d"
  std::string target;
  std::string reason;
  std::vector<std::pair<std::string, double>> burn_rates;  // window → rate, shortest window first
  double error_budget_remaining = 1;
  std::optional<std::chrono::system_clock::time_point> open_until;
  nlohmann::json evidence = nlohmann::json::object();
  std::chrono::system_clock::time_point timestamp{};
  std::vector<std::string> notifiers;  // names from the SLO's circuit.notify; not in the body
};

std::string circuit_webhook_body(const CircuitNotification& notification);

using WebhookKey = std::vector<unsigned char>;

// "whsec_<base64>" (surrounding whitespace ignored) → key bytes.
Result<WebhookKey> parse_webhook_secret(std::string_view text);
// Reads and parses a secret file; errors name the file.
Result<WebhookKey> load_webhook_secret(const std::string& path);

// "v1,<base64 signature>".
std::string webhook_signature(const WebhookKey& key, std::string_view id, int64_t timestamp, std::string_view body);
// content-type, webhook-id, webhook-timestamp, webhook-signature.
HttpHeaders webhook_headers(const WebhookKey& key, std::string_view id, int64_t timestamp, std::string_view body);

std::string base64_encode(const unsigned char* data, size_t size);
std::optional<std::vector<unsigned char>> base64_decode(std::string_view text);

}  // namespace syncscope::notify
