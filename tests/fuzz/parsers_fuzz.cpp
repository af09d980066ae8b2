// libFuzzer targets for every parser of what fsrace reads back (built with ASan + UBSan, one binary per
// target, chosen by FUZZ_<TARGET>): any input is either accepted or rejected with fsrace's own error
// (Fatal, or a JSON exception turned into one by the caller); never a crash, a hang or undefined
// behaviour.
//   FUZZ_CAMPAIGN  campaign TOML: parse_campaign, the case matrix, campaign_to_toml and its re-parse
//   FUZZ_OPLOG     ops.bin: decode_oplog, then the oracle over whatever decoded
//   FUZZ_KMSG      kernel log: /dev/kmsg records and console text, then the kernel-log scanner
//   FUZZ_FINDINGS  findings.json as `fsrace report` reads it: parse, render_summary, exit_code_of
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/util.h"

#if defined(FUZZ_CAMPAIGN)
#include "core/campaign.h"
namespace {
const std::vector<fsrace::ScenarioSpec>& catalog() {
  using T = fsrace::ParamSpec::Type;
  static const std::vector<fsrace::ScenarioSpec> c = {
      {"punch-vs-fault", "", {{"file_blocks", T::kInt, 64, 8, 4096, ""}, {"kdelay_us", T::kDouble, 100, 1, 1000, ""}}},
      {"mixed", "", {{"ratio", T::kDouble, 0.5, 0, 1, ""}}}};
  return c;
}
}  // namespace
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    fsrace::Campaign c = fsrace::parse_campaign(text, "fuzz.toml", catalog());
    (void)fsrace::case_matrix(c);
    std::string again = fsrace::campaign_to_toml(c);
    fsrace::Campaign c2 = fsrace::parse_campaign(again, "resolved.toml", catalog());  // what a run writes, it must read
    if (fsrace::case_matrix(c2).size() != fsrace::case_matrix(c).size()) __builtin_trap();
  } catch (const fsrace::Fatal&) {
  }
  return 0;
}
#elif defined(FUZZ_OPLOG)
#include "core/oplog.h"
#include "harness/oracle.h"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string b(reinterpret_cast<const char*>(data), size);
  try {
    fsrace::OpLogData d = fsrace::decode_oplog(b, "fuzz");
    if (d.ops.size() > 20000) return 0;  // the oracle's cost grows with the ops; keep iterations fast
    fsrace::OracleContext ctx{"ext4", "punch-vs-fault", "fuzz"};
    (void)fsrace::run_oracle(d, ctx);
  } catch (const fsrace::Fatal&) {
  }
  return 0;
}
#elif defined(FUZZ_KMSG)
#include "harness/kmsg_scan.h"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  fsrace::KmsgLine rec;
  (void)fsrace::parse_kmsg_record(text, &rec);
  fsrace::KmsgScanOptions o;
  o.devices = {"loop3"};
  o.fs = "ext4";
  auto lines = fsrace::parse_log_text(text);
  auto r = fsrace::scan_kmsg(lines, o);
  (void)fsrace::escalate_notices(r.notices, fsrace::DataCorroboration{true, true}, o);
  for (const auto& l : lines) (void)fsrace::format_kmsg_line(l);
  return 0;
}
#elif defined(FUZZ_FINDINGS)
#include <nlohmann/json.hpp>

#include "harness/report.h"
#include "harness/results.h"
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto doc = nlohmann::json::parse(data, data + size, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return 0;
  try {  // as report_dir does
    (void)fsrace::render_summary(doc);
    (void)fsrace::exit_code_of(doc);
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
#else
#error "define one FUZZ_<TARGET>"
#endif
