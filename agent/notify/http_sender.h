// HTTP POST behind a small interface, so the outbox, the webhook signer and
// the Alertmanager client are tested with a fake sender and a fake clock; and
// the time formats those HTTP exchanges use (RFC 3339 out, Retry-After in).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/duration.h"
#include "agent/core/result.h"

namespace syncscope::notify {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  long status = 0;
  std::optional<std::string> retry_after;  // the Retry-After header, verbatim
  std::string body;                        // the first 64 KiB, for log lines
};

class HttpSender {
 public:
  virtual ~HttpSender() = default;
  // A transport failure (refused, timed out, DNS) is an error; any HTTP
  // status, 5xx included, is a response. Called from delivery threads: must
  // be thread-safe.
  virtual Result<HttpResponse> post(const std::string& url, const HttpHeaders& headers, std::string_view body,
                                    Nanoseconds timeout) = 0;
};

// libcurl, one easy handle per request (no shared connection state between
// threads; notifications are rare enough that connection reuse buys nothing).
// No redirects are followed; only http and https URLs are accepted.
class CurlHttpSender final : public HttpSender {
 public:
  CurlHttpSender();
  Result<HttpResponse> post(const std::string& url, const HttpHeaders& headers, std::string_view body,
                            Nanoseconds timeout) override;
};

// Retry-After (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (IMF-fixdate,
// "Sun, 06 Nov 1994 08:49:37 GMT") turned into a delay from `now`. A date in
// the past is a zero delay; anything unparsable is nullopt.
std::optional<Nanoseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

// "2027-01-15T08:00:00.000Z" (RFC 3339, UTC, milliseconds).
std::string format_rfc3339(std::chrono::system_clock::time_point time);

}  // namespace syncscope::notify
