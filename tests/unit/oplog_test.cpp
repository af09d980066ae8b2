#include "core/oplog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <fmt/core.h>

#include "core/util.h"

using namespace fsrace;

namespace {
std::string tmp_path(const char* name) { return fmt::format("/tmp/fsrace-test-{}-{}", getpid(), name); }
}  // namespace

TEST(OpLog, RoundTripAcrossThreadsAndChunks) {
  std::string p = tmp_path("ops.bin");
  {
    OpLog log(p, {{"scenario", "x"}, {"files", {{{"name", "f0"}, {"file_id", 5}, {"blocks", 4}}}}});
    std::vector<std::thread> ts;
    for (uint32_t t = 1; t <= 3; ++t)
      ts.emplace_back([&, t] {
        ThreadLog& tl = log.thread(t);
        for (int i = 0; i < 20000; ++i) {  // > 1 chunk per thread
          uint64_t id = tl.new_id();
          tl.op(id, OpKind::kRead, 0, 0, 8192, 100 + i, 200 + i, 8192);
          BlockValue v;
          v.cls = BlockClass::kData;
          v.file_id = 5;
          v.block = 0;
          v.gen = id;
          tl.obs(0, v);
          v.block = 1;
          tl.obs(1, v);
        }
      });
    for (auto& t : ts) t.join();
    log.close();
  }
  OpLogData d = load_oplog(p);
  EXPECT_EQ(d.meta["scenario"], "x");
  ASSERT_EQ(d.ops.size(), 60000u);
  ASSERT_EQ(d.obs.size(), 60000u);  // blocks 0 and 1 of one write form one run
  for (size_t i = 0; i < d.ops.size(); ++i) {
    ASSERT_EQ(d.ops[i].nobs, 1u);
    const ObsRecord& o = d.obs[d.obs_begin[i]];
    EXPECT_EQ(o.gen, d.ops[i].id);
    EXPECT_EQ(o.count, 2u);
    EXPECT_EQ(obs_value(o, 1).block, 1u);
  }
  // Ids are unique and carry the thread.
  EXPECT_EQ(d.ops[0].id >> kOpIdThreadShift, uint64_t(d.ops[0].thread) + 1);
  unlink(p.c_str());
}

// The boot after a VM power cut appends its reads to the crashed boot's ops.bin, its clock moved past the old one's.
TEST(OpLog, AppendKeepsTheFirstLogAndShiftsTheNewOps) {
  std::string p = tmp_path("append.bin");
  {
    OpLog log(p, nlohmann::json{{"files", nlohmann::json::array({{{"name", "f0"}, {"file_id", 5}, {"blocks", 4}}})}});
    ThreadLog& tl = log.thread(0);
    tl.op(tl.new_id(), OpKind::kWrite, 0, 0, 4096, 100, 200, 4096);
    tl.op(tl.new_id(), OpKind::kPowerCut, 0, 0, 0, 300, 300, 0);
    log.close();
  }
  {
    OpLog log(p, OpLog::Append{1000});
    ThreadLog& tl = log.thread(999);
    tl.op(tl.new_id(), OpKind::kVerifyDisk, 0, 0, 4096, 5, 7, 4096);
    tl.obs(0, BlockValue{});
    log.close();
  }
  OpLogData d = load_oplog(p);
  ASSERT_EQ(d.ops.size(), 3u);
  EXPECT_EQ(d.meta["files"][0]["name"], "f0");  // one header, the first log's
  EXPECT_EQ(OpKind(d.ops[1].kind), OpKind::kPowerCut);
  EXPECT_EQ(OpKind(d.ops[2].kind), OpKind::kVerifyDisk);
  EXPECT_EQ(d.ops[2].start_ns, 1005u);
  EXPECT_EQ(d.ops[2].end_ns, 1007u);
  EXPECT_EQ(d.ops[2].thread, 999u);
  EXPECT_EQ(d.ops[2].nobs, 1u);
  // Appending to a log that is not there fails and creates nothing.
  std::string q = tmp_path("absent.bin");
  unlink(q.c_str());
  EXPECT_THROW(OpLog(q, OpLog::Append{0}), Fatal);
  EXPECT_NE(access(q.c_str(), F_OK), 0);
  unlink(p.c_str());
}

TEST(OpLog, RunsBreakOnAnyDifference) {
  std::string p = tmp_path("runs.bin");
  {
    OpLog log(p, nlohmann::json::object());
    ThreadLog& tl = log.thread(1);
    tl.op(tl.new_id(), OpKind::kRead, 0, 0, 6 * 4096, 1, 2, 6 * 4096);
    auto data = [](uint64_t block, uint64_t gen) {
      BlockValue v;
      v.cls = BlockClass::kData;
      v.file_id = 9;
      v.block = block;
      v.gen = gen;
      return v;
    };
    tl.obs(0, data(0, 7));
    tl.obs(1, data(1, 7));   // continues
    tl.obs(2, data(2, 8));   // other generation
    tl.obs(3, data(9, 8));   // misplaced stamp
    tl.obs(4, BlockValue{});  // zeroes
    tl.obs(5, BlockValue{});  // zero run continues
    log.close();
  }
  OpLogData d = load_oplog(p);
  unlink(p.c_str());
  ASSERT_EQ(d.obs.size(), 4u);
  EXPECT_EQ(d.obs[0].count, 2u);
  EXPECT_EQ(d.obs[1].count, 1u);
  EXPECT_EQ(obs_value(d.obs[2]).block, 9u);
  EXPECT_EQ(d.obs[3].count, 2u);
  EXPECT_EQ(obs_value(d.obs[3], 1).cls, BlockClass::kZero);
}

TEST(OpLog, DisabledWritesNothing) {
  std::string p = tmp_path("disabled.bin");
  {
    OpLog log(p, {}, false);
    log.thread(1).op(1, OpKind::kWrite, 0, 0, 4096, 1, 2, 4096);
    log.close();
  }
  EXPECT_FALSE(path_exists(p));
}

TEST(OpLog, DecoderRejectsMalformedInput) {
  std::string p = tmp_path("good.bin");
  {
    OpLog log(p, {{"a", 1}});
    log.thread(1).op(1, OpKind::kWrite, 0, 0, 4096, 1, 2, 4096);
    log.close();
  }
  std::string good = read_file(p);
  unlink(p.c_str());
  EXPECT_NO_THROW(decode_oplog(good, "good"));
  EXPECT_THROW(decode_oplog("", "x"), Fatal);
  EXPECT_THROW(decode_oplog("NOTMAGIC00000000", "x"), Fatal);
  EXPECT_THROW(decode_oplog(good.substr(0, good.size() - 1), "x"), Fatal);  // truncated op
  std::string badver = good;
  badver[8] = 9;
  EXPECT_THROW(decode_oplog(badver, "x"), Fatal);
  std::string badchunk = good;
  badchunk[good.size() - 64 - 16] ^= 1;  // chunk magic
  EXPECT_THROW(decode_oplog(badchunk, "x"), Fatal);
  try {
    decode_oplog(good.substr(0, good.size() - 1), "ops.bin");
    FAIL();
  } catch (const Fatal& e) {
    EXPECT_NE(std::string(e.what()).find("ops.bin: not a valid fsrace op log at byte"), std::string::npos) << e.what();
  }
}

// A range far beyond every test file is damage (found by the ops.bin fuzzer: a mutated length made the
// oracle walk millions of blocks); ranges a real run makes, shifts growing the file included, decode.
TEST(OpLog, DecoderRejectsRangesBeyondTheTestFiles) {
  std::string p = tmp_path("range.bin");
  auto write = [&](uint64_t off, uint64_t len) {
    OpLog log(p, {{"files", {{{"name", "f0"}, {"file_id", 5}, {"blocks", 64}}}}});
    ThreadLog& tl = log.thread(1);
    tl.op(tl.new_id(), OpKind::kPunch, 0, off, len, 100, 200, 0);
    log.close();
  };
  write(0, 64 * kBlockSize);
  EXPECT_EQ(load_oplog(p).ops.size(), 1u);
  write(200 * kBlockSize, 64 * kBlockSize);  // past the planned size, as after insert range
  EXPECT_EQ(load_oplog(p).ops.size(), 1u);
  write(0, uint64_t(1) << 40);
  try {
    load_oplog(p);
    FAIL() << "a 1 TiB punch was accepted";
  } catch (const Fatal& e) {
    EXPECT_NE(std::string(e.what()).find("beyond any test file"), std::string::npos) << e.what();
  }
  unlink(p.c_str());
}

// The header's file table feeds the oracle, space check and reports: a fractional, negative or huge
// number there is damage (found by the ops.bin fuzzer: blocks = 3.1e19 made the oracle's uint64
// conversion undefined), rejected with the file named.
TEST(OpLog, DecoderRejectsABadFileTable) {
  std::string p = tmp_path("files.bin");
  auto load_with = [&](nlohmann::json files) {
    { OpLog log(p, {{"files", files}}); log.close(); }
    return load_oplog(p);
  };
  EXPECT_EQ(load_with({{{"name", "f0"}, {"file_id", 0}, {"blocks", 64}}}).meta["files"].size(), 1u);
  for (const nlohmann::json& bad : {nlohmann::json({{{"name", "f0"}, {"file_id", 0}, {"blocks", 3.1e19}}}),
                                    nlohmann::json({{{"name", "f0"}, {"file_id", -1}, {"blocks", 4}}}),
                                    nlohmann::json({{{"name", 7}, {"file_id", 0}, {"blocks", 4}}}),
                                    nlohmann::json({{{"name", "f0"}, {"file_id", 0}}}),
                                    nlohmann::json({{{"name", "f0"}, {"file_id", 0}, {"blocks", uint64_t(1) << 40}}}),
                                    nlohmann::json("f0")}) {
    try {
      load_with(bad);
      FAIL() << "accepted " << bad.dump();
    } catch (const Fatal& e) {
      EXPECT_NE(std::string(e.what()).find("header"), std::string::npos) << e.what();
    }
  }
  unlink(p.c_str());
}
