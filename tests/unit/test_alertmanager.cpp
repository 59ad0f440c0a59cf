// Alertmanager API v2 pushes: the payload (golden) and the resend / endsAt
// timing with a fake clock.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/notify/alertmanager.h"
#include "agent/notify/notifier.h"

namespace syncscope::notify {
namespace {

using namespace std::chrono_literals;

class RecordingSender final : public HttpSender {
 public:
  Result<HttpResponse> post(const std::string& url, const HttpHeaders& headers, std::string_view body,
                            Nanoseconds) override {
    urls.push_back(url);
    content_types.push_back(headers.empty() ? "" : headers[0].second);
    bodies.emplace_back(body);
    if (fail_next > 0) {
      --fail_next;
      return HttpResponse{500, std::nullopt, "boom"};
    }
    return HttpResponse{200, std::nullopt, ""};
  }
  nlohmann::json last() const { return nlohmann::json::parse(bodies.back()); }

  int fail_next = 0;
  std::vector<std::string> urls;
  std::vector<std::string> content_types;
  std::vector<std::string> bodies;
};

AlertNotification page_alert(bool firing = true) {
  AlertNotification a;
  a.slo = "crowded-runq";
  a.target = "cgroup=/crowded";
  a.severity = "page";
  a.firing = firing;
  a.objective = 99.0;
  a.window = "1h";
  a.burn_rates = {{"4s", 12.0}, {"20s", 5.3999999999999995}};
  a.error_budget_remaining = 0.9851851851851852;
  a.notifiers = {"breaker", "am"};
  return a;
}

AlertmanagerOptions options() {
  AlertmanagerOptions o;
  o.host = "test-host";
  return o;
}

TEST(AlertmanagerPayload, Golden) {
  const auto start = std::chrono::system_clock::time_point(1'800'000'000s);
  const std::vector<PostableAlert> alerts{postable_alert(page_alert(), options(), start, start + 120s)};
  EXPECT_EQ(alertmanager_payload(alerts),
            R"([{"labels":{"alertname":"SyncscopeSLOBurn","slo":"crowded-runq","target":"cgroup=/crowded",)"
            R"("severity":"page","host":"test-host"},)"
            R"("annotations":{"summary":"SLO crowded-runq on cgroup=/crowded is burning its error budget too fast",)"
            R"("description":"objective 99% over 1h; burn rates 4s=12, 20s=5.4; error budget remaining 0.985",)"
            R"("burn_rates":"4s=12, 20s=5.4","error_budget_remaining":"0.985"},)"
            R"("startsAt":"2027-01-15T08:00:00.000Z","endsAt":"2027-01-15T08:02:00.000Z"}])");
  EXPECT_EQ(alertmanager_payload({}), "[]");
}

class AlertmanagerClientTest : public ::testing::Test {
 protected:
  std::string iso(std::chrono::seconds after_start) const {
    return format_rfc3339(std::chrono::system_clock::time_point(1'800'000'000s) + after_start);
  }
  size_t pushes() const { return sender.bodies.size(); }

  FakeClock clock;  // wall starts at 1'800'000'000 s
  RecordingSender sender;
  AlertmanagerClient client{"am", "http://127.0.0.1:19093/", 5s, options(), sender, clock};
};

TEST_F(AlertmanagerClientTest, FiringResendsWithEndsAtFourIntervalsAhead) {
  EXPECT_FALSE(client.pump());  // nothing tracked, nothing sent
  client.update(page_alert());
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(sender.urls.back(), "http://127.0.0.1:19093/api/v2/alerts");
  EXPECT_EQ(sender.content_types.back(), "application/json");
  EXPECT_EQ(sender.last()[0]["startsAt"], iso(0s));
  EXPECT_EQ(sender.last()[0]["endsAt"], iso(120s));  // now + 4 × 30 s

  // Every evaluation refreshes the annotations; that alone sends nothing.
  for (int i = 1; i < 30; ++i) {
    clock.advance(1s);
    AlertNotification a = page_alert();
    a.burn_rates = {{"4s", 20.0 + i}, {"20s", 8.0}};
    client.update(a);
    EXPECT_FALSE(client.pump()) << i;
  }
  clock.advance(1s);
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(pushes(), 2u);
  EXPECT_EQ(sender.last()[0]["startsAt"], iso(0s));  // the same alert
  EXPECT_EQ(sender.last()[0]["endsAt"], iso(150s));
  EXPECT_EQ(sender.last()[0]["annotations"]["burn_rates"], "4s=49, 20s=8");
  EXPECT_EQ(client.stats().delivered, 2u);
}

TEST_F(AlertmanagerClientTest, ResolvedIsSentAtOnceAndRepeatedForFifteenMinutes) {
  client.update(page_alert());
  client.pump();
  clock.advance(45s);
  client.pump();  // resend at 30 s was due
  EXPECT_EQ(pushes(), 2u);
  client.update(page_alert(false));
  ASSERT_TRUE(client.pump());  // at once, not at the next resend
  EXPECT_EQ(pushes(), 3u);
  EXPECT_EQ(sender.last()[0]["endsAt"], iso(45s));
  EXPECT_EQ(sender.last()[0]["startsAt"], iso(0s));

  // Repeated every 30 s with the same endsAt for 15 minutes, then forgotten.
  const auto resolved = clock.steady_now();
  size_t resends = 0;
  while (clock.steady_now() - resolved < 20min) {
    clock.advance(1s);
    if (client.pump()) {
      ++resends;
      EXPECT_LE(clock.steady_now() - resolved, 15min);
      EXPECT_EQ(sender.last()[0]["endsAt"], iso(45s));
    }
  }
  EXPECT_EQ(resends, 30u);  // 15 min / 30 s
  EXPECT_EQ(client.tracked(), 0u);
  // A second resolution of an alert no longer tracked sends nothing.
  client.update(page_alert(false));
  EXPECT_FALSE(client.pump());
}

TEST_F(AlertmanagerClientTest, FiringAgainAfterResolvingIsANewAlert) {
  client.update(page_alert());
  client.pump();
  clock.advance(10s);
  client.update(page_alert(false));
  client.pump();
  clock.advance(10s);
  client.update(page_alert());
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(sender.last().size(), 1u);
  EXPECT_EQ(sender.last()[0]["startsAt"], iso(20s));
  EXPECT_EQ(sender.last()[0]["endsAt"], iso(140s));
}

TEST_F(AlertmanagerClientTest, OnePushCarriesEveryTrackedAlert) {
  client.update(page_alert());
  AlertNotification ticket = page_alert();
  ticket.severity = "ticket";
  client.update(ticket);
  AlertNotification other = page_alert();
  other.slo = "api-locks";
  client.update(other);
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(pushes(), 1u);
  EXPECT_EQ(sender.last().size(), 3u);
}

TEST_F(AlertmanagerClientTest, FailuresAreCountedAndRetriedAtTheNextResend) {
  sender.fail_next = 1;
  client.update(page_alert());
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(client.stats().failed, 1u);
  clock.advance(29s);
  EXPECT_FALSE(client.pump());
  clock.advance(1s);
  ASSERT_TRUE(client.pump());
  EXPECT_EQ(client.stats().retried, 1u);
  EXPECT_EQ(client.stats().delivered, 1u);
  EXPECT_EQ(sender.last()[0]["startsAt"], iso(0s));
}

TEST(AlertmanagerDispatch, AlertStateReachesTheNamedAlertmanagers) {
  FakeClock clock;
  RecordingSender sender;
  std::map<std::string, config::NotifierConfig> configs;
  config::NotifierConfig am;
  am.name = "am";
  am.type = config::NotifierConfig::Type::alertmanager;
  am.url = "http://127.0.0.1:19093";
  configs["am"] = am;
  am.name = "am2";
  am.url = "http://127.0.0.1:19094";
  configs["am2"] = am;
  DispatcherOptions options;
  options.alertmanager.host = "test-host";
  auto dispatcher = Dispatcher::create(configs, {}, "", sender, clock, options);
  ASSERT_TRUE(dispatcher.has_value()) << dispatcher.error().message();
  (*dispatcher)->alert_state(page_alert());  // names "breaker" and "am"
  (*dispatcher)->pump();
  ASSERT_EQ(sender.urls.size(), 1u);
  EXPECT_EQ(sender.urls[0], "http://127.0.0.1:19093/api/v2/alerts");
  EXPECT_EQ(sender.last()[0]["labels"]["host"], "test-host");

  std::vector<metrics::Family> families;
  (*dispatcher)->collect(families);
  ASSERT_FALSE(families.empty());
  bool found = false;
  for (const auto& sample : families[0].samples)
    if (sample.labels == metrics::Labels{{"notifier", "am"}, {"result", "delivered"}}) {
      EXPECT_EQ(sample.value, 1);
      found = true;
    }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace syncscope::notify
