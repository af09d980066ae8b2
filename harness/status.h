// The campaign's progress on the terminal: on a terminal one live status line (elapsed / planned time,
// cases done / total, the current case and phase, ops/s of the race, findings so far by class),
// repainted twice a second; otherwise one plain line per event (case start, phase, case end) and a
// line every 30 s while a case races. Silent when quiet.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace fsrace {

class StatusLine {
 public:
  // tty: draw the live line (isatty(2) and TERM is not "dumb", unless FSRACE_PLAIN_PROGRESS is set).
  StatusLine(size_t cases, double planned_s, bool quiet, double race_s = 0);
  ~StatusLine();
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;

  void case_started(size_t index, const std::string& name);
  void phase(const std::string& name, const std::string& phase);
  void case_done(const std::string& name, const std::map<std::string, uint64_t>& findings_so_far);
  // Prints a line above the status (notes, warnings) without tearing it.
  void line(const std::string& text);
  bool live() const { return tty_; }
  static bool stderr_is_terminal();

 private:
  void loop();
  std::string render();  // holds mu_
  void paint();          // holds mu_

  bool quiet_, tty_;
  size_t cases_, done_ = 0, current_ = 0;
  double planned_s_, race_s_;
  std::string case_, phase_;
  std::map<std::string, uint64_t> findings_;
  uint64_t t0_ns_, last_ops_ = 0, last_ns_ = 0, race_t0_ = 0, last_plain_ = 0;
  double rate_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace fsrace
