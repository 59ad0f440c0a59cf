// The base of every bpf-tier suite: skipped as a whole unless root, libbpf's
// messages routed to our log, and the kernel's features probed once per
// suite (each test reads them through features_).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include "agent/loader/features.h"

namespace syncscope::testing {

class BpfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) GTEST_SKIP() << "bpf tests load BPF programs: run as root";
    loader::install_libbpf_logging();
    features_ = new loader::Features(loader::probe_features());
  }
  static void TearDownTestSuite() {
    delete features_;
    features_ = nullptr;
  }

  // Null when the suite was skipped: SetUp() of a derived suite skips too.
  static inline loader::Features* features_ = nullptr;
};

}  // namespace syncscope::testing
