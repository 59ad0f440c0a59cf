#include "agent/notify/webhook.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <cctype>
#include <cmath>

#include "agent/core/fd.h"

namespace syncscope::notify {
namespace {

// Rounded so the body reads well (15.2, not 15.199999999999999); the
// nearest double to a 4-decimal value prints back as that value.
double rounded(double value, double scale = 1e4) {
  if (!std::isfinite(value)) return value;
  return std::round(value * scale) / scale;
}

nlohmann::ordered_json number(double value) {
  // JSON has no Infinity: a budget-less objective (100 %) burns "infinitely".
  if (!std::isfinite(value)) return nullptr;
  return rounded(value);
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string circuit_webhook_body(const CircuitNotification& n) {
  nlohmann::ordered_json burn_rates = nlohmann::ordered_json::object();
  for (const auto& [window, rate] : n.burn_rates) burn_rates[window] = number(rate);
  nlohmann::ordered_json body = {
      {"type", n.type},
      {"sequence", n.sequence},
      {"circuit", n.circuit},
      {"slo", {{"name", n.slo_name}, {"objective", n.objective}, {"window", n.window}}},
      {"target", n.target},
      {"reason", n.reason},
      {"burn_rates", burn_rates},
      {"error_budget_remaining", number(n.error_budget_remaining)},
      {"open_until", n.open_until ? nlohmann::ordered_json(format_rfc3339(*n.open_until)) : nullptr},
      {"evidence", n.evidence.is_object() ? nlohmann::ordered_json(n.evidence) : nlohmann::ordered_json::object()},
      {"timestamp", format_rfc3339(n.timestamp)},
  };
  return body.dump();
}

std::string base64_encode(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(std::max(written, 0)));
  return out;
}

// Strict standard alphabet, padding optional (EVP_DecodeBlock cannot tell
// padding from zero bytes, so this is done by hand).
std::optional<std::vector<unsigned char>> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<unsigned char> out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const int value = base64_value(c);
    if (value < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<unsigned char>((bits >> count) & 0xff));
    }
  }
  return out;
}

Result<WebhookKey> parse_webhook_secret(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  constexpr std::string_view kPrefix = "whsec_";
  if (!text.starts_with(kPrefix)) return fail("expected \"whsec_<base64>\" (the \"whsec_\" prefix is missing)");
  text.remove_prefix(kPrefix.size());
  auto key = base64_decode(text);
  if (!key) return fail("the text after \"whsec_\" is not valid base64");
  if (key->empty()) return fail("the secret is empty (expected \"whsec_<base64>\")");
  return std::move(*key);
}

Result<WebhookKey> load_webhook_secret(const std::string& path) {
  int saved_errno = 0;
  std::string text;
  {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail_errno(fmt::format("webhook secret_file {}", path));
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
    if (n < 0) saved_errno = errno;
  }
  if (saved_errno) return fail_errno(fmt::format("webhook secret_file {}", path), saved_errno);
  auto key = parse_webhook_secret(text);
  if (!key) return std::unexpected(key.error().wrap(fmt::format("webhook secret_file {}", path)));
  return key;
}

std::string webhook_signature(const WebhookKey& key, std::string_view id, int64_t timestamp, std::string_view body) {
  const std::string signed_content = fmt::format("{}.{}.{}", id, timestamp, body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signed_content.data()), signed_content.size(), mac, &mac_size);
  return "v1," + base64_encode(mac, mac_size);
}

HttpHeaders webhook_headers(const WebhookKey& key, std::string_view id, int64_t timestamp, std::string_view body) {
  return HttpHeaders{
      {"content-type", "application/json"},
      {"webhook-id", std::string(id)},
      {"webhook-timestamp", std::to_string(timestamp)},
      {"webhook-signature", webhook_signature(key, id, timestamp, body)},
  };
}

}  // namespace syncscope::notify
