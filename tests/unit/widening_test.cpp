// Kernel-side widening: the delay point catalog (against the enum and the built BPF object), attach
// planning of the delay hooks on recorded and mocked kernels, the delay session's report where BPF is
// unusable, the technique detection's refusal reasons, and campaign validation of kdelay / kwiden.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/campaign.h"
#include "core/util.h"
#include "probes/catalog.h"
#include "widening/delay.h"
#include "probes/fsrace_events.h"
#include "probes/kernel_info.h"
#include "widening/techniques.h"
#include "widening/auto.h"
#include "tests/unit/mock_kernel.h"
#include "workloads/scenario.h"

using namespace fsrace;
using namespace fsrace::probes;
using namespace fsrace::widening;

namespace {

const DelayHook& hook(int id) { return delay_hooks().at(size_t(id)); }

AttachMode first_mode(const std::vector<Candidate>& c) {
  for (const auto& x : c)
    if (x.skip.empty()) return x.mode;
  return AttachMode::kNone;
}

std::vector<std::string> hook_names(const std::vector<const DelayHook*>& v) {
  std::vector<std::string> out;
  for (const auto* h : v) out.push_back(h->spec.name);
  return out;
}

std::string campaign_error(const std::string& toml) {
  try {
    parse_campaign(toml, "c.toml", scenario_catalog());
  } catch (const Fatal& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(DelayCatalog, HooksMatchEnumAndTheBuiltObject) {
  ASSERT_EQ(delay_hooks().size(), size_t(FSR_DH_COUNT));
  ASSERT_LE(delay_hooks().size(), size_t(FSR_DELAY_MAX_HOOKS));
  auto progs = delay_object_programs();
  std::set<std::string> in_object(progs.begin(), progs.end());
  ASSERT_FALSE(in_object.empty()) << "delay.bpf.o could not be opened";
  std::set<std::string> names;
  for (const auto& h : delay_hooks()) {
    EXPECT_TRUE(names.insert(h.spec.name).second) << h.spec.name;
    EXPECT_EQ(h.spec.family, "delay");
    // every hook says where it fires, and that no spinlock is held there (the busy-wait's precondition)
    EXPECT_NE(h.context.find("no spinlock held, interrupts enabled"), std::string::npos) << h.spec.name;
    for (AttachMode m : {AttachMode::kTpBtf, AttachMode::kRawTp, AttachMode::kTracepoint, AttachMode::kFentry, AttachMode::kKprobe}) {
      for (const auto& p : h.spec.programs(m)) {
        EXPECT_TRUE(in_object.count(p)) << p << " missing from delay.bpf.o";
      }
    }
    if (h.spec.tracepoint) {
      EXPECT_EQ(h.spec.programs(AttachMode::kTracepoint).size(), 1u) << h.spec.name;
    }
  }
  EXPECT_EQ(hook(FSR_DH_TRUNC_PC_EXIT).spec.programs(AttachMode::kFentry), std::vector<std::string>{"fexit__trunc_pc"});
  EXPECT_EQ(hook(FSR_DH_TRUNC_PC_EXIT).spec.programs(AttachMode::kKprobe),
            (std::vector<std::string>{"kprobe__trunc_pc", "kretprobe__trunc_pc"}));
  std::set<int> used;
  for (const auto& p : delay_points()) {
    EXPECT_FALSE(p.hooks.empty()) << p.name;
    EXPECT_FALSE(p.widens.empty()) << p.name;
    EXPECT_EQ(find_delay_point(p.name), &p);
    used.insert(p.hooks.begin(), p.hooks.end());
  }
  EXPECT_EQ(used.size(), delay_hooks().size()) << "a hook no point uses";
  EXPECT_EQ(find_delay_point("nope"), nullptr);
}

TEST(DelayCatalog, HooksPerFilesystem) {
  const DelayPoint& punch = *find_delay_point("punch-free");
  EXPECT_EQ(hook_names(delay_hooks_for(punch, "ext4")), std::vector<std::string>{"ext4:ext4_ext_remove_space"});
  EXPECT_EQ(hook_names(delay_hooks_for(punch, "xfs")), std::vector<std::string>{"xfs:xfs_free_file_space"});
  EXPECT_EQ(delay_hooks_for(punch, "").size(), 2u);
  EXPECT_TRUE(delay_hooks_for(*find_delay_point("xfs-wb-mapped"), "ext4").empty());
  EXPECT_EQ(hook_names(delay_hooks_for(*find_delay_point("fill-added"), "ext4")),
            std::vector<std::string>{"filemap:mm_filemap_add_to_page_cache"});
}

TEST(DelayPlan, RecordedKernels) {
  auto load = [](const char* name) {
    std::ifstream in(std::string(FSRACE_TEST_DATA) + "/kernels/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    return RecordedKernelInfo(nlohmann::json::parse(ss.str()));
  };
  auto k61 = load("debian-6.1.0-50-amd64.json");
  EXPECT_EQ(first_mode(plan_probe(hook(FSR_DH_FILL_ADDED).spec, k61)), AttachMode::kTpBtf);
  EXPECT_EQ(first_mode(plan_probe(hook(FSR_DH_TRUNC_PC_EXIT).spec, k61)), AttachMode::kFentry);
  std::map<AttachMode, std::string> no_fentry = {{AttachMode::kFentry, "refused"}};
  EXPECT_EQ(first_mode(plan_probe(hook(FSR_DH_TRUNC_PC_EXIT).spec, k61, no_fentry)), AttachMode::kKprobe);
  // this host: fentry refused at load (found at runtime), no kprobes: the function hook is unavailable
  auto k618 = load("host-6.18.44.json");
  auto c = plan_probe(hook(FSR_DH_TRUNC_PC_EXIT).spec, k618, no_fentry);
  EXPECT_EQ(first_mode(c), AttachMode::kNone);
  EXPECT_NE(summarize_reasons(c).find("kprobes not configured"), std::string::npos) << summarize_reasons(c);
}

TEST(DelayPlan, TracepointFallbackWithoutBtf) {
  MockKernelInfo k;
  k.btf = false;
  k.events = {"ext4:ext4_ext_remove_space"};
  auto c = plan_probe(hook(FSR_DH_EXT4_REMOVE_SPACE).spec, k);
  EXPECT_EQ(first_mode(c), AttachMode::kRawTp);
  k.tracefs = true;
  k.events.clear();
  EXPECT_EQ(summarize_reasons(plan_probe(hook(FSR_DH_EXT4_REMOVE_SPACE).spec, k)),
            "tp_btf: no kernel BTF (/sys/kernel/btf/vmlinux); raw_tp, tracepoint: tracepoint ext4:ext4_ext_remove_space not in this kernel");
}

TEST(DelaySession, BpfUnusableIsReportedPerPointNeverFaked) {
  MockKernelInfo k;
  k.bpf = "BPF needs root";
  DelaySession s(k, DelayOptions{{"punch-free", "xfs-wb-mapped"}, "ext4", 200, 0.5, -1});
  s.add_inode(0x803, 12);  // no filter map: ignored
  s.stop();
  EXPECT_EQ(s.attached(), 0u);
  EXPECT_EQ(s.setup_error(), "BPF needs root");
  auto r = s.report();
  EXPECT_EQ(r["delay_us"], 200.0);
  EXPECT_EQ(r["ratio"], 0.5);
  EXPECT_EQ(r["cap_us"], FSR_DELAY_MAX_US);
  const auto& punch = r["points"]["punch-free"];
  EXPECT_FALSE(punch["ran"].get<bool>());
  EXPECT_EQ(punch["delayed"], 0);
  EXPECT_EQ(punch["unavailable"], "ext4:ext4_ext_remove_space: BPF needs root");
  EXPECT_EQ(r["points"]["xfs-wb-mapped"]["unavailable"], "no hook of this point fires on ext4");
  EXPECT_THROW(DelaySession(k, DelayOptions{{"nope"}, "ext4", 100, 1, -1}), std::invalid_argument);
  EXPECT_THROW(DelaySession(k, DelayOptions{{"punch-free"}, "ext4", FSR_DELAY_MAX_US + 1, 1, -1}), std::invalid_argument);
  EXPECT_THROW(DelaySession(k, DelayOptions{{"punch-free"}, "ext4", 100, 1.5, -1}), std::invalid_argument);
}

TEST(KernelTechniques, ListedAndBpfReasonWins) {
  EXPECT_EQ(kernel_technique_names(), (std::vector<std::string>{"override-return", "fail-function", "dm-delay", "dm-flakey", "xfs-errortag"}));
  MockKernelInfo k;
  k.bpf = "BPF needs root";
  auto t = detect_technique("override-return", k);
  EXPECT_FALSE(t.available);
  EXPECT_EQ(t.detail, "BPF needs root");
  EXPECT_FALSE(detect_technique("nope", k).available);
}

// Error tags are set for the race and the old values come back, also when a later tag is missing.
TEST(XfsErrortags, SetThenRestoredAndAMissingTagIsNamed) {
  char tmpl[] = "/tmp/fsrace-errortag.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto put = [&](const std::string& tag, const std::string& v) { std::ofstream(dir + "/" + tag) << v; };
  auto get = [&](const std::string& tag) {
    std::ifstream f(dir + "/" + tag);
    int v = -1;
    f >> v;
    return v;
  };
  put("bmap_alloc_minlen_extent", "0\n");
  put("buf_lru_ref", "0\n");
  {
    XfsErrortags t(dir, {{"bmap_alloc_minlen_extent", 1}, {"buf_lru_ref", 7}});
    EXPECT_EQ(get("bmap_alloc_minlen_extent"), 1);
    EXPECT_EQ(get("buf_lru_ref"), 7);
    EXPECT_EQ(t.tags().at("buf_lru_ref"), 7);
  }
  EXPECT_EQ(get("bmap_alloc_minlen_extent"), 0);
  EXPECT_EQ(get("buf_lru_ref"), 0);
  try {
    XfsErrortags t(dir, {{"bmap_alloc_minlen_extent", 1}, {"no_such_tag", 1}});
    ADD_FAILURE() << "no error for a missing tag";
  } catch (const WideningError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/no_such_tag is not readable"), std::string::npos) << e.what();
  }
  EXPECT_EQ(get("bmap_alloc_minlen_extent"), 0);  // the tag set before the failure was put back
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(kernel_technique_driven("xfs-errortag"));
  EXPECT_TRUE(kernel_technique_driven("dm-flakey"));  // the power cut
}

TEST(CampaignKernelWidening, ValidatedLikeTheRest) {
  Campaign c = parse_campaign(R"([scenario.punch-vs-fault]
kdelay = ["punch-free", "fill-added"]
kdelay_us = 250
kdelay_ratio = 0.2
kwiden = ["dm-delay"]
)", "c.toml", scenario_catalog());
  ASSERT_EQ(c.scenarios.size(), 1u);
  EXPECT_EQ(c.scenarios[0].kdelay, (std::vector<std::string>{"punch-free", "fill-added"}));
  EXPECT_EQ(c.scenarios[0].kwiden, std::vector<std::string>{"dm-delay"});
  EXPECT_EQ(c.scenarios[0].d("kdelay_us"), 250);
  EXPECT_EQ(c.scenarios[0].d("kdelay_ratio"), 0.2);
  Campaign back = parse_campaign(campaign_to_toml(c), "r.toml", scenario_catalog());
  EXPECT_EQ(back.scenarios[0].kdelay, c.scenarios[0].kdelay);
  EXPECT_EQ(back.scenarios[0].kwiden, c.scenarios[0].kwiden);
  EXPECT_EQ(back.scenarios[0].d("kdelay_us"), 250);
  // off unless asked
  EXPECT_TRUE(parse_campaign("[scenario.punch-vs-fault]\n", "c.toml", scenario_catalog()).scenarios[0].kdelay.empty());

  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay = [\"punch-free\", \"bogus\"]\n"),
            "c.toml:2:10: unknown kernel delay point 'bogus' in 'kdelay'; allowed: punch-free, pagecache-dropped, fill-added, "
            "iomap-mapped, xfs-write-mapped, xfs-wb-mapped");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay = [\"fill-added\", \"fill-added\"]\n"),
            "c.toml:2:10: 'kdelay' lists 'fill-added' twice");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay = \"fill-added\"\n"), "c.toml:2:10: 'kdelay' must be an array of strings");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay = [\"fill-added\"]\nkdelay_us = 5000\n"),
            "c.toml:3:13: 'kdelay_us' = 5000 is out of range; allowed: 1 to 2000");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay = [\"fill-added\"]\nkdelay_ratio = 2\n"),
            "c.toml:3:16: 'kdelay_ratio' = 2 is out of range; allowed: 0 to 1");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelay_us = 50\n"),
            "c.toml:2:13: 'kdelay_us' has no effect without 'kdelay' (the delay points to arm) in [scenario.punch-vs-fault]");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"dm-slow\"]\n"),
            "c.toml:2:10: unknown kernel widening technique 'dm-slow' in 'kwiden'; allowed: override-return, fail-function, "
            "dm-delay, dm-flakey, xfs-errortag");
  // error injection and dm-delay parameters: only with their technique, one injector, errno EEXIST / ENOMEM
  Campaign inj = parse_campaign("[scenario.punch-vs-fault]\nkwiden = [\"fail-function\", \"dm-delay\"]\nkinject_errno = 12\n"
                                "kinject_ratio = 0.005\ndm_delay_ms = 7\n",
                                "c.toml", scenario_catalog());
  EXPECT_EQ(inj.scenarios[0].injection(), "fail-function");
  EXPECT_TRUE(inj.scenarios[0].widens("dm-delay"));
  Campaign inj2 = parse_campaign(campaign_to_toml(inj), "r.toml", scenario_catalog());
  for (const char* k : {"kinject_errno", "kinject_ratio", "dm_delay_ms"}) EXPECT_EQ(inj2.scenarios[0].d(k), inj.scenarios[0].d(k)) << k;
  EXPECT_EQ(inj2.scenarios[0].kwiden, inj.scenarios[0].kwiden);
  EXPECT_EQ(parse_campaign("[scenario.punch-vs-fault]\n", "c.toml", scenario_catalog()).scenarios[0].injection(), "");
  EXPECT_EQ(campaign_to_toml(parse_campaign("[scenario.punch-vs-fault]\n", "c.toml", scenario_catalog())).find("kinject"), std::string::npos);
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkinject_ratio = 0.5\n"),
            "c.toml:2:17: 'kinject_ratio' has no effect without kwiden = [\"override-return\"] or [\"fail-function\"] in "
            "[scenario.punch-vs-fault]");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"override-return\"]\ndm_delay_ms = 5\n"),
            "c.toml:3:15: 'dm_delay_ms' has no effect without kwiden = [\"dm-delay\"] in [scenario.punch-vs-fault]");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"dm-delay\"]\nxfs_minlen_alloc = 2\n"),
            "c.toml:3:20: 'xfs_minlen_alloc' has no effect without kwiden = [\"xfs-errortag\"] in [scenario.punch-vs-fault]");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"dm-delay\"]\npower_cut_selfcheck = 1\n"),
            "c.toml:3:23: 'power_cut_selfcheck' has no effect without kwiden = [\"dm-flakey\"] (or [vm] power_cut = true) in [scenario.punch-vs-fault]");
  EXPECT_EQ(parse_campaign("[scenario.mixed]\nkwiden = [\"dm-flakey\", \"dm-delay\"]\npower_cut_selfcheck = 1\n", "c.toml", scenario_catalog())
                .scenarios[0].i("power_cut_selfcheck"), 1);
  EXPECT_EQ(parse_campaign("[scenario.mixed]\nkwiden = [\"dm-flakey\"]\n", "c.toml", scenario_catalog()).scenarios[0].i("power_cut_selfcheck"), 0);
  EXPECT_EQ(parse_campaign("[scenario.writeback-vs-write]\nkwiden = [\"xfs-errortag\"]\nxfs_minlen_alloc = 3\n", "c.toml", scenario_catalog())
                .scenarios[0].i("xfs_minlen_alloc"), 3);
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"override-return\", \"fail-function\"]\n"),
            "c.toml:2:10: 'kwiden' lists both override-return and fail-function in [scenario.punch-vs-fault]: both inject at "
            "__filemap_add_folio; pick one");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkwiden = [\"override-return\"]\nkinject_errno = 13\n"),
            "c.toml:3:17: 'kinject_errno' = 13 is not supported; allowed: 17 (EEXIST) or 12 (ENOMEM)");
  EXPECT_EQ(campaign_error("[scenario.punch-vs-fault]\nkdelays = []\n").rfind("c.toml:2:1: unknown key 'kdelays' in [scenario.punch-vs-fault]; allowed: ", 0), 0u);
}

// Every campaign shipped in campaigns/ parses against the real scenario catalog; the power-cut one
// ends every scenario in a cut and keeps mixed's shifts off (they would make everything durable).
TEST(ShippedCampaigns, AllParseAndPowerCutCutsEveryScenario) {
  std::filesystem::path dir = std::filesystem::path(FSRACE_TEST_DATA) / ".." / ".." / "campaigns";
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    ++n;
    EXPECT_NO_THROW(load_campaign(e.path().string(), scenario_catalog())) << e.path();
  }
  EXPECT_GE(n, 6u);
  Campaign pc = load_campaign((dir / "power-cut.toml").string(), scenario_catalog());
  ASSERT_EQ(pc.scenarios.size(), 4u);
  for (const auto& s : pc.scenarios) EXPECT_TRUE(s.widens("dm-flakey")) << s.name;
  for (const auto& s : pc.scenarios) {
    if (s.name == "mixed") {
      EXPECT_EQ(s.d("shift_ratio"), 0);
    }
  }
}

// ---- [campaign] widening = "auto" (widening/auto.h) ----

namespace {
// Caps with every delay point and technique available, then knocked out by the test.
AutoCaps all_available(const std::string& fs) {
  AutoCaps c;
  for (const auto& p : delay_points()) c.point_reason[p.name] = delay_hooks_for(p, fs).empty() ? "no hook fires" : "";
  for (const auto& t : kernel_technique_names()) c.technique_reason[t] = "";
  return c;
}
bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

TEST(AutoWidening, RelevantPointsFollowScenarioAndFilesystem) {
  auto r = auto_relevant("punch-vs-fault", "ext4", 0);
  EXPECT_EQ(r.points, (std::vector<std::string>{"punch-free", "pagecache-dropped", "fill-added"}));
  EXPECT_EQ(r.techniques, (std::vector<std::string>{"override-return", "fail-function"}));
  // XFS-only points and techniques never on ext4
  auto wb4 = auto_relevant("writeback-vs-write", "ext4", 1);
  EXPECT_FALSE(has(wb4.points, "xfs-wb-mapped"));
  EXPECT_FALSE(has(wb4.points, "xfs-write-mapped"));
  EXPECT_TRUE(has(wb4.points, "iomap-mapped"));
  EXPECT_FALSE(has(wb4.techniques, "xfs-errortag"));
  auto wbx = auto_relevant("writeback-vs-write", "xfs", 0);
  EXPECT_TRUE(has(wbx.points, "xfs-wb-mapped"));
  EXPECT_TRUE(has(wbx.points, "xfs-write-mapped"));
  EXPECT_TRUE(has(wbx.techniques, "xfs-errortag"));
  // dm-delay only on odd variants; dm-flakey (the power cut) never
  EXPECT_FALSE(has(wbx.techniques, "dm-delay"));
  EXPECT_TRUE(has(auto_relevant("writeback-vs-write", "xfs", 1).techniques, "dm-delay"));
  for (const auto& sc : scenario_catalog())
    for (const char* fs : {"ext4", "xfs"})
      for (uint64_t v = 0; v < 4; ++v) {
        auto x = auto_relevant(sc.name, fs, v);
        EXPECT_FALSE(has(x.techniques, "dm-flakey")) << sc.name;
        EXPECT_FALSE(x.points.empty()) << sc.name << " on " << fs << ": auto widening must arm something there";
        for (const auto& p : x.points) EXPECT_FALSE(delay_hooks_for(*find_delay_point(p), fs).empty()) << p << " on " << fs;
      }
  // a scenario not in the table (mixed, or one added later) gets every point that fires on the filesystem
  auto mixed = auto_relevant("mixed", "xfs", 0);
  EXPECT_EQ(mixed.points.size(), delay_points().size());
  EXPECT_LT(auto_relevant("mixed", "ext4", 0).points.size(), delay_points().size());
}

TEST(AutoWidening, ArmsWhatTheKernelHasAndReportsTheRestUnavailable) {
  // a guest like Debian 6.1: everything there
  auto c = choose_auto_widening(all_available("xfs"), "writeback-vs-write", "xfs", 0);
  EXPECT_EQ(c.kdelay, (std::vector<std::string>{"xfs-wb-mapped", "xfs-write-mapped", "iomap-mapped", "punch-free"}));
  EXPECT_EQ(c.kwiden, (std::vector<std::string>{"xfs-errortag"}));
  EXPECT_TRUE(c.unavailable.empty());
  EXPECT_EQ(c.profile.delay_us, 300);
  EXPECT_DOUBLE_EQ(c.profile.ratio, 0.3);
  // no BPF delays at all: no point armed, each relevant one unavailable with the reason; techniques unaffected
  AutoCaps nobpf = all_available("xfs");
  nobpf.delays_unavailable = "not root";
  nobpf.technique_reason["xfs-errortag"] = "CONFIG_XFS_DEBUG is not set";
  auto n = choose_auto_widening(nobpf, "writeback-vs-write", "xfs", 0);
  EXPECT_TRUE(n.kdelay.empty());
  EXPECT_TRUE(n.kwiden.empty());
  EXPECT_EQ(n.unavailable.at("xfs-wb-mapped"), "not root");
  EXPECT_EQ(n.unavailable.at("xfs-errortag"), "CONFIG_XFS_DEBUG is not set");
  // a host without kprobes / fentry: the function hook's point is unavailable, the tracepoint points arm
  AutoCaps host = all_available("ext4");
  host.point_reason["pagecache-dropped"] = "fexit: no fentry; kprobe: kprobes not configured";
  host.technique_reason["override-return"] = "kprobes not configured";
  auto h = choose_auto_widening(host, "punch-vs-fault", "ext4", 0);
  EXPECT_EQ(h.kdelay, (std::vector<std::string>{"punch-free", "fill-added"}));
  EXPECT_EQ(h.unavailable.at("pagecache-dropped"), "fexit: no fentry; kprobe: kprobes not configured");
  // one injection technique at most: override-return first, fail-function when it is missing
  EXPECT_EQ(h.kwiden, (std::vector<std::string>{"fail-function"}));
  EXPECT_EQ(h.unavailable.at("override-return"), "kprobes not configured");
  EXPECT_EQ(choose_auto_widening(all_available("ext4"), "punch-vs-fault", "ext4", 0).kwiden,
            (std::vector<std::string>{"override-return"}));
  // a point nobody detected is not armed
  AutoCaps none;
  auto z = choose_auto_widening(none, "dio-vs-mmap", "ext4", 0);
  EXPECT_TRUE(z.kdelay.empty());
  EXPECT_EQ(z.unavailable.at("iomap-mapped"), "not detected");
}

TEST(AutoWidening, ProfilesRotateWithTheVariantAndExplicitWidensWin) {
  const auto& prof = auto_delay_profiles();
  ASSERT_GE(prof.size(), 2u);
  for (uint64_t v = 0; v < 2 * prof.size(); ++v) {
    auto c = choose_auto_widening(all_available("xfs"), "dio-vs-buffered", "xfs", v);
    EXPECT_EQ(c.profile.delay_us, prof[v % prof.size()].delay_us);
    EXPECT_LE(c.profile.delay_us, FSR_DELAY_MAX_US);
    EXPECT_EQ(has(c.kwiden, "dm-delay"), v % 2 == 1);
    auto again = choose_auto_widening(all_available("xfs"), "dio-vs-buffered", "xfs", v);
    EXPECT_EQ(again.kdelay, c.kdelay);  // deterministic
  }
  Campaign plain = parse_campaign("[campaign]\nwidening = \"auto\"\nscenarios = [\"punch-vs-fault\"]\n", "c.toml", scenario_catalog());
  EXPECT_EQ(plain.widening, "auto");
  auto choice = choose_auto_widening(all_available("xfs"), "punch-vs-fault", "xfs", 1);
  ScenarioConfig w = apply_auto_widening(plain.scenarios[0], choice);
  EXPECT_EQ(w.kdelay, choice.kdelay);
  EXPECT_EQ(w.d("kdelay_us"), choice.profile.delay_us);
  EXPECT_EQ(w.d("kdelay_ratio"), choice.profile.ratio);
  EXPECT_TRUE(w.param_applies("kdelay_us"));
  // the record names what ran and what could not
  auto j = auto_widening_json(choice);
  EXPECT_EQ(j["armed"]["kdelay"], choice.kdelay);
  EXPECT_EQ(j["armed"]["kdelay_us"], choice.profile.delay_us);
  EXPECT_NE(auto_widening_note(choice).find("armed kdelay punch-free"), std::string::npos) << auto_widening_note(choice);
  // a scenario with its own kdelay keeps it
  Campaign own = parse_campaign("[campaign]\nwidening = \"auto\"\n[scenario.punch-vs-fault]\nkdelay = [\"fill-added\"]\n", "c.toml",
                                scenario_catalog());
  EXPECT_TRUE(explicit_widening(own.scenarios[0]));
  EXPECT_EQ(apply_auto_widening(own.scenarios[0], choice).kdelay, std::vector<std::string>{"fill-added"});
  // round trip through the resolved campaign.toml (the guest reads it), and bad values are refused
  EXPECT_EQ(parse_campaign(campaign_to_toml(plain), "r.toml", scenario_catalog()).widening, "auto");
  EXPECT_EQ(parse_campaign("[campaign]\n", "c.toml", scenario_catalog()).widening, "off");
  EXPECT_NE(campaign_error("[campaign]\nwidening = \"on\"\n").find("unknown widening 'on'; allowed: off, auto"), std::string::npos)
      << campaign_error("[campaign]\nwidening = \"on\"\n");
  EXPECT_NE(campaign_error("[campaign]\nwidening = 1\n").find("'widening' must be a string"), std::string::npos);
}

TEST(AutoWidening, DetectedCapsSayWhyOnAKernelWithoutBpf) {
  MockKernelInfo k;
  k.bpf = "not root";
  AutoCaps c = detect_auto_caps(k, "ext4");
  EXPECT_NE(c.delays_unavailable.find("not root"), std::string::npos);
  EXPECT_FALSE(c.point_reason.count("xfs-wb-mapped") && c.point_reason["xfs-wb-mapped"].empty());
  EXPECT_FALSE(c.technique_reason.count("dm-flakey"));
  EXPECT_FALSE(c.technique_reason.count("xfs-errortag"));  // ext4
  auto ch = choose_auto_widening(c, "punch-vs-fault", "ext4", 0);
  EXPECT_TRUE(ch.kdelay.empty());
  for (const auto& p : ch.relevant.points) EXPECT_NE(ch.unavailable.at(p).find("not root"), std::string::npos) << p;
  EXPECT_TRUE(ch.unavailable.count("override-return"));  // a kprobe needs BPF too
}
