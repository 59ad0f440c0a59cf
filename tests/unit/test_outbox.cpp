// The durable outbox and webhook delivery: killed between write and send,
// backoff with full jitter, Retry-After, 410, a full outbox; and the libcurl
// sender against a local socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/notify/notifier.h"
#include "agent/notify/outbox.h"
#include "tests/support/temp_dir.h"

namespace syncscope::notify {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::string_view kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

using testing::TempDir;

struct Request {
  std::string url;
  HttpHeaders headers;
  std::string body;
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    return {};
  }
};

// Answers from a script (then 200), records every request.
class FakeSender final : public HttpSender {
 public:
  Result<HttpResponse> post(const std::string& url, const HttpHeaders& headers, std::string_view body,
                            Nanoseconds) override {
    std::lock_guard lock(mu_);
    requests.push_back(Request{url, headers, std::string(body)});
    if (script.empty()) return HttpResponse{200, std::nullopt, ""};
    auto next = std::move(script.front());
    script.pop_front();
    return next;
  }
  void answer(long status, std::optional<std::string> retry_after = std::nullopt) {
    script.push_back(HttpResponse{status, std::move(retry_after), ""});
  }
  void refuse() { script.push_back(fail("connect to 127.0.0.1:18080: Connection refused")); }

  std::deque<Result<HttpResponse>> script;
  std::vector<Request> requests;

 private:
  std::mutex mu_;
};

std::map<std::string, config::NotifierConfig> notifiers(const std::string& dir) {
  std::ofstream(dir + "/hook.key") << kSecret << "\n";
  std::map<std::string, config::NotifierConfig> out;
  for (const char* name : {"breaker", "backup"}) {
    config::NotifierConfig c;
    c.name = name;
    c.type = config::NotifierConfig::Type::webhook;
    c.url = std::string("http://127.0.0.1:18080/") + name;
    c.secret_file = dir + "/hook.key";
    out[name] = c;
  }
  return out;
}

CircuitNotification notification(uint64_t sequence, std::vector<std::string> to = {"breaker"}) {
  CircuitNotification n;
  n.type = "circuit.open";
  n.sequence = sequence;
  n.circuit = "api/unit=api.service";
  n.slo_name = "api";
  n.objective = 99;
  n.window = "30d";
  n.target = "unit=api.service";
  n.timestamp = std::chrono::system_clock::time_point(1'800'000'000s);
  n.notifiers = std::move(to);
  return n;
}

// Always the top of the range: the jitter's upper bound, deterministically.
DispatcherOptions max_jitter() {
  DispatcherOptions options;
  options.outbox.random = [] { return ~uint64_t{0}; };
  options.alertmanager.host = "test-host";
  return options;
}

double metric(const Dispatcher& dispatcher, const std::string& name, const metrics::Labels& labels) {
  std::vector<metrics::Family> families;
  dispatcher.collect(families);
  for (const auto& family : families)
    if (family.name == name)
      for (const auto& sample : family.samples)
        if (sample.labels == labels) return sample.value;
  return -1;
}

double result_count(const Dispatcher& d, const std::string& notifier, const std::string& result) {
  return metric(d, "syncscope_notifications_total", {{"notifier", notifier}, {"result", result}});
}

size_t files_in(const std::string& dir, const std::string& extension = ".json") {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.path().extension() == extension;
  return n;
}

class DispatcherTest : public ::testing::Test {
 protected:
  std::unique_ptr<Dispatcher> make(config::OutboxConfig outbox = {}) {
    auto d = Dispatcher::create(notifiers(dir.path()), outbox, dir.path(), sender, clock, max_jitter());
    EXPECT_TRUE(d.has_value()) << d.error().message();
    return d ? std::move(*d) : nullptr;
  }
  std::string outbox_dir() const { return dir.path() + "/outbox"; }

  TempDir dir;
  FakeClock clock;
  FakeSender sender;
};

TEST_F(DispatcherTest, KilledBetweenWriteAndSendDeliversExactlyTheEntriesAfterRestart) {
  std::vector<std::string> bodies;
  {
    auto first = make();
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      first->circuit_event(notification(seq));
      bodies.push_back(circuit_webhook_body(notification(seq)));
    }
    // Durable before any send: the files are there, nothing went out.
    EXPECT_EQ(files_in(outbox_dir()), 3u);
    EXPECT_TRUE(sender.requests.empty());
    EXPECT_EQ(metric(*first, "syncscope_outbox_pending", {}), 3);
  }  // the process "dies" here, without a single pump()

  auto second = make();
  EXPECT_EQ(second->pending(), 3u);
  second->pump();
  ASSERT_EQ(sender.requests.size(), 3u);
  auto key = parse_webhook_secret(kSecret);
  ASSERT_TRUE(key.has_value());
  std::set<std::string> ids;
  for (size_t i = 0; i < 3; ++i) {
    const Request& r = sender.requests[i];
    EXPECT_EQ(r.url, "http://127.0.0.1:18080/breaker");
    EXPECT_EQ(r.body, bodies[i]);  // in order, byte for byte
    EXPECT_EQ(r.header("webhook-timestamp"), "1800000000");
    EXPECT_EQ(r.header("webhook-signature"), webhook_signature(*key, r.header("webhook-id"), 1800000000, r.body));
    EXPECT_TRUE(r.header("webhook-id").starts_with("msg_"));
    ids.insert(r.header("webhook-id"));
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(second->pending(), 0u);
  EXPECT_EQ(files_in(outbox_dir()), 0u);
  EXPECT_EQ(result_count(*second, "breaker", "delivered"), 3);
  second->pump();
  EXPECT_EQ(sender.requests.size(), 3u);  // exactly once each
}

TEST_F(DispatcherTest, RetriesKeepTheWebhookIdAcrossAttemptsAndRestarts) {
  std::string id;
  {
    auto d = make();
    d->circuit_event(notification(1));
    sender.answer(500);
    d->pump();
    ASSERT_EQ(sender.requests.size(), 1u);
    id = sender.requests[0].header("webhook-id");
    EXPECT_EQ(result_count(*d, "breaker", "failed"), 1);
    // Backoff after one failure: at most base (1 s) with full jitter.
    clock.advance(999ms);
    d->pump();
    EXPECT_EQ(sender.requests.size(), 1u);
    sender.refuse();
    clock.advance(1ms);
    d->pump();
    ASSERT_EQ(sender.requests.size(), 2u);
    EXPECT_EQ(sender.requests[1].header("webhook-id"), id);
    EXPECT_EQ(result_count(*d, "breaker", "retried"), 1);
  }
  // The attempt count and schedule were persisted with the entry.
  const fs::path file = *fs::directory_iterator(outbox_dir());
  std::ifstream in(file);
  const auto stored = nlohmann::json::parse(in);
  EXPECT_EQ(stored["attempts"], 2);
  EXPECT_EQ(stored["id"], id);

  auto d = make();
  d->pump();  // not yet: the second backoff (≤ 2 s) survived the restart
  EXPECT_EQ(sender.requests.size(), 2u);
  clock.advance(2s);
  d->pump();
  ASSERT_EQ(sender.requests.size(), 3u);
  EXPECT_EQ(sender.requests[2].header("webhook-id"), id);
  EXPECT_EQ(sender.requests[2].header("webhook-timestamp"), "1800000003");  // a fresh timestamp
  EXPECT_EQ(d->pending(), 0u);
}

TEST_F(DispatcherTest, RetryAfterSecondsIsHonouredForTheWholeEndpoint) {
  auto d = make();
  d->circuit_event(notification(1));
  d->circuit_event(notification(2));
  sender.answer(429, "120");
  d->pump();
  ASSERT_EQ(sender.requests.size(), 1u);  // the second entry waits too
  clock.advance(119s);
  d->pump();
  EXPECT_EQ(sender.requests.size(), 1u);
  clock.advance(1s);
  d->pump();
  ASSERT_EQ(sender.requests.size(), 3u);
  EXPECT_EQ(sender.requests[1].header("webhook-id"), sender.requests[0].header("webhook-id"));
  EXPECT_EQ(d->pending(), 0u);
}

TEST_F(DispatcherTest, RetryAfterHttpDate) {
  auto d = make();
  d->circuit_event(notification(1));
  // 1'800'000'000 = Fri, 15 Jan 2027 08:00:00 GMT; ask for 30 s.
  sender.answer(503, "Fri, 15 Jan 2027 08:00:30 GMT");
  d->pump();
  clock.advance(29s);
  d->pump();
  EXPECT_EQ(sender.requests.size(), 1u);
  clock.advance(1s);
  d->pump();
  EXPECT_EQ(sender.requests.size(), 2u);
}

TEST_F(DispatcherTest, GoneDisablesTheEndpointAndDropsItsEntries) {
  auto d = make();
  for (uint64_t seq = 1; seq <= 3; ++seq) d->circuit_event(notification(seq, {"breaker", "backup"}));
  sender.answer(200);  // "backup" sorts first
  sender.answer(200);
  sender.answer(200);
  sender.answer(410);  // breaker's first entry
  d->pump();
  EXPECT_TRUE(d->disabled("breaker"));
  EXPECT_FALSE(d->disabled("backup"));
  EXPECT_EQ(result_count(*d, "breaker", "disabled"), 3);
  EXPECT_EQ(result_count(*d, "backup", "delivered"), 3);
  EXPECT_EQ(d->pending(), 0u);
  EXPECT_EQ(files_in(outbox_dir()), 0u);
  // Later notifications to it are counted, not stored.
  d->circuit_event(notification(4, {"breaker"}));
  EXPECT_EQ(result_count(*d, "breaker", "disabled"), 4);
  EXPECT_EQ(d->pending(), 0u);
  clock.advance(1h);
  d->pump();
  EXPECT_EQ(sender.requests.size(), 4u);
}

TEST_F(DispatcherTest, FullOutboxRefusesTheNewestAndCountsIt) {
  config::OutboxConfig small;
  small.max_pending = 3;
  auto d = make(small);
  for (uint64_t seq = 1; seq <= 5; ++seq) d->circuit_event(notification(seq));
  EXPECT_EQ(d->pending(), 3u);
  EXPECT_EQ(result_count(*d, "breaker", "dropped"), 2);
  EXPECT_EQ(metric(*d, "syncscope_outbox_pending", {}), 3);
  d->pump();
  ASSERT_EQ(sender.requests.size(), 3u);
  // The oldest were kept.
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(nlohmann::json::parse(sender.requests[i].body)["sequence"], i + 1);
  d->circuit_event(notification(6));  // room again
  EXPECT_EQ(d->pending(), 1u);
}

TEST_F(DispatcherTest, MetricFamiliesAreComplete) {
  auto d = make();
  std::vector<metrics::Family> families;
  d->collect(families);
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "syncscope_notifications_total");
  EXPECT_EQ(families[0].type, metrics::Type::counter);
  EXPECT_EQ(families[0].samples.size(), 10u);  // 2 notifiers × 5 results
  EXPECT_EQ(families[1].name, "syncscope_outbox_pending");
  EXPECT_EQ(families[1].type, metrics::Type::gauge);
}

TEST_F(DispatcherTest, BadSecretFileIsAnErrorNamingNotifierAndFile) {
  auto configs = notifiers(dir.path());
  configs["breaker"].secret_file = dir.path() + "/missing.key";
  auto d = Dispatcher::create(configs, {}, dir.path(), sender, clock, max_jitter());
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().message(), "notifiers.breaker: webhook secret_file " + dir.path() +
                                     "/missing.key: No such file or directory");
}

TEST_F(DispatcherTest, BackgroundThreadsDeliver) {
  auto d = make();
  d->start();
  d->circuit_event(notification(1));
  for (int i = 0; i < 500 && d->pending() > 0; ++i) std::this_thread::sleep_for(10ms);
  d->stop();
  EXPECT_EQ(d->pending(), 0u);
  EXPECT_EQ(result_count(*d, "breaker", "delivered"), 1);
}

TEST(Outbox, FullJitterBounds) {
  TempDir dir;
  FakeClock clock;
  config::OutboxConfig config;
  config.max_backoff = 300s;
  uint64_t next = 0;
  OutboxOptions options;
  options.random = [&] { return next; };
  auto outbox = Outbox::open(dir.path(), config, clock, options);
  ASSERT_TRUE(outbox.has_value());
  Outbox& box = **outbox;
  next = 0;
  for (uint32_t attempts : {1u, 5u, 30u}) EXPECT_EQ(box.backoff(attempts), 0ns);
  next = ~uint64_t{0};  // the top of the range: the ceiling itself (minus rounding)
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(1)).count(), 1, 1e-6);
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(2)).count(), 2, 1e-6);
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(9)).count(), 256, 1e-6);
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(10)).count(), 300, 1e-6);  // capped
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(4000)).count(), 300, 1e-6);
  next = uint64_t{1} << 63;  // the middle
  EXPECT_NEAR(std::chrono::duration<double>(box.backoff(4)).count(), 4, 1e-6);

  // The default generator stays inside [0, ceiling] and spreads.
  auto real = Outbox::open(dir.path() + "/real", config, clock);
  ASSERT_TRUE(real.has_value());
  double low = 1e9, high = 0;
  for (int i = 0; i < 2000; ++i) {
    const double d = std::chrono::duration<double>((*real)->backoff(6)).count();
    ASSERT_GE(d, 0);
    ASSERT_LE(d, 32);
    low = std::min(low, d);
    high = std::max(high, d);
  }
  EXPECT_LT(low, 2);
  EXPECT_GT(high, 30);
}

TEST(Outbox, RetryAfterIsCappedAtAnHour) {
  TempDir dir;
  FakeClock clock;
  auto outbox = Outbox::open(dir.path(), {}, clock);
  ASSERT_TRUE(outbox.has_value());
  auto id = (*outbox)->enqueue("breaker", "{}");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*outbox)->failed(*id, 86400s), 1h);
  EXPECT_EQ((*outbox)->failed(*id, 7s), 7s);
  EXPECT_TRUE((*outbox)->due("breaker", 10).empty());
  clock.advance(7s);
  EXPECT_EQ((*outbox)->due("breaker", 10).size(), 1u);
}

TEST(Outbox, LeftoversAndCorruptFilesOnReload) {
  TempDir dir;
  FakeClock clock;
  {
    auto outbox = Outbox::open(dir.path(), {}, clock);
    ASSERT_TRUE(outbox.has_value());
    ASSERT_TRUE((*outbox)->enqueue("breaker", "{\"n\":1}").has_value());
  }
  std::ofstream(dir.path() + "/00000000000000000002.json.tmp") << "half-written";
  std::ofstream(dir.path() + "/00000000000000000003.json") << "{ not json";
  auto outbox = Outbox::open(dir.path(), {}, clock);
  ASSERT_TRUE(outbox.has_value());
  EXPECT_EQ((*outbox)->pending(), 1u);
  EXPECT_FALSE(fs::exists(dir.path() + "/00000000000000000002.json.tmp"));
  EXPECT_TRUE(fs::exists(dir.path() + "/00000000000000000003.corrupt"));
  // New entries continue after the highest ordinal seen.
  auto id = (*outbox)->enqueue("breaker", "{\"n\":2}");
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(fs::exists(dir.path() + "/00000000000000000004.json"));
  auto due = (*outbox)->due("breaker", 10);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].body, "{\"n\":1}");
  EXPECT_EQ(due[1].body, "{\"n\":2}");
}

TEST(RetryAfterHeader, Forms) {
  const auto now = std::chrono::system_clock::time_point(1'800'000'000s);  // Fri, 15 Jan 2027 08:00:00 GMT
  EXPECT_EQ(parse_retry_after("120", now), 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0s);
  EXPECT_EQ(parse_retry_after("Fri, 15 Jan 2027 08:01:00 GMT", now), 60s);
  EXPECT_EQ(parse_retry_after("Friday, 15-Jan-27 08:00:10 GMT", now), 10s);  // RFC 850
  EXPECT_EQ(parse_retry_after("Fri Jan 15 08:00:05 2027", now), 5s);         // asctime
  EXPECT_EQ(parse_retry_after("Thu, 14 Jan 2027 08:00:00 GMT", now), 0s);    // in the past
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("-5", now));
  EXPECT_FALSE(parse_retry_after("", now));
}

// A one-request HTTP server on 127.0.0.1, to check the libcurl sender.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 1);
    thread_ = std::thread([this, response = std::move(response)] {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      char buffer[4096];
      while (true) {
        ssize_t n = ::read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request_.append(buffer, static_cast<size_t>(n));
        size_t head = request_.find("\r\n\r\n");
        if (head == std::string::npos) continue;
        size_t length_at = request_.find("Content-Length: ");
        size_t length = length_at == std::string::npos ? 0 : std::stoul(request_.substr(length_at + 16));
        if (request_.size() >= head + 4 + length) break;
      }
      ssize_t written = ::write(client, response.data(), response.size());
      (void)written;
      ::close(client);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(CurlHttpSender, CapturesStatusAndRetryAfter) {
  OneShotServer server(
      "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow");
  CurlHttpSender sender;
  const std::string body(2000, 'x');  // over 1 KiB: no Expect: 100-continue stall
  auto response = sender.post(server.url(), {{"content-type", "application/json"}, {"webhook-id", "msg_1"}}, body, 5s);
  ASSERT_TRUE(response.has_value()) << response.error().message();
  EXPECT_EQ(response->status, 429);
  EXPECT_EQ(response->retry_after, "7");
  EXPECT_EQ(response->body, "slow");
}

TEST(CurlHttpSender, ConnectionRefusedIsAnError) {
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(probe);  // nothing listens there now
  CurlHttpSender sender;
  auto response = sender.post("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/", {}, "{}", 2s);
  ASSERT_FALSE(response.has_value());
  EXPECT_NE(response.error().message().find("POST http://127.0.0.1:"), std::string::npos);
}

}  // namespace
}  // namespace syncscope::notify
