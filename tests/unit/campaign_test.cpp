// Campaign validation: each bad input gives its exact error (file:line:col, key, allowed values).
#include "core/campaign.h"

#include <gtest/gtest.h>

#include "core/util.h"

#include "workloads/scenario.h"

using namespace fsrace;

namespace {
std::vector<ScenarioSpec> catalog() {
  using T = ParamSpec::Type;
  return {{"punch-vs-fault", "x", {{"threads", T::kInt, 2, 1, 64, ""}, {"ratio", T::kDouble, 0.5, 0, 1, ""}}},
          {"other", "y", {}}};
}
std::string err(const std::string& toml) {
  try {
    parse_campaign(toml, "c.toml", catalog());
  } catch (const Fatal& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(Campaign, DefaultsWhenEmpty) {
  Campaign c = parse_campaign("", "c.toml", catalog());
  EXPECT_EQ(c.name, "default");
  ASSERT_EQ(c.filesystems.size(), 2u);
  EXPECT_EQ(c.filesystems[0].type, "ext4");
  EXPECT_EQ(c.filesystems[1].type, "xfs");
  ASSERT_EQ(c.scenarios.size(), 1u);
  EXPECT_EQ(c.scenarios[0].name, "punch-vs-fault");
  EXPECT_EQ(c.scenarios[0].params.at("threads"), 2);
}

TEST(Campaign, FullFile) {
  Campaign c = parse_campaign(R"(
[campaign]
name = "soak-1"
seed = 42
duration_s = 2.5
repetitions = 3
quiesce_ms = 100
filesystems = ["xfs"]
scenarios = ["punch-vs-fault"]
[fs.xfs]
mkfs_options = ["-f", "-m", "reflink=1"]
mount_options = "noatime"
device_size_mib = 512
[scenario.punch-vs-fault]
threads = 8
ratio = 0.25
)", "c.toml", catalog());
  EXPECT_EQ(c.name, "soak-1");
  EXPECT_EQ(c.seed, 42u);
  EXPECT_DOUBLE_EQ(c.duration_s, 2.5);
  EXPECT_EQ(c.repetitions, 3u);
  EXPECT_DOUBLE_EQ(c.quiesce_ms, 100);
  ASSERT_EQ(c.filesystems.size(), 1u);
  EXPECT_EQ(c.filesystems[0].mkfs_options, (std::vector<std::string>{"-f", "-m", "reflink=1"}));
  EXPECT_EQ(c.filesystems[0].mount_options, "noatime");
  EXPECT_EQ(c.filesystems[0].device_size_mib, 512u);
  EXPECT_EQ(c.scenarios[0].params.at("threads"), 8);
  EXPECT_DOUBLE_EQ(c.scenarios[0].params.at("ratio"), 0.25);
}

TEST(Campaign, UnknownKeyNamesLineKeyAndAllowed) {
  EXPECT_EQ(err("[campaign]\nseed = 1\nduraton_s = 3\n"),
            "c.toml:3:1: unknown key 'duraton_s' in [campaign]; allowed: name, seed, duration_s, repetitions, quiesce_ms, widening, filesystems, scenarios");
}

TEST(Campaign, UnknownScenarioParam) {
  EXPECT_EQ(err("[scenario.punch-vs-fault]\nthreds = 3\n"),
            "c.toml:2:1: unknown key 'threds' in [scenario.punch-vs-fault]; allowed: threads, ratio, kdelay, kwiden");
}

TEST(Campaign, WrongType) {
  EXPECT_EQ(err("[campaign]\nseed = \"one\"\n"), "c.toml:2:8: 'seed' must be an integer");
  EXPECT_EQ(err("[scenario.punch-vs-fault]\nthreads = 2.5\n"), "c.toml:2:11: 'threads' must be an integer");
  EXPECT_EQ(err("[fs.ext4]\nmkfs_options = \"-q\"\n"), "c.toml:2:16: 'mkfs_options' must be an array of strings");
}

TEST(Campaign, OutOfRange) {
  EXPECT_EQ(err("[scenario.punch-vs-fault]\nthreads = 0\n"), "c.toml:2:11: 'threads' = 0 is out of range; allowed: 1 to 64");
  EXPECT_EQ(err("[scenario.punch-vs-fault]\nratio = 1.5\n"), "c.toml:2:9: 'ratio' = 1.5 is out of range; allowed: 0 to 1");
  EXPECT_EQ(err("[campaign]\nduration_s = 0\n"), "c.toml:2:14: 'duration_s' = 0 is out of range; allowed: 0.1 to 604800");
  EXPECT_EQ(err("[fs.xfs]\ndevice_size_mib = 100\n"),
            "c.toml:2:19: 'device_size_mib' = 100 is out of range; allowed: 300 to 1048576");
}

TEST(Campaign, UnknownFilesystemAndScenario) {
  EXPECT_EQ(err("[campaign]\nfilesystems = [\"btrfs\"]\n"),
            "c.toml:2:15: unknown filesystem 'btrfs' in 'filesystems'; allowed: ext4, xfs, ceph, ext4-dax, xfs-dax");
  EXPECT_EQ(err("[fs.btrfs]\n"), "c.toml:1:1: unknown filesystem [fs.btrfs]; allowed: ext4, xfs, ceph, ext4-dax, xfs-dax");
  EXPECT_EQ(err("[campaign]\nscenarios = [\"nope\"]\n"),
            "c.toml:2:13: unknown scenario 'nope' in 'scenarios'; allowed: punch-vs-fault, other");
  EXPECT_EQ(err("[scenario.nope]\n"), "c.toml:1:1: unknown scenario [scenario.nope]; allowed: punch-vs-fault, other");
}

TEST(Campaign, BadNameAndTopLevelKey) {
  EXPECT_EQ(err("[campaign]\nname = \"../x\"\n"),
            "c.toml:2:8: 'name' must be 1-64 characters of [A-Za-z0-9._-] (it names the results directory)");
  EXPECT_EQ(err("seed = 3\n"), "c.toml:1:1: unknown key 'seed' in the top level; allowed: campaign, fs, scenario, vm, probes");
}

TEST(Campaign, SyntaxError) {
  std::string e = err("[campaign\nseed = 1\n");
  EXPECT_EQ(e.rfind("c.toml:1:", 0), 0u) << e;
  EXPECT_NE(e.find("TOML syntax error"), std::string::npos) << e;
}

TEST(Campaign, MissingFile) {
  try {
    load_campaign("/nonexistent/x.toml", catalog());
    FAIL();
  } catch (const Fatal& e) {
    EXPECT_EQ(std::string(e.what()),
              "campaign file /nonexistent/x.toml does not exist: pass a TOML campaign (e.g. campaigns/default.toml)");
  }
}

TEST(Campaign, Overrides) {
  Campaign c = parse_campaign("[fs.xfs]\nmount_options = \"noatime\"\n", "c.toml", catalog());
  CampaignOverrides o;
  o.duration_s = 1.5;
  o.seed = 7;
  o.filesystems = {"xfs"};
  o.scenarios = {"other"};
  apply_overrides(c, o, catalog());
  EXPECT_DOUBLE_EQ(c.duration_s, 1.5);
  EXPECT_EQ(c.seed, 7u);
  ASSERT_EQ(c.filesystems.size(), 1u);
  EXPECT_EQ(c.filesystems[0].mount_options, "noatime");
  ASSERT_EQ(c.scenarios.size(), 1u);
  EXPECT_EQ(c.scenarios[0].name, "other");
  CampaignOverrides bad;
  bad.filesystems = {"zfs"};
  EXPECT_THROW(apply_overrides(c, bad, catalog()), Fatal);
  CampaignOverrides bad2;
  bad2.duration_s = -1;
  EXPECT_THROW(apply_overrides(c, bad2, catalog()), Fatal);
}

TEST(Campaign, ResolvedTomlRoundTrips) {
  Campaign c = parse_campaign("[campaign]\nseed = 9\n[scenario.punch-vs-fault]\nratio = 0.75\n", "c.toml", catalog());
  Campaign d = parse_campaign(campaign_to_toml(c), "resolved.toml", catalog());
  EXPECT_EQ(d.seed, 9u);
  EXPECT_DOUBLE_EQ(d.scenarios[0].params.at("ratio"), 0.75);
  EXPECT_EQ(d.filesystems.size(), 2u);
  EXPECT_EQ(d.filesystems[0].mkfs_options, c.filesystems[0].mkfs_options);
}

// [vm] (VM mode): defaults, full section, each bad input with its exact error, round trip.
TEST(CampaignVm, Defaults) {
  Campaign c = parse_campaign("", "c.toml", catalog());
  EXPECT_EQ(c.vm.cpus, 2);
  EXPECT_EQ(c.vm.memory_mib, 1024);
  EXPECT_DOUBLE_EQ(c.vm.hang_timeout_s, 120);
  EXPECT_DOUBLE_EQ(c.vm.boot_timeout_s, 300);
  EXPECT_EQ(c.vm.test_hook, "");
}

TEST(CampaignVm, FullSection) {
  Campaign c = parse_campaign("[vm]\ncpus = 4\nmemory_mib = 2048\nhang_timeout_s = 7.5\nboot_timeout_s = 60\ntest_hook = \"freeze\"\n",
                              "c.toml", catalog());
  EXPECT_EQ(c.vm.cpus, 4);
  EXPECT_EQ(c.vm.memory_mib, 2048);
  EXPECT_DOUBLE_EQ(c.vm.hang_timeout_s, 7.5);
  EXPECT_DOUBLE_EQ(c.vm.boot_timeout_s, 60);
  EXPECT_EQ(c.vm.test_hook, "freeze");
}

TEST(CampaignVm, BadInputs) {
  EXPECT_EQ(err("[vm]\nhang_timeout = 3\n"),
            "c.toml:2:1: unknown key 'hang_timeout' in [vm]; allowed: cpus, memory_mib, hang_timeout_s, boot_timeout_s, test_hook, "
            "power_cut, pmem");
  EXPECT_EQ(err("[vm]\npower_cut = 1\n"), "c.toml:2:13: power_cut must be true or false");
  EXPECT_EQ(err("[vm]\npmem = \"ram\"\n"), "c.toml:2:8: unknown pmem 'ram'; allowed: nvdimm, memmap");
  EXPECT_EQ(err("[vm]\npmem = \"memmap\"\npower_cut = true\n"),
            "c.toml:3:13: power_cut with pmem = \"memmap\": that pmem is guest RAM and does not survive the VM; use pmem = \"nvdimm\"");
  EXPECT_EQ(err("[vm]\nhang_timeout_s = 1\n"), "c.toml:2:18: 'hang_timeout_s' = 1 is out of range; allowed: 2 to 86400");
  EXPECT_EQ(err("[vm]\nhang_timeout_s = \"10\"\n"), "c.toml:2:18: 'hang_timeout_s' must be a number");
  EXPECT_EQ(err("[vm]\ncpus = 0\n"), "c.toml:2:8: 'cpus' = 0 is out of range; allowed: 1 to 64");
  EXPECT_EQ(err("[vm]\ncpus = 1.5\n"), "c.toml:2:8: 'cpus' must be an integer");
  EXPECT_EQ(err("[vm]\nmemory_mib = 64\n"), "c.toml:2:14: 'memory_mib' = 64 is out of range; allowed: 256 to 1048576");
  EXPECT_EQ(err("[vm]\nboot_timeout_s = 1\n"), "c.toml:2:18: 'boot_timeout_s' = 1 is out of range; allowed: 5 to 3600");
  EXPECT_EQ(err("[vm]\ntest_hook = \"oops\"\n"), "c.toml:2:13: unknown test_hook 'oops'; allowed: panic, freeze, isolation");
  EXPECT_EQ(err("vm = 3\n"), "c.toml:1:6: [vm] must be a table");
}

TEST(CampaignVm, PowerCutAndItsSelfCheckRoundTrip) {
  auto real = scenario_catalog();
  EXPECT_FALSE(parse_campaign("", "c.toml", real).vm.power_cut);
  // The power-cut self-check needs a power cut: dm-flakey or the VM's.
  try {
    parse_campaign("[scenario.punch-vs-fault]\npower_cut_selfcheck = 1\n", "c.toml", real);
    ADD_FAILURE() << "accepted";
  } catch (const Fatal& e) {
    EXPECT_STREQ(e.what(), "c.toml:2:23: 'power_cut_selfcheck' has no effect without kwiden = [\"dm-flakey\"] (or [vm] power_cut = "
                           "true) in [scenario.punch-vs-fault]");
  }
  Campaign c = parse_campaign("[vm]\npower_cut = true\n[scenario.punch-vs-fault]\npower_cut_selfcheck = 1\n", "c.toml", real);
  EXPECT_TRUE(c.vm.power_cut);
  // The resolved campaign the guest agent parses keeps both (the self-check is not dropped without dm-flakey).
  Campaign d = parse_campaign(campaign_to_toml(c), "resolved.toml", real);
  EXPECT_TRUE(d.vm.power_cut);
  ASSERT_FALSE(d.scenarios.empty());
  bool found = false;
  for (const auto& s : d.scenarios)
    if (s.name == "punch-vs-fault") found = s.i("power_cut_selfcheck") == 1;
  EXPECT_TRUE(found);
}

TEST(CampaignVm, ResolvedTomlRoundTrips) {
  Campaign c = parse_campaign("[vm]\ncpus = 1\nhang_timeout_s = 9\ntest_hook = \"panic\"\n", "c.toml", catalog());
  Campaign d = parse_campaign(campaign_to_toml(c), "resolved.toml", catalog());
  EXPECT_EQ(d.vm.cpus, 1);
  EXPECT_DOUBLE_EQ(d.vm.hang_timeout_s, 9);
  EXPECT_EQ(d.vm.test_hook, "panic");
  Campaign e = parse_campaign(campaign_to_toml(parse_campaign("", "c.toml", catalog())), "r.toml", catalog());
  EXPECT_EQ(e.vm.test_hook, "");
}

#include "workloads/scenario.h"

TEST(Campaign, ResolvedTomlOfEveryRealScenarioRoundTrips) {
  // What the runner writes as campaign.toml (and replay / the VM agent parse again): every scenario with
  // its defaults, with and without kernel delay points.
  std::string src = "[campaign]\nscenarios = [";
  for (const auto& s : scenario_catalog()) src += "\"" + s.name + "\", ";
  src += "]\n[scenario.punch-vs-read]\nkdelay = [\"punch-free\"]\nkdelay_us = 50\n";
  Campaign c = parse_campaign(src, "c.toml", scenario_catalog());
  Campaign d = parse_campaign(campaign_to_toml(c), "resolved.toml", scenario_catalog());
  ASSERT_EQ(d.scenarios.size(), c.scenarios.size());
  for (size_t i = 0; i < c.scenarios.size(); ++i) {
    EXPECT_EQ(d.scenarios[i].kdelay, c.scenarios[i].kdelay);
    for (const auto& [k, v] : c.scenarios[i].params) {
      if (c.scenarios[i].param_applies(k)) {
        EXPECT_DOUBLE_EQ(d.scenarios[i].params.at(k), v) << c.scenarios[i].name << " " << k;
      }
    }
  }
}

TEST(Campaign, SeedOptionRejectsWhatTheCampaignCannotHold) {
  // CLI11 alone took "-1" as 2^64 - 1 (then written as seed = -1, which replay refused).
  for (const char* bad : {"-1", "1.5", "abc", "", " 5", "+5", "0x10", "1e3", "9007199254740992", "18446744073709551615",
                          "99999999999999999999"}) {
    try {
      parse_seed_option(bad);
      ADD_FAILURE() << "accepted --seed '" << bad << "'";
    } catch (const Fatal& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("--seed ") + bad + ": must be a whole number from 0 to 9007199254740991 (2^53 - 1, as [campaign] seed)");
    }
  }
  EXPECT_EQ(parse_seed_option("0"), 0u);
  EXPECT_EQ(parse_seed_option("42"), 42u);
  EXPECT_EQ(parse_seed_option("007"), 7u);
  EXPECT_EQ(parse_seed_option("9007199254740991"), kMaxSeed);
}

TEST(Campaign, LargestSeedRoundTripsThroughCampaignToml) {
  Campaign c = parse_campaign("", "c.toml", catalog());
  CampaignOverrides o;
  o.seed = kMaxSeed;
  apply_overrides(c, o, catalog());
  std::string toml = campaign_to_toml(c);
  EXPECT_NE(toml.find("seed = 9007199254740991"), std::string::npos) << toml;
  EXPECT_EQ(parse_campaign(toml, "resolved.toml", catalog()).seed, kMaxSeed);
  o.seed = kMaxSeed + 1;  // programmatic callers (replay) hold the same range
  EXPECT_THROW(apply_overrides(c, o, catalog()), Fatal);
  EXPECT_EQ(err("[campaign]\nseed = -1\n"), "c.toml:2:8: 'seed' = -1 is out of range; allowed: 0 to 9007199254740991");
}

// ceph (a cluster filesystem): not in the default set, only mount_options in [fs.ceph], and the options
// fsrace sets itself (name, secret, ...) refused; the resolved campaign round-trips.
TEST(Campaign, Ceph) {
  Campaign d = parse_campaign("", "c.toml", catalog());
  for (const auto& f : d.filesystems) EXPECT_NE(f.type, "ceph");
  Campaign c = parse_campaign("[campaign]\nfilesystems = [\"ceph\"]\n[fs.ceph]\nmount_options = \"nowsync,fscache\"\n", "c.toml", catalog());
  ASSERT_EQ(c.filesystems.size(), 1u);
  EXPECT_EQ(c.filesystems[0].mount_options, "nowsync,fscache");
  Campaign back = parse_campaign(campaign_to_toml(c), "back.toml", catalog());
  EXPECT_EQ(back.filesystems[0].mount_options, "nowsync,fscache");
  EXPECT_NE(err("[campaign]\nfilesystems = [\"ceph\"]\n[fs.ceph]\nmkfs_options = [\"-q\"]\n").find("unknown key 'mkfs_options'"),
            std::string::npos);
  EXPECT_NE(err("[fs.ceph]\ndevice_size_mib = 100\n").find("device_size_mib"), std::string::npos);
  std::string e = err("[fs.ceph]\nmount_options = \"nowsync,secret=AQBx\"\n");
  EXPECT_NE(e.find("'secret' is set by fsrace"), std::string::npos) << e;
  EXPECT_NE(err("[fs.ceph]\nmount_options = \"nowsync,,wsync\"\n").find("empty option"), std::string::npos);
  EXPECT_NE(err("[fs.ceph]\nmount_options = \",\"\n").find("empty option"), std::string::npos);
  // No [fs.ceph]: no client options, and the resolved campaign (what a VM run hands the guest) still parses.
  Campaign plain = parse_campaign("[campaign]\nfilesystems = [\"ceph\"]\n", "c.toml", catalog());
  EXPECT_EQ(plain.filesystems[0].mount_options, "");
  Campaign plain_back = parse_campaign(campaign_to_toml(plain), "back.toml", catalog());
  EXPECT_EQ(plain_back.filesystems[0].mount_options, "");
}
