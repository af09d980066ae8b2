#include "workloads/scenario.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include <cstring>
#include <fmt/core.h>

#include "core/stamp.h"
#include "core/util.h"

namespace fsrace {

std::vector<std::unique_ptr<Scenario>> make_scenarios();

const std::vector<std::unique_ptr<Scenario>>& scenarios() {
  static const std::vector<std::unique_ptr<Scenario>> v = [] {
    return make_scenarios();
  }();
  return v;
}

Scenario* find_scenario(const std::string& name) {
  for (const auto& s : scenarios())
    if (s->spec().name == name) return s.get();
  return nullptr;
}

std::vector<ScenarioSpec> scenario_catalog() {
  std::vector<ScenarioSpec> out;
  for (const auto& s : scenarios()) out.push_back(s->spec());
  return out;
}

int64_t write_stamped(int fd, const TestFile& f, uint64_t b0, uint64_t n, uint64_t gen, void* buf) {
  for (uint64_t i = 0; i < n; ++i) stamp_encode(static_cast<char*>(buf) + i * kBlockSize, f.file_id, b0 + i, gen);
  ssize_t r = pwrite(fd, buf, n * kBlockSize, off_t(b0 * kBlockSize));
  return r < 0 ? -errno : r;
}

void record_blocks(ThreadLog& tl, const void* buf, uint64_t b0, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    tl.obs(uint32_t(b0 + i), stamp_decode(static_cast<const char*>(buf) + i * kBlockSize));
}

void init_files(ScenarioEnv& env, const std::vector<TestFile>& files, InitMode mode) {
  ThreadLog& tl = env.log->thread(0);
  for (size_t i = 0; i < files.size(); ++i) {
    const TestFile& f = files[i];
    int fd = open(f.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Fatal(fmt::format("cannot create test file {}: {}", f.path, strerror(errno)));
    if (ftruncate(fd, off_t(f.blocks * kBlockSize)) != 0) {
      int e = errno;
      close(fd);
      throw Fatal(fmt::format("cannot size test file {}: {}", f.path, strerror(e)));
    }
    AlignedBuf buf(kBlockSize * (mode == InitMode::kStamped ? f.blocks : 1));
    auto stamp = [&](uint64_t b0, uint64_t n) {
      uint64_t id = tl.new_id(), t0 = now_ns();
      int64_t r = write_stamped(fd, f, b0, n, id, buf.p);
      tl.op(id, OpKind::kInit, uint16_t(i), b0 * kBlockSize, n * kBlockSize, t0, now_ns(), r);
      if (r != int64_t(n * kBlockSize)) {
        close(fd);
        throw Fatal(fmt::format("cannot initialise test file {}: {}", f.path, r < 0 ? strerror(int(-r)) : "short write"));
      }
    };
    if (mode == InitMode::kStamped) stamp(0, f.blocks);
    if (mode == InitMode::kHalf)
      for (uint64_t b = 0; b < f.blocks; b += 2) stamp(b, 1);
    fsync(fd);
    if (env.on_file) env.on_file(f, fd);
    close(fd);
  }
}

AlignedBuf::AlignedBuf(size_t bytes) : size(bytes) {
  if (posix_memalign(&p, 4096, bytes ? bytes : 4096) != 0) throw std::bad_alloc();
}
AlignedBuf::~AlignedBuf() { free(p); }

}  // namespace fsrace
