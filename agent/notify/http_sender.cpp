#include "agent/notify/http_sender.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include "agent/core/format.h"
#include <mutex>

#include "agent/core/fd.h"

namespace syncscope::notify {
namespace {

using CurlHandle = CHandle<CURL, curl_easy_cleanup>;
using CurlList = CHandle<curl_slist, curl_slist_free_all>;

constexpr size_t kMaxResponseBody = 64 * 1024;

struct Capture {
  HttpResponse response;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* capture = static_cast<Capture*>(user);
  const size_t bytes = size * count;
  std::string& body = capture->response.body;
  if (body.size() < kMaxResponseBody) body.append(data, std::min(bytes, kMaxResponseBody - body.size()));
  return bytes;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* capture = static_cast<Capture*>(user);
  const size_t bytes = size * count;
  std::string_view line(data, bytes);
  // A new status line (after a 100 Continue, say) starts a new header block.
  if (line.starts_with("HTTP/")) capture->response.retry_after.reset();
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() &&
      std::equal(kName.begin(), kName.end(), line.begin(),
                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }))
    capture->response.retry_after = std::string(trim(line.substr(kName.size())));
  return bytes;
}

}  // namespace

CurlHttpSender::CurlHttpSender() {
  // curl_global_init is not thread-safe; do it once, before any worker runs.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<HttpResponse> CurlHttpSender::post(const std::string& url, const HttpHeaders& headers, std::string_view body,
                                          Nanoseconds timeout) {
  CurlHandle curl(curl_easy_init());
  if (!curl) return fail(fmt::format("POST {}: curl_easy_init failed", url));

  CurlList list;
  auto append = [&](const std::string& line) {
    curl_slist* grown = curl_slist_append(list.get(), line.c_str());
    if (grown) {
      (void)list.release();
      list.reset(grown);
    }
  };
  for (const auto& [name, value] : headers) append(fmt::format("{}: {}", name, value));
  append("Expect:");  // no 100-continue round trip for bodies over 1 KiB

  Capture capture;
  char error[CURL_ERROR_SIZE] = {};
  const long timeout_ms = std::max<long>(1, static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(timeout).count()));
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // worker threads: no SIGALRM for timeouts
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &capture);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &capture);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "syncscope");

  CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK)
    return fail(fmt::format("POST {}: {}", url, error[0] ? error : curl_easy_strerror(code)));
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &capture.response.status);
  return std::move(capture.response);
}

std::optional<Nanoseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) seconds = UINT32_MAX;
    else if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    seconds = std::min<uint64_t>(seconds, UINT32_MAX);  // ~136 years: no overflow below
    return std::chrono::seconds(seconds);
  }
  // RFC 9110 §5.6.7: senders use IMF-fixdate; recipients accept the two
  // obsolete forms too. strptime's %a/%b are the C locale's English names.
  const std::string text(value);
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (!end || *end != '\0') continue;
    const time_t at = timegm(&tm);
    if (at == static_cast<time_t>(-1)) return std::nullopt;
    const auto delay = std::chrono::system_clock::from_time_t(at) - now;
    return std::max(Nanoseconds(0), std::chrono::duration_cast<Nanoseconds>(delay));
  }
  return std::nullopt;
}

std::string format_rfc3339(std::chrono::system_clock::time_point time) {
  // By hand: {fmt} 9 drops the sub-second part of a time_point.
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(time).time_since_epoch().count();
  const time_t seconds = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms - static_cast<int64_t>(seconds) * 1000);
}

}  // namespace syncscope::notify
