#include "workloads/scenario.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include "harness/stamp.h"

namespace fsrace {

std::unique_ptr<Scenario> make_punch_vs_fault();

const std::vector<std::unique_ptr<Scenario>>& scenarios() {
  static const std::vector<std::unique_ptr<Scenario>> v = [] {
    std::vector<std::unique_ptr<Scenario>> s;
    s.push_back(make_punch_vs_fault());
    return s;
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

AlignedBuf::AlignedBuf(size_t bytes) : size(bytes) {
  if (posix_memalign(&p, 4096, bytes ? bytes : 4096) != 0) throw std::bad_alloc();
}
AlignedBuf::~AlignedBuf() { free(p); }

}  // namespace fsrace
