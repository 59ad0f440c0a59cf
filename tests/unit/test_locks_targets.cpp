// `locks.targets` selectors against process identities (no /proc needed),
// and the /proc reader against this very process.
#include "agent/collectors/locks_targets.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "bpf/futex.h"

namespace syncscope::collectors {
namespace {

using Kind = config::TargetSelector::Kind;

ProcessIdentity api() { return {1234, "api-server", "/usr/bin/api-server", "/system.slice/api.service"}; }

TEST(LocksTargets, UnitMatchesAPathComponent) {
  EXPECT_TRUE(matches({Kind::unit, "api.service"}, api()));
  ProcessIdentity child = api();
  child.cgroup = "/system.slice/api.service/worker";
  EXPECT_TRUE(matches({Kind::unit, "api.service"}, child));
  EXPECT_FALSE(matches({Kind::unit, "api"}, api()));
  EXPECT_FALSE(matches({Kind::unit, "other.service"}, api()));
}

TEST(LocksTargets, CgroupMatchesThePathAndBelow) {
  EXPECT_TRUE(matches({Kind::cgroup, "/system.slice"}, api()));
  EXPECT_TRUE(matches({Kind::cgroup, "/system.slice/"}, api()));
  EXPECT_TRUE(matches({Kind::cgroup, "/system.slice/api.service"}, api()));
  EXPECT_TRUE(matches({Kind::cgroup, "/"}, api()));
  EXPECT_FALSE(matches({Kind::cgroup, "/system"}, api()));  // a prefix, not a parent
  EXPECT_FALSE(matches({Kind::cgroup, "/user.slice"}, api()));
}

TEST(LocksTargets, ExeCommAndPid) {
  EXPECT_TRUE(matches({Kind::exe, "/usr/bin/api-server"}, api()));
  EXPECT_FALSE(matches({Kind::exe, "/usr/bin/api"}, api()));
  EXPECT_TRUE(matches({Kind::comm, "api-server"}, api()));
  EXPECT_FALSE(matches({Kind::comm, "api"}, api()));
  EXPECT_TRUE(matches({Kind::pid, "1234"}, api()));
  EXPECT_FALSE(matches({Kind::pid, "123"}, api()));
  EXPECT_FALSE(matches({Kind::pid, "12x"}, api()));
}

TEST(LocksTargets, ChildrenInheritUnlessSelectedByPid) {
  TargetSelectors by_unit({{Kind::unit, "api.service"}});
  EXPECT_EQ(by_unit.evaluate(api()), LOCK_TARGET_INHERIT);
  TargetSelectors by_pid({{Kind::pid, "1234"}});
  EXPECT_EQ(by_pid.evaluate(api()), 0u);
  TargetSelectors both({{Kind::pid, "1234"}, {Kind::comm, "api-server"}});
  EXPECT_EQ(both.evaluate(api()), LOCK_TARGET_INHERIT);
  TargetSelectors none({{Kind::comm, "db"}});
  EXPECT_EQ(none.evaluate(api()), std::nullopt);
}

TEST(LocksTargets, ExeSelectorsResolveSymlinks) {
  // /proc/PID/exe is always resolved; a selector naming a symlink must be too.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(n, 0);
  std::string exe(self, static_cast<size_t>(n));
  std::string link = ::testing::TempDir() + "syncscope-exe-link";
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink(exe.c_str(), link.c_str()), 0);
  TargetSelectors selectors({{Kind::exe, link}});
  ProcfsProcessSource proc;
  auto me = proc.identify(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(me);
  EXPECT_EQ(me->exe, exe);
  EXPECT_TRUE(selectors.evaluate(*me).has_value());
  ::unlink(link.c_str());
}

TEST(LocksTargets, ProcfsSourceDescribesThisProcess) {
  ProcfsProcessSource proc;
  auto me = proc.identify(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(me);
  EXPECT_FALSE(me->comm.empty());
  EXPECT_TRUE(me->cgroup.starts_with("/")) << me->cgroup;
  EXPECT_TRUE(proc.alive(static_cast<uint32_t>(::getpid())));
  auto pids = proc.all_pids();
  EXPECT_NE(std::ranges::find(pids, static_cast<uint32_t>(::getpid())), pids.end());
  EXPECT_FALSE(proc.identify(0x7ffffff0).has_value());
  EXPECT_FALSE(proc.alive(0x7ffffff0));
}

}  // namespace
}  // namespace syncscope::collectors
