#include "core/campaign.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fmt/core.h>
#include <fmt/format.h>
#include <sstream>
#include <toml++/toml.h>

#include "core/filesystems.h"
#include "core/util.h"
#include "probes/catalog.h"

namespace fsrace {
namespace {

std::string where(const std::string& path, const toml::node& n) {
  const auto& s = n.source();
  return fmt::format("{}:{}:{}", path, s.begin.line, s.begin.column);
}

std::string join(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ", ")); }

template <class T>
std::vector<std::string> names_of(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.name);
  return out;
}

struct Ctx {
  const std::string& path;
  [[noreturn]] void fail_at(const toml::source_region& r, const std::string& msg) const {
    throw Fatal(fmt::format("{}:{}:{}: {}", path, r.begin.line, r.begin.column, msg));
  }
  [[noreturn]] void fail(const toml::node& n, const std::string& msg) const {
    throw Fatal(fmt::format("{}: {}", where(path, n), msg));
  }
  void only_keys(const toml::table& t, const std::string& section, const std::vector<std::string>& allowed) const {
    for (const auto& [k, v] : t) {
      bool ok = false;
      for (const auto& a : allowed) ok |= a == k.str();
      if (!ok)
        fail_at(k.source(), fmt::format("unknown key '{}' in {}; allowed: {}", k.str(), section, join(allowed)));
    }
  }
  const toml::table& table(const toml::node& n, const std::string& what) const {
    if (!n.is_table()) fail(n, fmt::format("{} must be a table", what));
    return *n.as_table();
  }
  std::string str(const toml::node& n, const std::string& key) const {
    if (!n.is_string()) fail(n, fmt::format("'{}' must be a string", key));
    return n.as_string()->get();
  }
  double num(const toml::node& n, const std::string& key, double lo, double hi, bool integer) const {
    double v;
    if (n.is_integer()) v = double(n.as_integer()->get());
    else if (n.is_floating_point() && !integer) v = n.as_floating_point()->get();
    else fail(n, fmt::format("'{}' must be {}", key, integer ? "an integer" : "a number"));
    if (!(v >= lo && v <= hi)) fail(n, fmt::format("'{}' = {} is out of range; allowed: {} to {}", key, v, lo, hi));
    return v;
  }
  // A list of names from `allowed`, each at most once.
  std::vector<std::string> names(const toml::node& n, const std::string& key, const std::vector<std::string>& allowed,
                                 const std::string& what) const {
    auto v = str_list(n, key);
    for (size_t i = 0; i < v.size(); ++i) {
      bool ok = false;
      for (const auto& a : allowed) ok |= a == v[i];
      if (!ok) fail(n, fmt::format("unknown {} '{}' in '{}'; allowed: {}", what, v[i], key, join(allowed)));
      for (size_t j = 0; j < i; ++j)
        if (v[j] == v[i]) fail(n, fmt::format("'{}' lists '{}' twice", key, v[i]));
    }
    return v;
  }
  std::vector<std::string> str_list(const toml::node& n, const std::string& key) const {
    if (!n.is_array()) fail(n, fmt::format("'{}' must be an array of strings", key));
    std::vector<std::string> out;
    for (const auto& e : *n.as_array()) out.push_back(str(e, key));
    return out;
  }
};

}  // namespace

const std::vector<std::string>& known_filesystems() {
  static const std::vector<std::string> v = filesystem_names();
  return v;
}

FsConfig default_fs_config(const std::string& type) {
  FsConfig c;
  c.type = type;
  if (const FilesystemInfo* fi = find_filesystem(type)) {
    c.mkfs_options = fi->mkfs_defaults;
    c.mount_options = fi->mount_defaults;
    c.device_size_mib = fi->default_size_mib;
  }
  return c;
}

Campaign parse_campaign(const std::string& text, const std::string& path, const std::vector<ScenarioSpec>& catalog) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw Fatal(fmt::format("{}:{}:{}: TOML syntax error: {}", path, s.begin.line, s.begin.column, e.description()));
  }
  Ctx cx{path};
  Campaign c;
  c.source = path;
  cx.only_keys(root, "the top level", {"campaign", "fs", "scenario", "vm", "probes"});
  std::vector<std::string> fs_list;
  for (const auto& f : filesystem_table())
    if (f.in_default_campaign) fs_list.push_back(f.name);
  std::vector<std::string> sc_list;
  if (auto* n = root.get("campaign")) {
    const auto& t = cx.table(*n, "[campaign]");
    cx.only_keys(t, "[campaign]", {"name", "seed", "duration_s", "repetitions", "quiesce_ms", "widening", "filesystems", "scenarios"});
    if (auto* v = t.get("name")) {
      c.name = cx.str(*v, "name");
      bool ok = !c.name.empty() && c.name.size() <= 64;
      for (char ch : c.name) ok &= std::isalnum((unsigned char)ch) || ch == '-' || ch == '_' || ch == '.';
      if (!ok || c.name[0] == '.') cx.fail(*v, "'name' must be 1-64 characters of [A-Za-z0-9._-] (it names the results directory)");
    }
    if (auto* v = t.get("seed")) c.seed = uint64_t(cx.num(*v, "seed", 0, double(kMaxSeed), true));
    if (auto* v = t.get("duration_s")) c.duration_s = cx.num(*v, "duration_s", 0.1, 86400 * 7, false);
    if (auto* v = t.get("repetitions")) c.repetitions = uint64_t(cx.num(*v, "repetitions", 1, 100000, true));
    if (auto* v = t.get("quiesce_ms")) c.quiesce_ms = cx.num(*v, "quiesce_ms", 0, 600000, false);
    if (auto* v = t.get("widening")) {
      c.widening = cx.str(*v, "widening");
      const auto& modes = campaign_widening_modes();
      if (std::find(modes.begin(), modes.end(), c.widening) == modes.end())
        cx.fail(*v, fmt::format("unknown widening '{}'; allowed: {}", c.widening, join(modes)));
    }
    if (auto* v = t.get("filesystems")) {
      fs_list = cx.str_list(*v, "filesystems");
      if (fs_list.empty()) cx.fail(*v, fmt::format("'filesystems' is empty; allowed: {}", join(known_filesystems())));
      for (const auto& f : fs_list) {
        bool ok = false;
        for (const auto& k : known_filesystems()) ok |= k == f;
        if (!ok) cx.fail(*v, fmt::format("unknown filesystem '{}' in 'filesystems'; allowed: {}", f, join(known_filesystems())));
        if (std::count(fs_list.begin(), fs_list.end(), f) > 1)
          cx.fail(*v, fmt::format("'filesystems' lists {} twice (two cases would share one name); use 'repetitions' for more runs", f));
      }
    }
    if (auto* v = t.get("scenarios")) {
      sc_list = cx.str_list(*v, "scenarios");
      if (sc_list.empty()) cx.fail(*v, fmt::format("'scenarios' is empty; allowed: {}", join(names_of(catalog))));
      for (const auto& s : sc_list) {
        bool ok = false;
        for (const auto& k : catalog) ok |= k.name == s;
        if (!ok) cx.fail(*v, fmt::format("unknown scenario '{}' in 'scenarios'; allowed: {}", s, join(names_of(catalog))));
        if (std::count(sc_list.begin(), sc_list.end(), s) > 1)
          cx.fail(*v, fmt::format("'scenarios' lists {} twice (two cases would share one name); use 'repetitions' for more runs", s));
      }
    }
  }
  std::map<std::string, FsConfig> fs_cfg;
  if (auto* n = root.get("fs")) {
    const auto& t = cx.table(*n, "[fs]");
    for (const auto& [k, v] : t) {
      std::string type(k.str());
      bool known = false;
      for (const auto& f : known_filesystems()) known |= f == type;
      if (!known) cx.fail(v, fmt::format("unknown filesystem [fs.{}]; allowed: {}", type, join(known_filesystems())));
      const auto& ft = cx.table(v, fmt::format("[fs.{}]", type));
      std::string sec = fmt::format("[fs.{}]", type);
      const FilesystemInfo* fi = find_filesystem(type);
      if (fi->backing == FsBacking::kCluster) cx.only_keys(ft, sec, {"mount_options"});  // no device, no mkfs
      else cx.only_keys(ft, sec, {"mkfs_options", "mount_options", "device_size_mib"});
      FsConfig fc = default_fs_config(type);
      if (auto* o = ft.get("mkfs_options")) fc.mkfs_options = cx.str_list(*o, "mkfs_options");
      if (auto* o = ft.get("mount_options")) {
        fc.mount_options = cx.str(*o, "mount_options");
        if (fi->backing == FsBacking::kCluster && !fc.mount_options.empty()) {  // "": no client options
          // fsrace supplies the cluster's address and the client's key itself.
          size_t pos = 0;
          while (pos <= fc.mount_options.size()) {
            size_t comma = fc.mount_options.find(',', pos);
            std::string opt = fc.mount_options.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            pos = comma == std::string::npos ? fc.mount_options.size() + 1 : comma + 1;
            std::string key = opt.substr(0, opt.find('='));
            if (key.empty())
              cx.fail(*o, fmt::format("{} mount_options '{}' has an empty option: give comma-separated ceph client options "
                                      "like \"nowsync,fscache\"", sec, fc.mount_options));
            for (const char* own : {"name", "secret", "secretfile", "key", "mon_addr", "fsid", "source", "fs", "mds_namespace"})
              if (key == own)
                cx.fail(*o, fmt::format("{} mount_options: '{}' is set by fsrace (it mounts its own cluster as client.admin): "
                                        "remove it", sec, key));
          }
        }
      }
      if (auto* o = ft.get("device_size_mib"))
        fc.device_size_mib = uint64_t(cx.num(*o, "device_size_mib", double(find_filesystem(type)->min_size_mib), 1 << 20, true));
      fs_cfg[type] = fc;
    }
  }
  for (const auto& f : fs_list) c.filesystems.push_back(fs_cfg.count(f) ? fs_cfg[f] : default_fs_config(f));

  if (auto* n = root.get("vm")) {  // VM mode settings (harness/campaign.h VmConfig)
    const auto& t = cx.table(*n, "[vm]");
    cx.only_keys(t, "[vm]", {"cpus", "memory_mib", "hang_timeout_s", "boot_timeout_s", "test_hook", "power_cut", "pmem"});
    if (auto* v = t.get("pmem")) {
      c.vm.pmem = cx.str(*v, "pmem");
      if (c.vm.pmem != "nvdimm" && c.vm.pmem != "memmap")
        cx.fail(*v, fmt::format("unknown pmem '{}'; allowed: nvdimm, memmap", c.vm.pmem));
    }
    if (auto* v = t.get("power_cut")) {
      if (!v->is_boolean()) cx.fail(*v, "power_cut must be true or false");
      c.vm.power_cut = v->value_or(false);
      if (c.vm.power_cut && c.vm.pmem == "memmap")
        cx.fail(*v, "power_cut with pmem = \"memmap\": that pmem is guest RAM and does not survive the VM; use pmem = \"nvdimm\"");
    }
    if (auto* v = t.get("cpus")) c.vm.cpus = int64_t(cx.num(*v, "cpus", 1, 64, true));
    if (auto* v = t.get("memory_mib")) c.vm.memory_mib = int64_t(cx.num(*v, "memory_mib", 256, 1 << 20, true));
    if (auto* v = t.get("hang_timeout_s")) c.vm.hang_timeout_s = cx.num(*v, "hang_timeout_s", 2, 86400, false);
    if (auto* v = t.get("boot_timeout_s")) c.vm.boot_timeout_s = cx.num(*v, "boot_timeout_s", 5, 3600, false);
    if (auto* v = t.get("test_hook")) {
      c.vm.test_hook = cx.str(*v, "test_hook");
      bool ok = false;
      for (const auto& h : vm_test_hooks()) ok |= h == c.vm.test_hook;
      if (!ok) cx.fail(*v, fmt::format("unknown test_hook '{}'; allowed: {}", c.vm.test_hook, join(vm_test_hooks())));
    }
  }

  // --- [probes] (issue 3) ---
  if (auto* n = root.get("probes")) {
    const auto& t = cx.table(*n, "[probes]");
    cx.only_keys(t, "[probes]", {"enabled", "required", "exclude", "ringbuf_mib", "cpu_stats", "toggle_ms", "lock_snapshot"});
    if (auto* v = t.get("enabled")) {
      if (!v->is_boolean()) cx.fail(*v, "'enabled' must be true or false");
      c.probes.enabled = v->as_boolean()->get();
    }
    if (auto* v = t.get("lock_snapshot")) {
      if (!v->is_boolean()) cx.fail(*v, "'lock_snapshot' must be true or false");
      c.probes.lock_snapshot = v->as_boolean()->get();
    }
    if (auto* v = t.get("cpu_stats")) {
      if (!v->is_boolean()) cx.fail(*v, "'cpu_stats' must be true or false");
      c.probes.cpu_stats = v->as_boolean()->get();
    }
    std::vector<std::string> names;
    for (const auto& p : probes::probe_catalog()) names.push_back(p.name);
    if (auto* v = t.get("required")) c.probes.required = cx.names(*v, "required", names, "probe");
    if (auto* v = t.get("exclude")) {
      c.probes.exclude = cx.names(*v, "exclude", names, "probe");
      for (const auto& x : c.probes.exclude)
        if (std::find(c.probes.required.begin(), c.probes.required.end(), x) != c.probes.required.end())
          cx.fail(*v, fmt::format("probe '{}' is both required and excluded: drop it from one of the two", x));
    }
    if (auto* v = t.get("toggle_ms")) {
      c.probes.toggle_ms = uint64_t(cx.num(*v, "toggle_ms", 0, 60000, true));
      if (c.probes.toggle_ms && c.probes.toggle_ms < 50)
        cx.fail(*v, fmt::format("'toggle_ms' = {} is too short to attach and detach in; allowed: 0 (off) or 50 to 60000",
                                c.probes.toggle_ms));
    }
    if (auto* v = t.get("ringbuf_mib")) {
      c.probes.ringbuf_mib = uint64_t(cx.num(*v, "ringbuf_mib", 1, 1024, true));
      if (c.probes.ringbuf_mib & (c.probes.ringbuf_mib - 1))
        cx.fail(*v, fmt::format("'ringbuf_mib' = {} must be a power of two (1, 2, 4, ... 1024)", c.probes.ringbuf_mib));
    }
  }

  std::map<std::string, ScenarioConfig> sc_cfg;
  if (auto* n = root.get("scenario")) {
    const auto& t = cx.table(*n, "[scenario]");
    for (const auto& [k, v] : t) {
      std::string name(k.str());
      const ScenarioSpec* spec = nullptr;
      for (const auto& s : catalog)
        if (s.name == name) spec = &s;
      if (!spec) cx.fail(v, fmt::format("unknown scenario [scenario.{}]; allowed: {}", name, join(names_of(catalog))));
      std::string sec = fmt::format("[scenario.{}]", name);
      const auto& st = cx.table(v, sec);
      auto keys = names_of(spec->params);
      keys.insert(keys.end(), {"kdelay", "kwiden"});
      cx.only_keys(st, sec, keys);
      ScenarioConfig sc{name, {}, spec->backings};
      for (const auto& p : spec->params) {
        sc.params[p.name] = p.def;
        if (auto* o = st.get(p.name)) sc.params[p.name] = cx.num(*o, p.name, p.min, p.max, p.type == ParamSpec::Type::kInt);
      }
      if (auto* o = st.get("kdelay")) sc.kdelay = cx.names(*o, "kdelay", probes::delay_point_names(), "kernel delay point");
      if (auto* o = st.get("kwiden")) sc.kwiden = cx.names(*o, "kwiden", probes::kernel_technique_names(), "kernel widening technique");
      if (c.vm.power_cut && sc.widens("dm-flakey"))
        cx.fail(*st.get("kwiden"), fmt::format("kwiden dm-flakey in {} and [vm] power_cut both cut the power after the race: keep one",
                                               sec));
      if (sc.widens("override-return") && sc.widens("fail-function"))
        cx.fail(*st.get("kwiden"), fmt::format("'kwiden' lists both override-return and fail-function in {}: both inject at {}; pick one", sec,
                                               probes::kInjectFunction));
      for (const auto& [k, v] : st) {
        std::string needs;
        bool vm_cut = c.vm.power_cut && std::string(k.str()).rfind("power_cut_", 0) == 0;  // [vm] power_cut cuts too
        if (!vm_cut && !sc.param_applies(std::string(k.str()), &needs))
          cx.fail(v, fmt::format("'{}' has no effect without {} in {}", k.str(), needs, sec));
      }
      if (int64_t e = sc.params.count("kinject_errno") ? sc.i("kinject_errno") : EEXIST; e != EEXIST && e != ENOMEM)
        cx.fail(*st.get("kinject_errno"), fmt::format("'kinject_errno' = {} is not supported; allowed: {} (EEXIST) or {} (ENOMEM)", e, EEXIST, ENOMEM));
      sc_cfg[name] = sc;
    }
  }
  if (sc_list.empty()) {
    for (const auto& [k, v] : sc_cfg) sc_list.push_back(k);
    if (sc_list.empty() && !catalog.empty()) sc_list.push_back(catalog.front().name);
  }
  for (const auto& s : sc_list) {
    if (sc_cfg.count(s)) {
      c.scenarios.push_back(sc_cfg[s]);
      continue;
    }
    for (const auto& spec : catalog)
      if (spec.name == s) {
        ScenarioConfig sc{s, {}, spec.backings};
        for (const auto& p : spec.params) sc.params[p.name] = p.def;
        c.scenarios.push_back(sc);
      }
  }
  return c;
}

bool ScenarioConfig::runs_on(const std::string& fs_name) const {
  if (backings.empty()) return true;
  const FilesystemInfo* fi = find_filesystem(fs_name);
  return fi && std::find(backings.begin(), backings.end(), fs_backing_name(fi->backing)) != backings.end();
}

void check_matrix_fits(const Campaign& c) {
  for (const auto& sc : c.scenarios) {
    bool any = false;
    for (const auto& f : c.filesystems) any |= sc.runs_on(f.type);
    if (any) continue;
    std::vector<std::string> fits;
    for (const auto& f : filesystem_table())
      if (sc.runs_on(f.name)) fits.push_back(f.name);
    throw Fatal(fmt::format("{}: scenario {} runs only on {}, and the campaign's filesystems are {}; add one of those "
                            "to filesystems (or --fs)", c.source.empty() ? "campaign" : c.source, sc.name, join(fits),
                            [&] { std::vector<std::string> v; for (const auto& f : c.filesystems) v.push_back(f.type); return join(v); }()));
  }
}

bool ScenarioConfig::widens(const std::string& technique) const {
  return std::find(kwiden.begin(), kwiden.end(), technique) != kwiden.end();
}

std::string ScenarioConfig::injection() const {
  for (const char* t : {"override-return", "fail-function"})
    if (widens(t)) return t;
  return "";
}

bool ScenarioConfig::param_applies(const std::string& key, std::string* needs) const {
  std::string why;
  if (key.rfind("kdelay_", 0) == 0 && kdelay.empty()) why = "'kdelay' (the delay points to arm)";
  else if (key.rfind("kinject_", 0) == 0 && injection().empty()) why = "kwiden = [\"override-return\"] or [\"fail-function\"]";
  else if (key.rfind("dm_delay_", 0) == 0 && !widens("dm-delay")) why = "kwiden = [\"dm-delay\"]";
  else if (key.rfind("xfs_", 0) == 0 && !widens("xfs-errortag")) why = "kwiden = [\"xfs-errortag\"]";
  else if (key.rfind("power_cut_", 0) == 0 && !widens("dm-flakey")) why = "kwiden = [\"dm-flakey\"] (or [vm] power_cut = true)";
  if (needs) *needs = why;
  return why.empty();
}

constexpr int64_t kMaxCampaignBytes = 1 << 20;

Campaign load_campaign(const std::string& path, const std::vector<ScenarioSpec>& catalog) {
  if (!path_exists(path)) throw Fatal(fmt::format("campaign file {} does not exist: pass a TOML campaign (e.g. campaigns/default.toml)", path));
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Fatal(fmt::format("campaign file {} is not a regular file: pass a TOML campaign (e.g. campaigns/default.toml)", path));
  if (st.st_size > kMaxCampaignBytes)
    throw Fatal(fmt::format("campaign file {} is {} bytes, more than a campaign can be ({} at most): pass a TOML campaign", path,
                            int64_t(st.st_size), kMaxCampaignBytes));
  return parse_campaign(read_file(path), path, catalog);
}

uint64_t parse_seed_option(const std::string& text) {
  uint64_t v = 0;
  bool digits = !text.empty() && text.size() <= 16 && std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (digits)
    for (char ch : text) v = v * 10 + uint64_t(ch - '0');
  if (!digits || v > kMaxSeed)
    throw Fatal(fmt::format("--seed {}: must be a whole number from 0 to {} (2^53 - 1, as [campaign] seed)", text, kMaxSeed));
  return v;
}

void apply_overrides(Campaign& c, const CampaignOverrides& o, const std::vector<ScenarioSpec>& catalog) {
  if (o.duration_s) {
    if (!(*o.duration_s >= 0.1 && *o.duration_s <= 86400 * 7))
      throw Fatal(fmt::format("--duration {} is out of range; allowed: 0.1 to 604800 seconds", *o.duration_s));
    c.duration_s = *o.duration_s;
  }
  if (o.seed) {
    if (*o.seed > kMaxSeed) throw Fatal(fmt::format("seed {} is out of range; allowed: 0 to {}", *o.seed, kMaxSeed));
    c.seed = *o.seed;
  }
  if (!o.filesystems.empty()) {
    std::vector<FsConfig> out;
    for (const auto& f : o.filesystems) {
      bool known = false;
      for (const auto& k : known_filesystems()) known |= k == f;
      if (!known) throw Fatal(fmt::format("--fs {}: unknown filesystem; allowed: {}", f, join(known_filesystems())));
      if (std::count(o.filesystems.begin(), o.filesystems.end(), f) > 1)
        throw Fatal(fmt::format("--fs: {} is listed twice (two cases would share one name); list each filesystem once, "
                                     "use [campaign] repetitions for more runs", f));
      FsConfig fc = default_fs_config(f);
      for (const auto& e : c.filesystems)
        if (e.type == f) fc = e;
      out.push_back(fc);
    }
    c.filesystems = out;
  }
  if (!o.scenarios.empty()) {
    std::vector<ScenarioConfig> out;
    for (const auto& s : o.scenarios) {
      const ScenarioSpec* spec = nullptr;
      for (const auto& k : catalog)
        if (k.name == s) spec = &k;
      if (!spec) throw Fatal(fmt::format("--scenario {}: unknown scenario; allowed: {}", s, join(names_of(catalog))));
      if (std::count(o.scenarios.begin(), o.scenarios.end(), s) > 1)
        throw Fatal(fmt::format("--scenario: {} is listed twice (two cases would share one name); list each scenario once, "
                                     "use [campaign] repetitions for more runs", s));
      ScenarioConfig sc{s, {}, spec->backings};
      for (const auto& p : spec->params) sc.params[p.name] = p.def;
      for (const auto& e : c.scenarios)
        if (e.name == s) sc = e;
      out.push_back(sc);
    }
    c.scenarios = out;
  }
  check_matrix_fits(c);
}

std::vector<CaseSpec> case_matrix(const Campaign& c) {
  std::vector<CaseSpec> out;
  for (uint64_t r = 0; r < c.repetitions; ++r)
    for (const auto& fs : c.filesystems)
      for (const auto& sc : c.scenarios)
        if (sc.runs_on(fs.type))
          out.push_back({fs, sc, r, c.repetitions > 1 ? fmt::format("{}-{}-r{}", fs.type, sc.name, r) : fmt::format("{}-{}", fs.type, sc.name),
                       c.seed + r * 1000003ull});
  return out;
}

std::string campaign_to_toml(const Campaign& c) {
  toml::table root;
  toml::array fsn, scn;
  for (const auto& f : c.filesystems) fsn.push_back(f.type);
  for (const auto& s : c.scenarios) scn.push_back(s.name);
  root.insert("campaign", toml::table{{"name", c.name},
                                      {"seed", int64_t(c.seed)},
                                      {"duration_s", c.duration_s},
                                      {"repetitions", int64_t(c.repetitions)},
                                      {"quiesce_ms", c.quiesce_ms},
                                      {"widening", c.widening},
                                      {"filesystems", fsn},
                                      {"scenarios", scn}});
  toml::table fs;
  for (const auto& f : c.filesystems) {
    toml::array mk;
    for (const auto& o : f.mkfs_options) mk.push_back(o);
    const FilesystemInfo* fi = find_filesystem(f.type);
    if (fi && fi->backing == FsBacking::kCluster) fs.insert(f.type, toml::table{{"mount_options", f.mount_options}});
    else
      fs.insert(f.type, toml::table{{"mkfs_options", mk}, {"mount_options", f.mount_options},
                                    {"device_size_mib", int64_t(f.device_size_mib)}});
  }
  root.insert("fs", fs);
  toml::table sc;
  for (const auto& s : c.scenarios) {
    toml::table p;
    for (const auto& [k, v] : s.params) {
      // widening parameters only with their technique (the parser refuses them alone)
      if (!s.param_applies(k) && !(c.vm.power_cut && k.rfind("power_cut_", 0) == 0)) continue;
      if (v == std::floor(v) && std::fabs(v) < 9e15) p.insert(k, int64_t(v));
      else p.insert(k, v);
    }
    for (const auto& [key, list] : {std::pair{"kdelay", &s.kdelay}, std::pair{"kwiden", &s.kwiden}}) {
      if (list->empty()) continue;
      toml::array a;
      for (const auto& x : *list) a.push_back(x);
      p.insert(key, a);
    }
    sc.insert(s.name, p);
  }
  root.insert("scenario", sc);
  toml::table vm{{"cpus", c.vm.cpus}, {"memory_mib", c.vm.memory_mib}, {"hang_timeout_s", c.vm.hang_timeout_s},
                 {"boot_timeout_s", c.vm.boot_timeout_s}};
  if (!c.vm.test_hook.empty()) vm.insert("test_hook", c.vm.test_hook);
  if (c.vm.power_cut) vm.insert("power_cut", true);
  if (c.vm.pmem != "nvdimm") vm.insert("pmem", c.vm.pmem);
  root.insert("vm", vm);
  toml::array req, exc;
  for (const auto& r : c.probes.required) req.push_back(r);
  for (const auto& x : c.probes.exclude) exc.push_back(x);
  root.insert("probes", toml::table{{"enabled", c.probes.enabled}, {"required", req}, {"exclude", exc}, {"ringbuf_mib", int64_t(c.probes.ringbuf_mib)},
                                      {"cpu_stats", c.probes.cpu_stats}, {"toggle_ms", int64_t(c.probes.toggle_ms)},
                                      {"lock_snapshot", c.probes.lock_snapshot}});
  std::ostringstream os;
  os << "# fsrace campaign as resolved for this run (defaults filled in, overrides applied)\n";
  if (!c.source.empty()) os << "# source: " << c.source << "\n";
  os << root << "\n";
  return os.str();
}

Shard parse_shard(const std::string& text) {
  Shard s;
  auto slash = text.find('/');
  auto bad = [&]() {
    return Fatal(fmt::format("shard '{}' is not I/N with 1 <= I <= N <= 100000 (e.g. --shard 2/8)", text));
  };
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) throw bad();
  for (size_t i = 0; i < text.size(); ++i)
    if (i != slash && !std::isdigit(static_cast<unsigned char>(text[i]))) throw bad();
  if (slash > 6 || text.size() - slash - 1 > 6) throw bad();
  s.index = std::stoull(text.substr(0, slash));
  s.total = std::stoull(text.substr(slash + 1));
  if (s.index < 1 || s.total < 1 || s.index > s.total || s.total > 100000) throw bad();
  return s;
}

Shard shard_from_env(const char* (*env)(const char*)) {
  auto get = [&](const char* k) -> std::string {
    const char* v = env(k);
    return v ? v : "";
  };
  std::string gi = get("CI_NODE_INDEX"), gt = get("CI_NODE_TOTAL");
  if (!gi.empty() || !gt.empty()) {
    if (gi.empty() || gt.empty())
      throw Fatal("GitLab CI sets CI_NODE_INDEX and CI_NODE_TOTAL together (`parallel: N` in the job); only one is set: set both or pass --shard I/N");
    try {
      return parse_shard(gi + "/" + gt);
    } catch (const Fatal&) {
      throw Fatal(fmt::format("CI_NODE_INDEX={} / CI_NODE_TOTAL={} is not a shard (1 <= index <= total): fix the job or pass --shard I/N", gi, gt));
    }
  }
  std::string ki = get("JOB_COMPLETION_INDEX");
  if (!ki.empty()) {
    std::string kt = get("FSRACE_SHARD_TOTAL");
    if (kt.empty())
      throw Fatal("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but FSRACE_SHARD_TOTAL is not: set it to the Job's "
                  "completions in the pod spec (docs/sharding.md), or pass --shard I/N");
    bool digits = !ki.empty() && ki.size() < 7 && std::all_of(ki.begin(), ki.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!digits) throw Fatal(fmt::format("JOB_COMPLETION_INDEX={} is not a number: pass --shard I/N", ki));
    try {
      return parse_shard(std::to_string(std::stoull(ki) + 1) + "/" + kt);
    } catch (const Fatal&) {
      throw Fatal(fmt::format("JOB_COMPLETION_INDEX={} with FSRACE_SHARD_TOTAL={} is not a shard (index < total): set FSRACE_SHARD_TOTAL "
                              "to the Job's completions", ki, kt));
    }
  }
  return {};
}

std::vector<CaseSpec> shard_cases(const std::vector<CaseSpec>& all, const Shard& s) {
  if (!s.active()) return all;
  std::vector<CaseSpec> out;
  for (size_t i = 0; i < all.size(); ++i)
    if (i % s.total == s.index - 1) out.push_back(all[i]);
  return out;
}

}  // namespace fsrace
