#include "tests/support/cgroup_fixture.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "probes/cgroup.h"

namespace syncscope::testing {

TestCgroup::TestCgroup(std::string path) : path_(std::move(path)) {
  auto mount = probes::find_cgroup2_mount();
  if (!mount) throw std::runtime_error(mount.error().message());
  mount_ = *mount;
  directory_ = mount_ + path_;
  ::rmdir(directory_.c_str());  // left over from a killed run
  if (::mkdir(directory_.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("mkdir " + directory_ + ": " + std::strerror(errno));
  struct stat st {};
  ::stat(directory_.c_str(), &st);
  id_ = st.st_ino;
}

void TestCgroup::add(pid_t pid) const {
  std::ofstream procs(directory_ + "/cgroup.procs");
  procs << pid << std::endl;
  if (!procs) throw std::runtime_error("cannot move " + std::to_string(pid) + " into " + directory_);
}

TestCgroup::~TestCgroup() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::ifstream procs(directory_ + "/cgroup.procs");
    std::string pid;
    while (std::getline(procs, pid)) {
      std::ofstream root(mount_ + "/cgroup.procs");
      root << pid << std::endl;
    }
    if (::rmdir(directory_.c_str()) == 0 || errno == ENOENT) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace syncscope::testing
