#include "workloads/uffd.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <vector>

#include "core/util.h"

namespace fsrace {
namespace {

int open_uffd(std::string* why) {
  int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    if (errno == ENOSYS) *why = "userfaultfd: not built into this kernel (CONFIG_USERFAULTFD)";
    else if (errno == EPERM)
      *why = "userfaultfd: not permitted (needs CAP_SYS_PTRACE or sysctl vm.unprivileged_userfaultfd=1)";
    else *why = fmt::format("userfaultfd: {}", strerror(errno));
    return -1;
  }
  uffdio_api api{};
  api.api = UFFD_API;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    *why = fmt::format("userfaultfd: UFFDIO_API: {}", strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string uffd_unavailable_reason() {
  std::string why;
  int fd = open_uffd(&why);
  if (fd >= 0) close(fd);
  return why;
}

UffdBuffer::UffdBuffer(size_t bytes) : size_((bytes + 4095) & ~size_t(4095)) {
  std::string why;
  uffd_ = open_uffd(&why);
  if (uffd_ < 0) throw Fatal(why);
  void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    close(uffd_);
    throw Fatal(fmt::format("userfaultfd buffer: mmap: {}", strerror(errno)));
  }
  base_ = static_cast<char*>(m);
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(base_);
  reg.range.len = size_;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0) {
    int e = errno;
    munmap(base_, size_);
    close(uffd_);
    throw Fatal(fmt::format("userfaultfd: UFFDIO_REGISTER: {}", strerror(e)));
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { handler(); });
}

UffdBuffer::~UffdBuffer() {
  finish();
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  thread_.join();
  close(stop_fd_);
  munmap(base_, size_);
  close(uffd_);
}

void UffdBuffer::arm(const void* content, size_t len, std::function<void()> during, double max_pause_ms) {
  finish();
  std::lock_guard<std::mutex> lk(mu_);   // the handler is between messages: nothing refills pages now
  madvise(base_, size_, MADV_DONTNEED);  // every page missing again: the next access faults
  content_ = content;
  len_ = len;
  during_ = std::move(during);
  max_pause_ms_ = max_pause_ms;
  fired_ = false;
  done_during_pause_ = false;
}

bool UffdBuffer::finish() {
  if (racer_.joinable()) racer_.join();
  return done_during_pause_.load();
}

void UffdBuffer::handler() {
  std::vector<char> zero(4096, 0);
  for (;;) {
    pollfd p[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    uffd_msg msg;
    ssize_t n = read(uffd_, &msg, sizeof msg);
    if (n != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) continue;
    std::lock_guard<std::mutex> lk(mu_);
    if (!fired_.exchange(true) && during_) {
      // The racing op runs while the I/O is parked, for at most max_pause_ms.
      racer_done_ = false;
      racer_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "fsr-uffd-racer");
        during_();
        racer_done_ = true;
      });
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(int64_t(max_pause_ms_ * 1000));
      while (!racer_done_.load() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      done_during_pause_ = racer_done_.load();
      // Resolve the fault; the racer (if still blocked, e.g. on a lock the parked I/O holds) finishes
      // afterwards and is joined by finish() on the I/O's thread.
      for (size_t off = 0; off < size_; off += 4096) {
        uffdio_copy cp{};
        cp.dst = reinterpret_cast<uint64_t>(base_) + off;
        cp.src = off < len_ && content_ ? reinterpret_cast<uint64_t>(static_cast<const char*>(content_) + off)
                                        : reinterpret_cast<uint64_t>(zero.data());
        cp.len = 4096;
        ioctl(uffd_, UFFDIO_COPY, &cp);
      }
      continue;
    }
    // Fill every page of the buffer at once (the content, then zeroes), which wakes the faulting thread.
    for (size_t off = 0; off < size_; off += 4096) {
      uffdio_copy cp{};
      cp.dst = reinterpret_cast<uint64_t>(base_) + off;
      cp.src = off < len_ && content_ ? reinterpret_cast<uint64_t>(static_cast<const char*>(content_) + off)
                                      : reinterpret_cast<uint64_t>(zero.data());
      cp.len = 4096;
      ioctl(uffd_, UFFDIO_COPY, &cp);  // EEXIST for a page already filled: fine
    }
  }
}

}  // namespace fsrace
