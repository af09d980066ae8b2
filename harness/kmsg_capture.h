// Captures the kernel log of one case from /dev/kmsg: a start marker is written into the log, a reader
// thread collects every record after it, and stop() writes an end marker and drains up to it.
#pragma once
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness/kmsg_scan.h"

namespace fsrace {

class KmsgCapture {
 public:
  explicit KmsgCapture(std::string tag);
  ~KmsgCapture();
  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }  // why nothing is captured
  // Ends the capture; returns the lines between the markers (markers excluded).
  std::vector<KmsgLine> stop();
  uint64_t lost() const { return lost_; }  // records overwritten before we read them

 private:
  void reader();
  void drain(bool until_end);
  std::string tag_;
  int fd_ = -1;
  std::string error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<KmsgLine> lines_;
  bool started_ = false, ended_ = false;
  uint64_t lost_ = 0;
};

}  // namespace fsrace
