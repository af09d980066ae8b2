// Campaign files (TOML): which filesystems, which scenarios with which parameters, how long, which seed.
// Every field is validated; an error names the file, line, key and the allowed values.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fsrace {

struct ParamSpec {
  enum class Type { kInt, kDouble };
  std::string name;
  Type type = Type::kInt;
  double def = 0, min = 0, max = 0;
  std::string help;
};

// What the campaign parser needs to know about a scenario (the registry in workloads/ provides it).
struct ScenarioSpec {
  std::string name;
  std::string summary;
  std::vector<ParamSpec> params;
  // The filesystem backings (fs_backing_name: "block-device", "pmem", "cluster") it runs on; empty: all.
  // The case matrix leaves out the pairs that do not fit.
  std::vector<std::string> backings;
  // > 0: the scenario reads its O_DIRECT source from a scratch block device of this many MiB beside the
  // filesystem under test (ScenarioEnv::staging_dev), which the runner makes (a loop device, under a
  // dm-delay read delay of the scenario's pin_delay_ms) and removes with the case.
  uint64_t staging_mib = 0;
};

struct FsConfig {
  std::string type;  // ext4 | xfs
  std::vector<std::string> mkfs_options;
  std::string mount_options;
  uint64_t device_size_mib = 256;
};

struct ScenarioConfig {
  std::string name;
  std::map<std::string, double> params;  // every param of the spec, defaults filled in
  std::vector<std::string> backings;     // from the spec: where it runs (empty: every filesystem)
  // Kernel-side widening (widening/delay.h, widening/techniques.h): BPF delay points to arm during the race
  // (their length and probability: params kdelay_us, kdelay_ratio), and the other techniques
  // (override-return / fail-function: params kinject_errno, kinject_ratio; dm-delay: dm_delay_ms;
  // xfs-errortag: xfs_minlen_alloc; dm-flakey: a power cut after the race, power_cut_selfcheck). Empty: off.
  std::vector<std::string> kdelay;
  std::vector<std::string> kwiden;
  int64_t i(const std::string& k) const { return int64_t(params.at(k)); }
  double d(const std::string& k) const { return params.at(k); }
  bool widens(const std::string& technique) const;
  bool runs_on(const std::string& fs_name) const;
  // The error-injection technique in kwiden ("" = none; the parser allows one at most).
  std::string injection() const;
  // Whether parameter `key` has an effect with this config; when not, `needs` names what it needs.
  bool param_applies(const std::string& key, std::string* needs = nullptr) const;
};

// [vm]: how VM mode (./fsrace run --kernel K) boots the guest and watches it. Host mode ignores it.
struct VmConfig {
  int64_t cpus = 2;
  int64_t memory_mib = 1024;
  double hang_timeout_s = 120;  // no workload progress for this long -> `hang` finding
  double boot_timeout_s = 300;  // QEMU start -> agent start, else `boot-failed` (TCG is slow)
  // A real power cut after every case's race: the guest records it, the host SIGKILLs QEMU, boots the VM
  // again on the same disk images / NVDIMM backing files, mounts (journal replay), reads every block
  // (judged by what completed fsyncs / msyncs made durable) and runs fsck. Not for cluster filesystems.
  bool power_cut = false;
  // How DAX filesystems get persistent memory: "nvdimm" (QEMU NVDIMMs on host files: they survive the VM)
  // or "memmap" (the memmap= legacy region, guest RAM given to the pmem driver: lost with the VM, so not
  // with power_cut). VM mode falls back to memmap by itself when QEMU has no nvdimm device, and says so.
  std::string pmem = "nvdimm";
  std::string test_hook;        // TEST ONLY, guest only: "panic" (sysrq-c mid-race), "freeze" (FIFREEZE mid-race),
                                // "isolation" (tries what a hostile guest would on the host shares; writes
                                // isolation-probe.json into its result share)
};
inline const std::vector<std::string>& vm_test_hooks() {
  static const std::vector<std::string> v = {"panic", "freeze", "isolation"};
  return v;
}
// [probes] (issue 3): eBPF probes per case. A probe missing on the running kernel is reported, never
// fatal, unless it is listed in `required`.
struct ProbesConfig {
  bool enabled = true;
  std::vector<std::string> required;  // probe names as `fsrace probes` lists them
  std::vector<std::string> exclude;   // probes not to load (less overhead, or a probe misbehaving on a kernel)
  uint64_t ringbuf_mib = 16;          // power of two, 1..1024
  // Kernel run-time statistics of the BPF programs (bpf_enable_stats) for the report's probe CPU share.
  // They cost two clock reads per program run; off only to measure what the probes cost without them.
  bool cpu_stats = true;
  // Benchmark only (bench/probes_overhead.sh): during the race, detach every probe for toggle_ms, attach
  // them again for toggle_ms, and so on; the case reports ops/s and ops per CPU-second in the attached
  // and the detached stretches (probes.toggle). Events of the detached stretches are missing, so runs
  // with it are not for finding bugs. 0: off.
  uint64_t toggle_ms = 0;
  // Read mapping->invalidate_lock's state (count, owner) at every page-cache event of a test file: what
  // lets the analyzer say a folio entered the cache while the lock was held exclusively. false saves a
  // read of a hot lock word per event.
  bool lock_snapshot = true;
};

struct Campaign {
  std::string name = "default";
  std::string source;  // file it came from
  uint64_t seed = 1;
  double duration_s = 5;
  uint64_t repetitions = 1;
  double quiesce_ms = 250;  // quiescent coherence/space checks during the race (0: off)
  // Kernel-side widening of the scenarios that name no kdelay / kwiden: "off", or "auto" = per case the
  // relevant techniques the kernel supports (widening/auto.h).
  std::string widening = "off";
  std::vector<FsConfig> filesystems;
  std::vector<ScenarioConfig> scenarios;
  VmConfig vm;
  ProbesConfig probes;
};

inline const std::vector<std::string>& campaign_widening_modes() {
  static const std::vector<std::string> v = {"off", "auto"};
  return v;
}

// Known filesystem types and their default mkfs / mount options.
const std::vector<std::string>& known_filesystems();
FsConfig default_fs_config(const std::string& type);

// Parses and validates; throws Fatal("<path>:<line>:<col>: ...") on any problem.
Campaign parse_campaign(const std::string& text, const std::string& path, const std::vector<ScenarioSpec>& catalog);
Campaign load_campaign(const std::string& path, const std::vector<ScenarioSpec>& catalog);

// Seeds are 0 .. 2^53 - 1, in a campaign file and on the command line alike: every seed then round-trips
// through campaign.toml (TOML integers are signed 64-bit) and findings.json (exact as a JSON double).
inline constexpr uint64_t kMaxSeed = 9007199254740991ull;
// --seed TEXT: a decimal integer 0..kMaxSeed, else Fatal naming the value and the allowed range.
uint64_t parse_seed_option(const std::string& text);

struct CampaignOverrides {
  std::optional<double> duration_s;
  std::optional<uint64_t> seed;  // at most kMaxSeed
  std::vector<std::string> filesystems;  // empty: as in the campaign
  std::vector<std::string> scenarios;
};
// Applies command-line overrides; throws Fatal naming the option and the allowed values.
void apply_overrides(Campaign& c, const CampaignOverrides& o, const std::vector<ScenarioSpec>& catalog);

// One case of the matrix: filesystem x scenario x repetition, its name (the case directory) and seed.
struct CaseSpec {
  FsConfig fs;
  ScenarioConfig sc;
  uint64_t rep = 0;
  std::string name;  // "<fs>-<scenario>", "-r<rep>" appended when the campaign repeats
  uint64_t seed = 0;
  std::string widening;  // this case's [campaign] widening mode ("" = the campaign's): fsrace explore varies it
};
// The case matrix in run order (repetition, filesystem, scenario); the only place case names are made.
std::vector<CaseSpec> case_matrix(const Campaign& c);
// Fatal (exit 2) when a scenario of the campaign runs on none of its filesystems (a DAX-only scenario
// with ext4 alone): the matrix would silently drop it. apply_overrides calls it.
void check_matrix_fits(const Campaign& c);

// A deterministic 1/N of the case matrix: shard I of N (1-based) runs the cases at positions p with
// p % N == I - 1, the same split on every machine. total == 0: the whole matrix.
struct Shard {
  uint64_t index = 0, total = 0;
  bool active() const { return total > 0; }
};
// "I/N" (1 <= I <= N <= 100000); Fatal (exit 2) naming the text and the form otherwise.
Shard parse_shard(const std::string& text);
// The scheduler's own variables, when no --shard was given: GitLab CI's CI_NODE_INDEX / CI_NODE_TOTAL
// (1-based), a Kubernetes Indexed Job's JOB_COMPLETION_INDEX (0-based) with FSRACE_SHARD_TOTAL set to
// the Job's completions (the Job does not export them). `env` is getenv (injectable for tests).
Shard shard_from_env(const char* (*env)(const char*));
std::vector<CaseSpec> shard_cases(const std::vector<CaseSpec>& all, const Shard& s);

// The campaign as resolved (defaults filled in, overrides applied), as TOML.
std::string campaign_to_toml(const Campaign& c);

}  // namespace fsrace
