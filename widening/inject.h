// Error injection during the race (kwiden override-return / fail-function): a share of the page-cache
// insertions on the test files (__filemap_add_folio, error-injectable since 6.0) fail with a chosen errno.
//  - override-return: a kprobe (probes/inject.bpf.c) filtered to the test inodes and the racing threads,
//    bpf_override_return; counts hits and injections.
//  - fail-function: the kernel's own injector (/sys/kernel/debug/fail_function) limited to the workload's
//    racing threads with task-filter + /proc/thread-self/make-it-fail (it cannot filter by inode; the
//    racing threads only touch test files). The kernel keeps no count of its injections.
// EEXIST is "another task inserted this folio first": every caller must retry or skip, so the data and
// every syscall result must stay exactly as without injection. ENOMEM may surface as -ENOMEM or a short
// read / write (the workload tolerates those while it runs), never as wrong data.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "probes/catalog.h"

namespace fsrace::widening {
using namespace ::fsrace::probes;  // kernel facts and attach machinery (probes/)



struct InjectOptions {
  std::string technique;  // "override-return" or "fail-function"
  int err = 17;           // errno to inject: EEXIST (17) or ENOMEM (12)
  double ratio = 0.02;    // share of the calls that fail, (0, 1]
  int filter_fd = -1;     // override-return: a ProbeSession's filter map; -1: own one (add_inode)
};

class InjectSession {
 public:
  // Arms the injection. Never throws for a kernel that lacks the technique: armed() is false and
  // error() says why (one line). Throws std::invalid_argument for an unknown technique or errno.
  InjectSession(const KernelInfo& k, InjectOptions opt);
  ~InjectSession();  // disarms (stop()) and restores the fail_function settings it changed
  InjectSession(const InjectSession&) = delete;
  InjectSession& operator=(const InjectSession&) = delete;

  bool armed() const { return armed_; }
  const std::string& error() const { return error_; }
  void add_inode(uint64_t st_dev, uint64_t ino);  // override-return with its own filter
  // Makes the calling thread a target: only the racing threads' insertions fail (fail-function:
  // make-it-fail; override-return: the program's task map). Thread-safe.
  void enlist_current_thread();
  void stop();
  // {"technique", "function", "errno", "ratio", "armed", "hits", "injected" | "error"} (results/README.md)
  nlohmann::json report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  InjectOptions opt_;
  bool armed_ = false, stopped_ = false;
  std::string error_;
  uint64_t hits_ = 0, injected_ = 0;
  uint32_t inodes_ = 0;
};

}  // namespace fsrace::widening
