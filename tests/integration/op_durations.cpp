// Prints the race-phase op durations of a case directory's ops.bin as JSON, per op kind: count,
// median and 90th percentile in nanoseconds (used by tests/integration/kdelay.sh to show that kernel
// delays in the punch path made the punches longer). Usage: op_durations CASE_DIR
#include <fmt/core.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/oplog.h"

using namespace fsrace;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: op_durations CASE_DIR\n";
    return 2;
  }
  OpLogData d;
  try {
    d = load_oplog(std::string(argv[1]) + "/ops.bin");
  } catch (const std::exception& e) {
    std::cerr << "op_durations: " << e.what() << "\n";
    return 2;
  }
  std::map<std::string, std::vector<uint64_t>> by_kind;
  for (const auto& o : d.ops) {
    OpKind k = OpKind(o.kind);
    if (k == OpKind::kInit || op_kind_quiescent(k) || k == OpKind::kStatBlocks || k == OpKind::kFsync) continue;
    by_kind[op_kind_name(k)].push_back(o.end_ns - o.start_ns);
  }
  nlohmann::json out = nlohmann::json::object();
  for (auto& [kind, v] : by_kind) {
    std::sort(v.begin(), v.end());
    out[kind] = {{"count", v.size()}, {"median_ns", v[v.size() / 2]}, {"p90_ns", v[v.size() * 9 / 10]}};
  }
  std::cout << out.dump() << "\n";
  return 0;
}
