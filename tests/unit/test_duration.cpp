#include <gtest/gtest.h>

#include "agent/core/duration.h"

namespace syncscope {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(*parse_duration("250ns"), 250ns);
  EXPECT_EQ(*parse_duration("250us"), 250us);
  EXPECT_EQ(*parse_duration("250µs"), 250us);
  EXPECT_EQ(*parse_duration("5ms"), 5ms);
  EXPECT_EQ(*parse_duration("20s"), 20s);
  EXPECT_EQ(*parse_duration("3m"), 3min);
  EXPECT_EQ(*parse_duration("1h"), 1h);
  EXPECT_EQ(*parse_duration("30d"), 720h);
  EXPECT_EQ(*parse_duration("2w"), 336h);
  EXPECT_EQ(*parse_duration("1h30m"), 90min);
}

TEST(Duration, RefusesWithReason) {
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("ms"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_FALSE(parse_duration("5 s"));
  EXPECT_FALSE(parse_duration("5parsecs"));
  EXPECT_FALSE(parse_duration("99999999999999999999s"));
  EXPECT_NE(parse_duration("5").error().message().find("missing or unknown unit"), std::string::npos);
}

TEST(Duration, FormatsShortestExactSpelling) {
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(300s), "5m");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(720h), "30d");
  EXPECT_EQ(format_duration(0s), "0s");
  for (Nanoseconds d : {Nanoseconds(4s), Nanoseconds(20s), Nanoseconds(5min), Nanoseconds(6h), Nanoseconds(72h)})
    EXPECT_EQ(*parse_duration(format_duration(d)), d);
}

}  // namespace
}  // namespace syncscope
