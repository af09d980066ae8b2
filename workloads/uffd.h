// userfaultfd race-window widening: an I/O buffer backed by a userfaultfd region, so the kernel blocks
// in the middle of copying the buffer (copy_to_user of a read, get_user_pages of an O_DIRECT write) while
// a handler thread runs the racing op; then the handler fills the buffer and the I/O resumes. This turns
// "the punch happened while the read was between folio lookup and copy" from luck into a script.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <mutex>
#include <thread>

namespace fsrace {

// Why userfaultfd cannot be used here ("" when it can): needs the syscall, and kernel-mode faults
// (copy_from_user / GUP) need CAP_SYS_PTRACE or vm.unprivileged_userfaultfd = 1.
std::string uffd_unavailable_reason();

class UffdBuffer {
 public:
  explicit UffdBuffer(size_t bytes);  // throws Fatal with the reason
  ~UffdBuffer();
  UffdBuffer(const UffdBuffer&) = delete;
  UffdBuffer& operator=(const UffdBuffer&) = delete;
  char* data() const { return base_; }
  size_t size() const { return size_; }
  // Drops the pages so the next access faults. On that fault `during` starts on a racer thread; the
  // fault is held until it finishes or `max_pause_ms` passes (the racing op may need a lock the parked
  // I/O holds, e.g. XFS's IOLOCK during a buffered read), then the first `len` bytes are filled with
  // `content` (nullptr: zeroes) and the faulting thread resumes. Call finish() before the next arm().
  void arm(const void* content, size_t len, std::function<void()> during, double max_pause_ms = 20);
  // Waits for the racing op of the last arm(); true if it completed while the I/O was still parked.
  bool finish();
  // True once the armed fault happened.
  bool fired() const { return fired_.load(); }

 private:
  void handler();
  char* base_ = nullptr;
  size_t size_ = 0;
  int uffd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  // Held by the handler while it serves a fault message and by arm() while it re-arms: a message the
  // handler serves late (a second fault of the last op, queued while it was filling the buffer) must
  // not fill pages after arm() emptied them for the next op — the next op would then write the last
  // op's content, or zeroes after a parked read, instead of its own data.
  std::mutex mu_;
  const void* content_ = nullptr;
  size_t len_ = 0;
  std::function<void()> during_;
  std::atomic<bool> fired_{false};
  std::atomic<bool> done_during_pause_{false};
  std::atomic<bool> racer_done_{false};
  double max_pause_ms_ = 20;
  std::thread racer_;
};

}  // namespace fsrace
