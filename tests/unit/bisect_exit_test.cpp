// fsrace run --bisect-exit: a run's findings.json as a git-bisect-run exit code (harness/cli_bisect.cpp).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/util.h"
#include "harness/cli_bisect.h"

using namespace fsrace;
namespace fs = std::filesystem;

namespace {
struct TmpRun {
  fs::path dir;
  TmpRun() {
    char t[] = "/tmp/fsrace-bisect-exit.XXXXXX";
    dir = mkdtemp(t);
  }
  ~TmpRun() { fs::remove_all(dir); }
  std::string with(const std::string& status, const nlohmann::json& by) {
    std::ofstream(dir / "findings.json") << nlohmann::json{{"status", status}, {"findings_by_class", by}}.dump();
    return dir.string();
  }
};
}  // namespace

TEST(BisectExit, NoFindingIsGood) {
  TmpRun r;
  EXPECT_EQ(bisect_exit_code(r.with("complete", nlohmann::json::object()), 0, ""), 0);
  EXPECT_EQ(bisect_exit_code(r.with("complete", nlohmann::json::object()), 0, "stale"), 0);
}

TEST(BisectExit, AnyFindingIsBadWithoutClass) {
  TmpRun r;
  EXPECT_EQ(bisect_exit_code(r.with("complete", {{"stale-after-punch", 3}}), 1, ""), 1);
}

TEST(BisectExit, OnlyTheRequestedClassIsBad) {
  TmpRun r;
  EXPECT_EQ(bisect_exit_code(r.with("complete", {{"stale-after-punch", 3}, {"space-leak", 1}}), 1, "space-leak"), 1);
  // another bug showed: no verdict on this one
  EXPECT_EQ(bisect_exit_code(r.with("complete", {{"stale-after-punch", 3}}), 1, "space-leak"), 125);
}

TEST(BisectExit, ErrorsAndBootFailuresAreSkips) {
  TmpRun r;
  EXPECT_EQ(bisect_exit_code(r.with("error: boot-failed: QEMU exited (status 0) before the guest agent started", {}), 2, ""), 125);
  EXPECT_EQ(bisect_exit_code(r.with("error: vm-error: QEMU failed", {{"kernel-crash", 1}}), 2, ""), 125);
  EXPECT_EQ(bisect_exit_code(r.with("running", {}), 2, ""), 125);  // killed run
  EXPECT_EQ(bisect_exit_code((r.dir / "nosuch").string(), 2, ""), 125);
  EXPECT_EQ(bisect_exit_code("", 2, ""), 125);
  std::ofstream(r.dir / "findings.json") << "{not json";
  EXPECT_EQ(bisect_exit_code(r.dir.string(), 1, ""), 125);
}

TEST(BisectExit, InterruptedStaysInterrupted) {
  TmpRun r;
  EXPECT_EQ(bisect_exit_code(r.with("interrupted", {{"stale", 1}}), 130, ""), 130);
  EXPECT_EQ(bisect_exit_code(r.with("complete", {}), 130, ""), 130);
}

TEST(BisectExit, ClassCheck) {
  EXPECT_NO_THROW(check_bisect_class(""));
  EXPECT_NO_THROW(check_bisect_class("stale-after-punch"));
  EXPECT_THROW(check_bisect_class("no-such-class"), Fatal);
}
