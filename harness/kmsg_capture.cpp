#include "harness/kmsg_capture.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/core.h>

namespace fsrace {
namespace {
void write_marker(const std::string& text) {
  int w = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (w < 0) return;
  std::string m = "<5>" + text + "\n";
  (void)!write(w, m.data(), m.size());
  close(w);
}
}  // namespace

KmsgCapture::KmsgCapture(std::string tag) : tag_(std::move(tag)) {
  fd_ = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    error_ = fmt::format("/dev/kmsg: {}", strerror(errno));
    return;
  }
  lseek(fd_, 0, SEEK_END);
  write_marker(fmt::format("fsrace: start {}", tag_));
  thread_ = std::thread([this] { reader(); });
}

KmsgCapture::~KmsgCapture() {
  if (fd_ >= 0) {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
}

void KmsgCapture::drain(bool until_end) {
  char buf[8192];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    ssize_t n = read(fd_, buf, sizeof buf - 1);
    if (n < 0) {
      if (errno == EPIPE) {  // ring buffer overran our position
        std::lock_guard<std::mutex> g(mu_);
        ++lost_;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN && until_end) {
        {
          std::lock_guard<std::mutex> g(mu_);
          if (ended_) return;
        }
        if (std::chrono::steady_clock::now() > deadline) return;
        pollfd p{fd_, POLLIN, 0};
        poll(&p, 1, 50);
        continue;
      }
      return;
    }
    KmsgLine l;
    if (!parse_kmsg_record(std::string(buf, size_t(n)), &l)) continue;
    std::lock_guard<std::mutex> g(mu_);
    if (l.text == "fsrace: start " + tag_) {
      started_ = true;
      continue;
    }
    if (l.text == "fsrace: end " + tag_) {
      ended_ = true;
      if (until_end) return;
      continue;
    }
    if (started_ && !ended_) lines_.push_back(std::move(l));
  }
}

void KmsgCapture::reader() {
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    poll(&p, 1, 100);
    drain(false);
  }
}

std::vector<KmsgLine> KmsgCapture::stop() {
  if (fd_ < 0) return {};
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  write_marker(fmt::format("fsrace: end {}", tag_));
  drain(true);
  std::lock_guard<std::mutex> g(mu_);
  return lines_;
}

}  // namespace fsrace
