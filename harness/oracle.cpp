#include "harness/oracle.h"

#include <algorithm>
#include <climits>
#include <fmt/core.h>
#include <map>

namespace fsrace {
namespace {

uint64_t key(uint16_t file, uint64_t block) { return (uint64_t(file) << 40) | block; }

const char* phase_of(OpKind k) {
  switch (k) {
    case OpKind::kVerifyCached: return "verify-cache";
    case OpKind::kVerifyMmap: return "verify-mmap";
    case OpKind::kVerifyDirect: return "verify-direct";
    case OpKind::kVerifyDisk: return "verify-disk";
    default: return "race";
  }
}

bool quiescent(OpKind k) { return op_kind_quiescent(k); }

}  // namespace

BlockModel::BlockModel(const OpLogData& d) : d_(d) {
  for (size_t i = 0; i < d.ops.size(); ++i) op_index_[d.ops[i].id] = i;
  if (d.meta.contains("files")) {
    for (const auto& f : d.meta["files"]) {
      file_ids_.push_back(f.value("file_id", uint64_t(0)));
      file_names_.push_back(f.value("name", std::string()));
      uint64_t blocks = f.value("blocks", uint64_t(0));
      uint16_t fi = uint16_t(file_ids_.size() - 1);
      for (uint64_t b = 0; b < blocks; ++b) {
        hist_[key(fi, b)].mods.push_back(Mod{0, 0, 0, true, true, false});
        alloc_[key(fi, b)].mods.push_back(Mod{0, 0, 0, true, true, false});
      }
    }
  }
  for (const auto& r : d.ops) {
    OpKind k = OpKind(r.kind);
    if (op_kind_modifies(k) || k == OpKind::kFalloc) {
      bool frees = k == OpKind::kPunch;
      bool ok = (frees || k == OpKind::kZeroRange || k == OpKind::kFalloc) ? r.result == 0 : r.result == int64_t(r.length);
      uint64_t b0 = r.offset / kBlockSize, b1 = (r.offset + r.length + kBlockSize - 1) / kBlockSize;
      for (uint64_t b = b0; b < b1; ++b) alloc_[key(r.file, b)].mods.push_back(Mod{r.start_ns, r.end_ns, r.id, frees, ok, false});
    }
    if (!op_kind_modifies(k)) continue;
    bool punch = op_kind_zeroes(k);
    bool ok = punch ? r.result == 0 : r.result == int64_t(r.length);
    bool mmap = k == OpKind::kMmapWrite;
    uint64_t b0 = r.offset / kBlockSize, b1 = (r.offset + r.length + kBlockSize - 1) / kBlockSize;
    for (uint64_t b = b0; b < b1; ++b) hist_[key(r.file, b)].mods.push_back(Mod{r.start_ns, r.end_ns, r.id, punch, ok, mmap});
  }
  for (auto* table : {&hist_, &alloc_})
  for (auto& [k, h] : *table) {
    std::stable_sort(h.mods.begin(), h.mods.end(), [](const Mod& a, const Mod& b) { return a.start < b.start; });
    size_t n = h.mods.size();
    h.suffix_min_end.assign(n + 1, UINT64_MAX);
    for (size_t i = n; i-- > 0;)
      h.suffix_min_end[i] = std::min(h.suffix_min_end[i + 1], h.mods[i].ok ? h.mods[i].end : UINT64_MAX);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n; ++i)
      if (h.mods[i].punch) {
        h.punch_idx.push_back(i);
        if (best == SIZE_MAX || h.mods[i].end > h.mods[best].end) best = i;
        h.punch_prefix_best.push_back(best);
      }
  }
}

bool BlockModel::may_be_allocated(uint16_t file, uint64_t block, uint64_t t) const {
  auto it = alloc_.find(key(file, block));
  if (it == alloc_.end()) return false;
  for (const auto& m : it->second.mods)
    if (!m.punch && allowed(it->second, m, t, t)) return true;
  return false;
}

const BlockModel::Hist* BlockModel::hist(uint16_t file, uint64_t block) const {
  auto it = hist_.find(key(file, block));
  return it == hist_.end() ? nullptr : &it->second;
}

const OpRecord* BlockModel::op(uint64_t id) const {
  auto it = op_index_.find(id);
  return it == op_index_.end() ? nullptr : &d_.ops[it->second];
}

const std::string& BlockModel::file_name(uint16_t file) const {
  static const std::string none;
  return file < file_names_.size() ? file_names_[file] : none;
}

bool BlockModel::allowed(const Hist& h, const Mod& x, uint64_t rs, uint64_t re) const {
  if (x.start >= re) return false;
  auto it = std::upper_bound(h.mods.begin(), h.mods.end(), x.end,
                             [](uint64_t t, const Mod& m) { return t < m.start; });
  size_t idx = size_t(it - h.mods.begin());
  return h.suffix_min_end[idx] >= rs;
}

const BlockModel::Mod* BlockModel::find(const Hist& h, uint64_t id) const {
  const OpRecord* r = op(id);
  if (!r) return nullptr;
  auto it = std::lower_bound(h.mods.begin(), h.mods.end(), r->start_ns,
                             [](const Mod& m, uint64_t t) { return m.start < t; });
  for (; it != h.mods.end() && it->start == r->start_ns; ++it)
    if (it->id == id) return &*it;
  return nullptr;
}

const BlockModel::Mod* BlockModel::superseder(const Hist& h, uint64_t after_end, uint64_t rs) const {
  const Mod* best = nullptr;
  for (const auto& m : h.mods)
    if (m.ok && m.start > after_end && m.end < rs && (!best || m.end > best->end)) best = &m;
  return best;
}

bool BlockModel::mmap_tear_possible(const Hist& h, uint64_t rs, uint64_t re) const {
  // A block an mmap store (a plain memcpy) was writing while another write or punch ran on it may keep
  // any mixture of the two, as long as that mmap store is still a possible current value.
  for (size_t i = 0; i < h.mods.size(); ++i) {
    const Mod& x = h.mods[i];
    if (!x.mmap || !allowed(h, x, rs, re)) continue;
    for (const auto& y : h.mods)
      if (&y != &x && y.id != 0 && y.start < x.end && x.start < y.end) return true;
  }
  return false;
}

bool BlockModel::overlapped(const Hist& h, uint64_t rs, uint64_t re) const {
  for (const auto& m : h.mods)
    if (m.id != 0 && m.start < re && m.end > rs) return true;
  return false;
}

std::vector<std::string> BlockModel::allowed_values(const Hist& h, uint64_t rs, uint64_t re) const {
  std::vector<std::string> out;
  bool zero = false;
  for (const auto& m : h.mods) {
    if (!allowed(h, m, rs, re)) continue;
    if (m.punch) {
      if (!zero) out.push_back(m.id ? fmt::format("zeroes (punch op={})", m.id) : "zeroes (initial hole)");
      zero = true;
    } else {
      out.push_back(fmt::format("data op={}", m.id));
    }
    if (out.size() >= 8) break;
  }
  return out;
}

bool BlockModel::allowed_data(uint16_t file, uint64_t block, uint64_t id, uint64_t rs, uint64_t re) const {
  const Hist* h = hist(file, block);
  if (!h) return false;
  const Mod* x = find(*h, id);
  return x && !x->punch && allowed(*h, *x, rs, re);
}

bool BlockModel::allowed_zero(uint16_t file, uint64_t block, uint64_t rs, uint64_t re) const {
  const Hist* h = hist(file, block);
  if (!h) return true;  // never touched: a hole
  // The punch with the latest end among those that started before re is the most permissive.
  auto it = std::lower_bound(h->punch_idx.begin(), h->punch_idx.end(), re,
                             [&](size_t i, uint64_t t) { return h->mods[i].start < t; });
  size_t n = size_t(it - h->punch_idx.begin());
  if (n == 0) return false;
  return allowed(*h, h->mods[h->punch_prefix_best[n - 1]], rs, re);
}

FindingSet run_oracle(const OpLogData& d, const OracleContext& ctx, OracleStats* stats) {
  BlockModel model(d);
  FindingSet out;
  OracleStats st;
  auto base = [&](const OpRecord& r, uint32_t block, const std::string& cls) {
    Finding f;
    f.cls = cls;
    f.fs = ctx.fs;
    f.scenario = ctx.scenario;
    f.case_name = ctx.case_name;
    f.phase = phase_of(OpKind(r.kind));
    f.file = model.file_name(r.file);
    f.block = block;
    f.time_ns = r.start_ns;
    f.ops.push_back(r);
    return f;
  };
  auto add_op = [&](Finding& f, uint64_t id) {
    if (const OpRecord* o = model.op(id)) f.ops.push_back(*o);
  };

  // verify round -> (file, block) -> value per verify kind, for the coherence check
  std::map<std::tuple<uint32_t, uint16_t, uint32_t>, std::map<OpKind, std::pair<BlockValue, size_t>>> rounds;

  for (size_t i = 0; i < d.ops.size(); ++i) {
    const OpRecord& r = d.ops[i];
    OpKind kind = OpKind(r.kind);
    if (op_kind_modifies(kind)) ++st.modifying_ops;
    if (!op_kind_is_read(kind)) continue;
    ++st.reads_checked;
    for (uint32_t k = 0; k < r.nobs; ++k) {
     const ObsRecord& run = d.obs[d.obs_begin[i] + k];
     for (uint32_t ri = 0; ri < run.count; ++ri) {
      BlockValue v = obs_value(run, ri);
      struct {
        uint32_t block;
      } o{run.block + ri};
      ++st.blocks_checked;
      if (quiescent(kind)) rounds[{r.flags, r.file, o.block}][kind] = {v, i};
      const BlockModel::Hist* h = model.hist(r.file, o.block);
      uint64_t rs = r.start_ns, re = r.end_ns;
      uint64_t fid = model.file_id(r.file);

      if (v.cls != BlockClass::kZero && v.file_id != 0 && (v.file_id != fid || v.block != o.block)) {
        Finding f = base(r, o.block, "foreign");
        f.got = describe(v);
        f.got_value = v;
        f.detail = v.file_id != fid ? fmt::format("stamp of another file ({:#x}; this file is {:#x})", v.file_id, fid)
                                    : fmt::format("stamp of block {} of this file", v.block);
        if (h) f.expected = model.allowed_values(*h, rs, re);
        out.add(std::move(f), ctx.keep_per_class);
        continue;
      }
      if (!h) continue;  // block outside the modelled file
      switch (v.cls) {
        case BlockClass::kData: {
          const BlockModel::Mod* x = model.find(*h, v.gen);
          if (!x || x->punch) {
            Finding f = base(r, o.block, "foreign");
            f.got = describe(v);
            f.got_value = v;
            f.detail = fmt::format("op {} never wrote this block", v.gen);
            f.expected = model.allowed_values(*h, rs, re);
            out.add(std::move(f), ctx.keep_per_class);
            break;
          }
          if (model.allowed(*h, *x, rs, re)) break;
          if (x->start >= re) {
            Finding f = base(r, o.block, "foreign");
            f.got = describe(v);
            f.got_value = v;
            f.detail = fmt::format("data of op {} which started after the read ended", x->id);
            add_op(f, x->id);
            f.expected = model.allowed_values(*h, rs, re);
            out.add(std::move(f), ctx.keep_per_class);
            break;
          }
          const BlockModel::Mod* y = model.superseder(*h, x->end, rs);
          Finding f = base(r, o.block, y && y->punch ? "stale-after-punch" : "stale");
          f.got = describe(v);
          f.got_value = v;
          add_op(f, x->id);
          if (y) {
            add_op(f, y->id);
            f.detail = y->punch ? fmt::format("punch op {} completed {} ns before the read started, after op {} ended",
                                              y->id, rs - y->end, x->id)
                                : fmt::format("write op {} completed {} ns before the read started, after op {} ended",
                                              y->id, rs - y->end, x->id);
          }
          f.expected = model.allowed_values(*h, rs, re);
          out.add(std::move(f), ctx.keep_per_class);
          break;
        }
        case BlockClass::kZero: {
          if (model.allowed_zero(r.file, o.block, rs, re)) break;
          const BlockModel::Mod* y = model.superseder(*h, 0, rs);
          Finding f = base(r, o.block, "lost-write");
          f.got = "zeroes";
          f.got_value = v;
          if (y) {
            add_op(f, y->id);
            f.detail = fmt::format("write op {} completed {} ns before the read started", y->id, rs - y->end);
          }
          f.expected = model.allowed_values(*h, rs, re);
          out.add(std::move(f), ctx.keep_per_class);
          break;
        }
        case BlockClass::kMixed:
        case BlockClass::kGarbage: {
          if (!quiescent(kind) && model.overlapped(*h, rs, re)) {
            ++st.torn_legal;
            break;
          }
          if (model.mmap_tear_possible(*h, rs, re)) {  // stores through a mapping are not atomic per block
            ++st.torn_legal;
            break;
          }
          Finding f = base(r, o.block, "torn");
          f.got = describe(v);
          f.got_value = v;
          f.detail = quiescent(kind) ? "torn block while the file was quiescent"
                                     : "torn block although no write or punch overlapped the read";
          f.expected = model.allowed_values(*h, rs, re);
          out.add(std::move(f), ctx.keep_per_class);
          break;
        }
      }
     }
    }
  }

  // Coherence: in each verify round the page cache (read(2), mmap) must agree with O_DIRECT.
  for (const auto& [k, byKind] : rounds) {
    auto direct = byKind.find(OpKind::kVerifyDirect);
    if (direct == byKind.end()) continue;
    for (OpKind ck : {OpKind::kVerifyCached, OpKind::kVerifyMmap}) {
      auto c = byKind.find(ck);
      if (c == byKind.end() || c->second.first == direct->second.first) continue;
      const OpRecord& r = d.ops[c->second.second];
      Finding f = base(r, std::get<2>(k), "cache-incoherent");
      f.phase = phase_of(ck);
      f.got = describe(c->second.first);
      f.got_value = c->second.first;
      f.expected = {fmt::format("{} (what O_DIRECT read)", describe(direct->second.first))};
      f.ops.push_back(d.ops[direct->second.second]);
      f.detail = fmt::format("{} and O_DIRECT disagree after the race", ck == OpKind::kVerifyCached ? "read(2)" : "mmap");
      out.add(std::move(f), ctx.keep_per_class);
    }
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace fsrace
