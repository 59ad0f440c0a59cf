// A cgroup v2 group for one test: created under the v2 mount (found through
// mountinfo, /sys/fs/cgroup/unified on these hybrid hosts), processes moved in
// by pid; on destruction every process left in it goes back to the root and the
// directory is removed.
#pragma once

#include <sys/types.h>

#include <string>

namespace syncscope::testing {

class TestCgroup {
 public:
  // `path` relative to the v2 root, e.g. "/syncscope-test-crowded".
  explicit TestCgroup(std::string path);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  const std::string& path() const { return path_; }
  const std::string& directory() const { return directory_; }
  uint64_t id() const { return id_; }
  void add(pid_t pid) const;

 private:
  std::string path_;
  std::string directory_;
  std::string mount_;
  uint64_t id_ = 0;
};

}  // namespace syncscope::testing
