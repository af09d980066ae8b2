#include "harness/status.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fmt/core.h>
#include <iostream>

#include "core/util.h"

namespace fsrace {

namespace {
std::string clock_text(double s) {
  auto t = uint64_t(s < 0 ? 0 : s);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{:02}:{:02}", t / 60, t % 60);
}
std::string rate_text(double r) {
  return r >= 1e6 ? fmt::format("{:.1f}M", r / 1e6) : r >= 1e3 ? fmt::format("{:.0f}k", r / 1e3) : fmt::format("{:.0f}", r);
}
}  // namespace

bool StatusLine::stderr_is_terminal() {
  const char* term = std::getenv("TERM");
  if (std::getenv("FSRACE_PLAIN_PROGRESS")) return false;
  return isatty(2) && !(term && std::strcmp(term, "dumb") == 0);
}

StatusLine::StatusLine(size_t cases, double planned_s, bool quiet, double race_s)
    : quiet_(quiet), tty_(!quiet && stderr_is_terminal()), cases_(cases), planned_s_(planned_s), race_s_(race_s), t0_ns_(now_ns()) {
  if (!quiet_) thread_ = std::thread([this] { loop(); });
}

StatusLine::~StatusLine() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (tty_) {
    std::lock_guard<std::mutex> g(mu_);
    std::cerr << "\r\033[K" << render() << "\n" << std::flush;
  }
}

std::string StatusLine::render() {
  double el = double(now_ns() - t0_ns_) / 1e9;
  std::string f;
  for (const auto& [c, n] : findings_) f += fmt::format("{}{} {}", f.empty() ? "" : ", ", c, n);
  return fmt::format("[fsrace {} / ~{}] case {}/{} {} {}{}  findings: {}", clock_text(el), clock_text(planned_s_),
                     std::min(current_ + (case_.empty() ? 0 : 1), cases_), cases_, case_.empty() ? "-" : case_, phase_,
                     phase_ == "race" ? fmt::format("  {} ops/s", rate_text(rate_)) : "", f.empty() ? "none" : f);
}

void StatusLine::paint() {
  if (tty_) std::cerr << "\r\033[K" << render() << std::flush;
}

void StatusLine::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk, std::chrono::milliseconds(500));
    if (stop_) break;
    uint64_t ops = progress_counter().load(std::memory_order_relaxed), t = now_ns();
    if (last_ns_ && t > last_ns_) rate_ = 0.6 * rate_ + 0.4 * double(ops - last_ops_) * 1e9 / double(t - last_ns_);
    last_ops_ = ops, last_ns_ = t;
    if (tty_) paint();
    else if (phase_ == "race" && t - last_plain_ > 30000000000ull) {
      last_plain_ = t;
      std::cerr << fmt::format("fsrace: {}: racing, {:.0f} s in, {} ops/s\n", case_, double(t - race_t0_) / 1e9, rate_text(rate_));
    }
  }
}

void StatusLine::case_started(size_t index, const std::string& name) {
  if (quiet_) return;
  std::lock_guard<std::mutex> g(mu_);
  current_ = index, case_ = name, phase_ = "setup";
  if (tty_) paint();
  else std::cerr << fmt::format("fsrace: case {}/{}: {}\n", index + 1, cases_, name);
}

void StatusLine::phase(const std::string& name, const std::string& phase) {
  if (quiet_) return;
  std::lock_guard<std::mutex> g(mu_);
  if (phase == phase_ && name == case_) return;
  phase_ = phase;
  if (phase == "race") race_t0_ = last_plain_ = now_ns(), rate_ = 0;
  if (tty_) paint();
  else if (phase == "race") std::cerr << fmt::format("fsrace: {}: racing for {:g} s\n", name, race_s_);  // the guest's wording too
  else if (phase == "analysis") std::cerr << fmt::format("fsrace: {}: analysing\n", name);
}

void StatusLine::case_done(const std::string& name, const std::map<std::string, uint64_t>& findings) {
  if (quiet_) return;
  std::lock_guard<std::mutex> g(mu_);
  ++done_;
  uint64_t before = 0, after = 0;
  for (const auto& [c, n] : findings_) before += n;
  for (const auto& [c, n] : findings) after += n;
  findings_ = findings;
  phase_ = "done";
  if (tty_) {
    if (after > before) std::cerr << "\r\033[K" << fmt::format("fsrace: {}: {} finding(s)\n", name, after - before);
    paint();
  } else {
    std::cerr << fmt::format("fsrace: case {}/{} done: {}: {}\n", done_, cases_, name,
                             after > before ? fmt::format("{} finding(s)", after - before) : "no finding");
  }
}

void StatusLine::line(const std::string& text) {
  std::lock_guard<std::mutex> g(mu_);
  if (tty_) std::cerr << "\r\033[K";
  std::cerr << text << "\n";
  if (tty_) paint();
}

}  // namespace fsrace
