// Standard Webhooks signing against the published test vector, the secret
// file, and the circuit webhook body (golden).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "agent/notify/webhook.h"
#include "tests/support/temp_dir.h"

namespace syncscope::notify {
namespace {

using namespace std::chrono_literals;

using testing::TempDir;

// The vector published by the Standard Webhooks project: the "sign function
// works" test of its reference libraries (standard-webhooks/standard-webhooks,
// libraries/javascript/src/webhook.test.ts; the same values appear in the
// Go, Python and other libraries' tests). Not computed by this code.
constexpr std::string_view kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kTimestamp = 1614265330;
constexpr std::string_view kPayload = R"({"test": 2432232314})";
constexpr std::string_view kSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(WebhookSignature, PublishedStandardWebhooksVector) {
  auto key = parse_webhook_secret(kSecret);
  ASSERT_TRUE(key.has_value()) << key.error().message();
  EXPECT_EQ(webhook_signature(*key, kMsgId, kTimestamp, kPayload), kSignature);
}

TEST(WebhookSignature, HeadersCarryIdTimestampAndSignature) {
  auto key = parse_webhook_secret(kSecret);
  ASSERT_TRUE(key.has_value());
  const HttpHeaders headers = webhook_headers(*key, kMsgId, kTimestamp, kPayload);
  EXPECT_EQ(headers, (HttpHeaders{
                         {"content-type", "application/json"},
                         {"webhook-id", std::string(kMsgId)},
                         {"webhook-timestamp", "1614265330"},
                         {"webhook-signature", std::string(kSignature)},
                     }));
}

TEST(WebhookSignature, AnyChangeChangesTheSignature) {
  auto key = parse_webhook_secret(kSecret);
  ASSERT_TRUE(key.has_value());
  EXPECT_NE(webhook_signature(*key, "msg_other", kTimestamp, kPayload), kSignature);
  EXPECT_NE(webhook_signature(*key, kMsgId, kTimestamp + 1, kPayload), kSignature);
  EXPECT_NE(webhook_signature(*key, kMsgId, kTimestamp, R"({"test": 2432232315})"), kSignature);
}

TEST(WebhookSecret, FileWithTrailingNewline) {
  TempDir dir;
  auto key = load_webhook_secret(dir.file("hook.key", std::string(kSecret) + "\n"));
  ASSERT_TRUE(key.has_value()) << key.error().message();
  EXPECT_EQ(key->size(), 24u);
  EXPECT_EQ(webhook_signature(*key, kMsgId, kTimestamp, kPayload), kSignature);
}

TEST(WebhookSecret, ErrorsNameTheFile) {
  TempDir dir;
  const std::string missing = dir.path() + "/absent.key";
  auto absent = load_webhook_secret(missing);
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().message(),
            "webhook secret_file " + missing + ": No such file or directory");

  const std::string raw = dir.file("raw.key", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
  auto no_prefix = load_webhook_secret(raw);
  ASSERT_FALSE(no_prefix.has_value());
  EXPECT_EQ(no_prefix.error().message(), "webhook secret_file " + raw +
                                             ": expected \"whsec_<base64>\" (the \"whsec_\" prefix is missing)");

  auto bad = load_webhook_secret(dir.file("bad.key", "whsec_not*base64!"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("bad.key: the text after \"whsec_\" is not valid base64"), std::string::npos);

  auto empty = load_webhook_secret(dir.file("empty.key", "whsec_"));
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message().find("empty.key: the secret is empty"), std::string::npos);
}

TEST(WebhookBase64, RoundTripAndPadding) {
  for (std::string_view text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const std::string encoded = base64_encode(reinterpret_cast<const unsigned char*>(text.data()), text.size());
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    EXPECT_EQ(std::string(decoded->begin(), decoded->end()), text);
  }
  EXPECT_EQ(base64_encode(reinterpret_cast<const unsigned char*>("foobar"), 6), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(reinterpret_cast<const unsigned char*>("fo"), 2), "Zm8=");
  auto unpadded = base64_decode("Zm8");
  ASSERT_TRUE(unpadded.has_value());
  EXPECT_EQ(std::string(unpadded->begin(), unpadded->end()), "fo");
  EXPECT_FALSE(base64_decode("Z"));
  EXPECT_FALSE(base64_decode("Zm-8"));
}

CircuitNotification sample_open() {
  CircuitNotification n;
  n.type = "circuit.open";
  n.sequence = 7;
  n.circuit = "crowded-runq/cgroup=/crowded";
  n.slo_name = "crowded-runq";
  n.objective = 99.0;
  n.window = "1h";
  n.target = "cgroup=/crowded";
  n.reason = "page-level burn rate exceeded";
  n.burn_rates = {{"4s", 12.0}, {"20s", 5.3999999999999995}};
  n.error_budget_remaining = 0.9851851851851852;
  n.open_until = std::chrono::system_clock::time_point(1'800'000'005s);
  n.evidence = {{"slowest_cgroups", {{{"cgroup", "/crowded"}, {"p99_us", 8400}}}}};
  n.timestamp = std::chrono::system_clock::time_point(1'800'000'000s);
  n.notifiers = {"breaker", "am"};
  return n;
}

TEST(WebhookBody, OpenGolden) {
  EXPECT_EQ(circuit_webhook_body(sample_open()),
            R"({"type":"circuit.open","sequence":7,"circuit":"crowded-runq/cgroup=/crowded",)"
            R"("slo":{"name":"crowded-runq","objective":99.0,"window":"1h"},"target":"cgroup=/crowded",)"
            R"("reason":"page-level burn rate exceeded","burn_rates":{"4s":12.0,"20s":5.4},)"
            R"("error_budget_remaining":0.9852,"open_until":"2027-01-15T08:00:05.000Z",)"
            R"("evidence":{"slowest_cgroups":[{"cgroup":"/crowded","p99_us":8400}]},)"
            R"("timestamp":"2027-01-15T08:00:00.000Z"})");
}

TEST(WebhookBody, CloseGolden) {
  CircuitNotification n = sample_open();
  n.type = "circuit.close";
  n.sequence = 9;
  n.reason = "no burn for 10s";
  n.burn_rates = {{"4s", 0.0}, {"20s", 0.0}};
  n.error_budget_remaining = -0.25;
  n.open_until.reset();
  n.evidence = nlohmann::json::object();
  EXPECT_EQ(circuit_webhook_body(n),
            R"({"type":"circuit.close","sequence":9,"circuit":"crowded-runq/cgroup=/crowded",)"
            R"("slo":{"name":"crowded-runq","objective":99.0,"window":"1h"},"target":"cgroup=/crowded",)"
            R"("reason":"no burn for 10s","burn_rates":{"4s":0.0,"20s":0.0},)"
            R"("error_budget_remaining":-0.25,"open_until":null,"evidence":{},)"
            R"("timestamp":"2027-01-15T08:00:00.000Z"})");
}

TEST(WebhookBody, NonFiniteNumbersBecomeNull) {
  CircuitNotification n = sample_open();
  n.burn_rates = {{"4s", std::numeric_limits<double>::infinity()}};
  n.evidence = "not an object";
  const nlohmann::json body = nlohmann::json::parse(circuit_webhook_body(n));
  EXPECT_TRUE(body["burn_rates"]["4s"].is_null());
  EXPECT_TRUE(body["evidence"].is_object());
}

TEST(WebhookTime, Rfc3339) {
  using std::chrono::system_clock;
  EXPECT_EQ(format_rfc3339(system_clock::time_point(1'800'000'000s)), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(format_rfc3339(system_clock::time_point(1'800'000'000'123ms)), "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(format_rfc3339(system_clock::time_point(0s)), "1970-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace syncscope::notify
