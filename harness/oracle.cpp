#include "harness/oracle.h"

#include <algorithm>
#include <climits>
#include <fmt/core.h>
#include <map>
#include <optional>
#include <set>

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

// An op as the report names it: "T3 punch #206669" (thread, kind, sequence), or "op #<id>" if unknown.
std::string op_ref(const OpRecord* o, uint64_t id) { return o ? fsrace::op_ref(*o) : fmt::format("op #{}", id); }
// A span as the report writes it ("41.756 ms", "35.2 µs").
std::string span_text(uint64_t ns) { return report_span(double(ns) / 1e3); }

}  // namespace

BlockModel::BlockModel(const OpLogData& d, uint64_t power_cut_ns) : d_(d), power_cut_(power_cut_ns) {
  for (size_t i = 0; i < d.ops.size(); ++i) op_index_[d.ops[i].id] = i;
  if (power_cut_)
    for (const auto& r : d.ops)
      if (OpKind(r.kind) == OpKind::kFsync && r.result == 0 && r.end_ns < power_cut_)
        fsync_start_[r.file] = std::max(fsync_start_[r.file], r.start_ns);
  std::vector<uint64_t> blocks;
  if (d.meta.contains("files")) {
    for (const auto& f : d.meta["files"]) {
      file_ids_.push_back(f.value("file_id", uint64_t(0)));
      file_names_.push_back(f.value("name", std::string()));
      blocks.push_back(f.value("blocks", uint64_t(0)));
      uint16_t fi = uint16_t(file_ids_.size() - 1);
      for (uint64_t b = 0; b < blocks.back(); ++b) {
        hist_[key(fi, b)].mods.push_back(Mod{0, 0, 0, true, true, false, uint32_t(b)});
        alloc_[key(fi, b)].mods.push_back(Mod{0, 0, 0, true, true, false, uint32_t(b)});
      }
    }
  }
  // Files that a successful collapse / insert shifted are modelled in op order (build_shifted).
  std::map<uint16_t, std::vector<size_t>> shifted;
  for (const auto& r : d.ops)
    if (op_kind_shifts(OpKind(r.kind)) && r.result == 0) shifted[r.file];
  for (size_t i = 0; i < d.ops.size(); ++i) {
    const OpRecord& r = d.ops[i];
    OpKind k = OpKind(r.kind);
    bool modifies = op_kind_modifies(k) || k == OpKind::kFalloc || op_kind_shifts(k);
    if (power_cut_ && modifies && r.start_ns < power_cut_ && !durable(r)) {
      ++non_durable_;
      if (shifted.count(r.file)) unjudged_[r.file] = true;
    }
    auto it = shifted.find(r.file);
    if (it != shifted.end()) it->second.push_back(i);
    else add_op_mods(r);
  }
  for (const auto& [file, ops] : shifted) build_shifted(file, file < blocks.size() ? blocks[file] : 0, ops);
  for (const auto& r : d.ops) {
    if (OpKind(r.kind) == OpKind::kMmapWrite && r.length)
      for (uint64_t w = r.offset / kFolioWindow; w <= (r.offset + r.length - 1) / kFolioWindow; ++w)
        mmap_writes_[key(r.file, w)].add(r.start_ns, r.end_ns);
    if (op_kind_shifts(OpKind(r.kind)) && r.result == 0) shift_spans_[r.file].add(r.start_ns, r.end_ns);
  }
  for (auto& [k, iv] : mmap_writes_) iv.finish();
  for (auto& [k, iv] : shift_spans_) iv.finish();
  for (auto* table : {&hist_, &alloc_})
  for (auto& [k, h] : *table) {
    std::stable_sort(h.mods.begin(), h.mods.end(), [](const Mod& a, const Mod& b) { return a.start < b.start; });
    h.mods.shrink_to_fit();  // push_back's doubling left up to half of each history unused (a 215k-punch case: ~100 MB)
    size_t n = h.mods.size();
    h.suffix_min_end.assign(n + 1, UINT64_MAX);
    for (size_t i = n; i-- > 0;) {
      h.suffix_min_end[i] = std::min(h.suffix_min_end[i + 1], h.mods[i].ok ? h.mods[i].end : UINT64_MAX);
      h.max_dur = std::max(h.max_dur, h.mods[i].end - h.mods[i].start);
    }
    size_t best = SIZE_MAX, punches = 0;
    for (const auto& m : h.mods) punches += m.punch;
    h.punch_idx.reserve(punches);
    h.punch_prefix_best.reserve(punches);
    for (size_t i = 0; i < n; ++i)
      if (h.mods[i].punch) {
        h.punch_idx.push_back(i);
        if (best == SIZE_MAX || h.mods[i].end > h.mods[best].end) best = i;
        h.punch_prefix_best.push_back(best);
      }
  }
}

bool BlockModel::durable(const OpRecord& r) const {
  if (!power_cut_) return true;
  auto it = fsync_start_.find(r.file);
  return it != fsync_start_.end() && r.end_ns < it->second;
}

const OpRecord* BlockModel::durable_by(const OpRecord& r) const {
  if (!power_cut_) return nullptr;
  const OpRecord* best = nullptr;
  for (const auto& f : d_.ops)
    if (OpKind(f.kind) == OpKind::kFsync && f.file == r.file && f.result == 0 && f.start_ns > r.end_ns &&
        f.end_ns < power_cut_ && (!best || f.start_ns < best->start_ns))
      best = &f;
  return best;
}

void BlockModel::add_op_mods(const OpRecord& r) {
  OpKind k = OpKind(r.kind);
  uint64_t b0 = r.offset / kBlockSize, b1 = (r.offset + r.length + kBlockSize - 1) / kBlockSize;
  // After a power cut an op that was not durable may or may not have happened: it supersedes nothing.
  bool survives = durable(r);
  if (op_kind_modifies(k) || k == OpKind::kFalloc) {
    bool frees = k == OpKind::kPunch;
    bool ok = (frees || k == OpKind::kZeroRange || k == OpKind::kFalloc) ? r.result == 0 : r.result == int64_t(r.length);
    ok = ok && survives;
    for (uint64_t b = b0; b < b1; ++b)
      alloc_[key(r.file, b)].mods.push_back(Mod{r.start_ns, r.end_ns, r.id, frees, ok, false, uint32_t(b)});
  }
  if (!op_kind_modifies(k)) return;
  bool punch = op_kind_zeroes(k);
  bool ok = (punch ? r.result == 0 : r.result == int64_t(r.length)) && survives;
  bool mmap = k == OpKind::kMmapWrite || k == OpKind::kPinWrite;  // neither is atomic per block
  for (uint64_t b = b0; b < b1; ++b)
    hist_[key(r.file, b)].mods.push_back(Mod{r.start_ns, r.end_ns, r.id, punch, ok, mmap, uint32_t(b)});
}

void BlockModel::build_shifted(uint16_t file, uint64_t blocks, const std::vector<size_t>& ops) {
  // Processing order: an op at its start, a successful shift at its end. So every op that started before a
  // shift ended is in the history when the shift reads its source blocks: an op racing the shift (their
  // intervals overlap) is then both a value the shift may move (the op came first) and a value at its own
  // block in the shifted file (the shift came first). See oracle.h for why per-block choice is sound.
  auto key_of = [&](size_t i) {
    const OpRecord& r = d_.ops[i];
    return op_kind_shifts(OpKind(r.kind)) && r.result == 0 ? r.end_ns : r.start_ns;
  };
  std::vector<size_t> order = ops;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key_of(a) < key_of(b); });
  // A block past the nominal size starts as a hole (it is reached only by shifts).
  auto at = [&](std::unordered_map<uint64_t, Hist>& table, uint64_t b) -> Hist& {
    Hist& h = table[key(file, b)];
    if (h.mods.empty()) h.mods.push_back(Mod{0, 0, 0, true, true, false, uint32_t(b)});
    h.shifted = true;
    return h;
  };
  // Mods are kept sorted by start while building (the shift's moved values start before the racing ops
  // already in the history): insertion from the back, stable for equal starts.
  auto insert_sorted = [](Hist& h, const Mod& m) {
    auto it = h.mods.end();
    while (it != h.mods.begin() && (it - 1)->start > m.start) --it;
    h.mods.insert(it, m);
  };
  uint64_t max_dur = 0;  // longest op or shift of this file so far: bounds the backward scan below
  // The values block h may hold at some instant of [s, e] — what a shift over [s, e] reads there, exactly
  // the read rule: mods that started before e and were not superseded before s. A mod m is superseded iff
  // it ended before the latest start of a successful mod that ended before s.
  auto candidates = [&](const Hist& h, uint64_t s, uint64_t e) {
    std::vector<Mod> out;
    bool zero = false, have_y = false;
    uint64_t ymax = 0;
    for (size_t i = h.mods.size(); i-- > 0;) {
      const Mod& m = h.mods[i];
      if (have_y && m.start + max_dur < ymax) break;  // it and every earlier mod ended before ymax
      if (m.start >= e || (have_y && m.end < ymax)) continue;
      if (!have_y && m.ok && m.end < s) {
        have_y = true;
        ymax = m.start;
      }
      if (m.punch) {
        if (zero) continue;
        zero = true;
      } else if (std::any_of(out.begin(), out.end(), [&](const Mod& o) { return !o.punch && o.id == m.id && o.origin == m.origin; })) {
        continue;
      }
      out.push_back(m);
    }
    return out;
  };
  // Sizes, in blocks, as a range [lo, hi]: a write racing a shift may extend the file before or after it.
  // `pending`: successful writes that may still race a later shift, each with the size range the file would
  // have had without it (alt: the write deferred past every shift it raced so far).
  struct Pending {
    uint64_t start, end, b1, alt_lo, alt_hi;
  };
  std::vector<Pending> pending;
  uint64_t lo = blocks, hi = blocks;
  sizes_[file];
  initial_size_[file] = blocks;
  std::vector<std::pair<uint64_t, uint64_t>> shift_iv;  // successful shifts' intervals, processing order
  for (size_t i : order) {
    const OpRecord& r = d_.ops[i];
    OpKind k = OpKind(r.kind);
    bool shift = op_kind_shifts(k);
    if (!shift && !op_kind_modifies(k) && k != OpKind::kFalloc) continue;
    max_dur = std::max(max_dur, r.end_ns - r.start_ns);
    if (!shift) {
      uint64_t b1 = (r.offset + r.length + kBlockSize - 1) / kBlockSize;
      for (uint64_t b = r.offset / kBlockSize; b < b1; ++b) {
        at(hist_, b);
        at(alloc_, b);
      }
      add_op_mods(r);
      if (!op_kind_zeroes(k) && k != OpKind::kFalloc && r.result == int64_t(r.length)) {
        // A write past EOF extends the file, possibly block by block (an O_DIRECT write the kernel turns
        // into a buffered one when it cannot invalidate the cache grows i_size folio by folio).
        pending.push_back(Pending{r.start_ns, r.end_ns, b1, lo, hi});
        if (b1 > lo) {
          sizes_[file].push_back(SizeChange{r.start_ns, r.end_ns, lo, hi, std::max(lo, b1), std::max(hi, b1)});
          lo = std::max(lo, b1);
          hi = std::max(hi, b1);
        }
      }
      continue;
    }
    if (r.result != 0) continue;  // a refused shift moved nothing
    ++shifts_;
    for (const auto& [s, e] : shift_iv)
      if (s < r.end_ns && r.start_ns < e) ++shift_conflicts_;  // two shifts at once: modelled in end order
    shift_iv.push_back({r.start_ns, r.end_ns});
    uint64_t o = r.offset / kBlockSize, n = r.length / kBlockSize;
    bool collapse = k == OpKind::kCollapse, trunc = k == OpKind::kTruncate;
    auto f = [&](uint64_t x) { return trunc ? o : collapse ? (x > n ? x - n : 0) : x + n; };
    // The new size range. A write racing this shift may land before it (extending, then shifted) or after
    // it (shifted size, then extended). Every function here is monotone and other writes only raise the
    // size, so once all are done the size is at least f(lo) (all before) or, for some racing write W
    // deferred, max(f(W's alt), W's end); at most f(hi) (all before) or the largest racing end (after).
    // While they run the size may also be f(alt) (the shift done, W not yet): the change's `from` range.
    uint64_t new_lo = f(lo), new_hi = f(hi), ch_start = r.start_ns, ch_end = r.end_ns, from_lo = lo;
    std::vector<Pending> still;
    for (auto& p : pending) {
      if (p.end < r.start_ns) continue;  // ended before this shift (and every later one) began
      new_lo = std::min(new_lo, std::max(f(p.alt_lo), p.b1));
      new_hi = std::max(new_hi, p.b1);
      from_lo = std::min({from_lo, p.alt_lo, f(p.alt_lo)});
      ch_start = std::min(ch_start, p.start);
      ch_end = std::max(ch_end, p.end);
      p.alt_lo = f(p.alt_lo);
      p.alt_hi = f(p.alt_hi);
      still.push_back(p);
    }
    pending = std::move(still);
    const uint64_t trunc_to = o;  // a truncate's new size, in blocks
    if (trunc) o = std::min(lo, o);
    // Block p's new value comes from src(p); holes: an insert's range, past-EOF blocks after a collapse
    // (and, where racing writes leave the new size uncertain, possibly the blocks in between), every block
    // between the old and the new size of a truncate.
    uint64_t top = std::max(hi, new_hi);
    std::vector<std::pair<std::vector<Mod>, std::vector<Mod>>> moved(top);
    auto is_hole = [&](uint64_t p) { return trunc || (collapse ? p >= new_hi : p >= o && p < o + n); };
    auto maybe_hole = [&](uint64_t p) { return collapse && p >= new_lo && p < new_hi; };
    sizes_[file].push_back(SizeChange{ch_start, ch_end, from_lo, hi, new_lo, new_hi});
    for (uint64_t p = o; p < top; ++p) {
      if (is_hole(p)) continue;
      uint64_t src = collapse ? p + n : p - n;
      moved[p] = {candidates(at(hist_, src), r.start_ns, r.end_ns), candidates(at(alloc_, src), r.start_ns, r.end_ns)};
    }
    for (uint64_t p = o; p < top; ++p) {
      bool hole = is_hole(p);
      for (int t = 0; t < 2; ++t) {
        if (trunc && t == 1) {
          // Allocation under a truncate: a shrinking one frees every block at or past the new size; an
          // extending one need not free anything (ext4_setattr calls ext4_truncate only when the size does
          // not grow: blocks fallocated past the old EOF stay allocated, now inside the file, reading as
          // zeroes), so their allocation stays possible; blocks between the old and the new size keep
          // their state. Upper bounds only: the space check asks what may be allocated.
          if (p < trunc_to) continue;
          Hist& ha = at(alloc_, p);
          std::vector<Mod> keep = trunc_to >= lo ? candidates(ha, r.start_ns, r.end_ns) : std::vector<Mod>{};
          if (trunc_to < hi) insert_sorted(ha, Mod{r.start_ns, r.end_ns, r.id, true, true, false, uint32_t(p), r.id});
          for (Mod m : keep) {
            m.start = r.start_ns;
            m.end = r.end_ns;
            m.ok = true;
            insert_sorted(ha, m);
          }
          continue;
        }
        Hist& h = at(t ? alloc_ : hist_, p);
        if (hole || maybe_hole(p)) insert_sorted(h, Mod{r.start_ns, r.end_ns, r.id, true, true, false, uint32_t(p), r.id});
        if (hole) continue;
        for (Mod m : t ? moved[p].second : moved[p].first) {
          m.start = r.start_ns;
          m.end = r.end_ns;
          m.ok = true;  // after the shift the block definitely holds one of these (or a racing op's value)
          m.via = r.id;
          insert_sorted(h, m);
        }
      }
    }
    lo = new_lo;
    hi = new_hi;
  }
  // Modifying ops that overlapped a successful shift of this file (modelled: before or after it per block).
  std::sort(shift_iv.begin(), shift_iv.end());
  for (size_t i : ops) {
    const OpRecord& r = d_.ops[i];
    OpKind k = OpKind(r.kind);
    if (op_kind_shifts(k) || (!op_kind_modifies(k) && k != OpKind::kFalloc)) continue;
    auto it = std::lower_bound(shift_iv.begin(), shift_iv.end(), std::make_pair(r.end_ns, uint64_t(0)));
    while (it != shift_iv.begin()) {
      --it;
      if (it->second > r.start_ns) {
        ++shift_races_;
        ++shift_races_by_kind_[op_kind_name(k)];
        break;
      }
      if (it->first + max_dur < r.start_ns) break;  // every earlier shift ended before r started
    }
  }
}

void BlockModel::Intervals::finish() {
  std::vector<size_t> idx(starts.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return starts[a] < starts[b]; });
  std::vector<uint64_t> s, e;
  for (size_t i : idx) {
    s.push_back(starts[i]);
    e.push_back(std::max(e.empty() ? 0 : e.back(), max_end[i]));
  }
  starts = std::move(s);
  max_end = std::move(e);
}

uint64_t BlockModel::Intervals::latest_end_before(uint64_t t) const {
  size_t n = size_t(std::lower_bound(starts.begin(), starts.end(), t) - starts.begin());
  return n ? max_end[n - 1] : 0;
}

bool BlockModel::may_be_allocated(uint16_t file, uint64_t block, uint64_t t) const {
  auto it = alloc_.find(key(file, block));
  if (it != alloc_.end())
    for (const auto& m : it->second.mods)
      if (!m.punch && allowed(it->second, m, t, t)) return true;
  // The folio rule: an mmap write into the same window before t, and no punch of this block since.
  auto mw = mmap_writes_.find(key(file, block * kBlockSize / kFolioWindow));
  if (mw == mmap_writes_.end()) return false;
  uint64_t clear_after = mw->second.latest_end_before(t);
  if (!clear_after) return false;
  if (auto sh = shift_spans_.find(file); sh != shift_spans_.end())
    clear_after = std::max(clear_after, sh->second.latest_end_before(t));  // a shift may move such a block here
  if (it == alloc_.end()) return true;
  for (const auto& m : it->second.mods) {
    if (!m.punch || !m.ok || m.via || m.start < clear_after || m.end > t) continue;
    const OpRecord* r = op(m.id);
    if (r && OpKind(r->kind) == OpKind::kPunch) return false;
  }
  return true;
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

std::vector<uint64_t> BlockModel::allowed_read_results(uint16_t file, uint64_t off, uint64_t len, uint64_t rs,
                                                       uint64_t re) const {
  auto it = sizes_.find(file);
  if (it == sizes_.end()) return {len};
  // Size changes are in processing order (build_shifted). A read is not atomic
  // against them: it checks EOF block by block (mmap: per page fault; read(2): per batch of folios), and
  // an extending write may grow i_size folio by folio (O_DIRECT falling back to buffered I/O), so a read
  // overlapping changes may end at any block between the smallest and the largest size they went through.
  // With writes racing a shift the size is a range (build_shifted); a change's range covers every order.
  uint64_t lo = initial_size_.at(file), hi = lo;
  for (const auto& c : it->second)
    if (c.end < rs) lo = c.to_lo, hi = c.to_hi;
  for (const auto& c : it->second) {
    if (c.end < rs || c.start >= re) continue;
    lo = std::min({lo, c.from_lo, c.to_lo});
    hi = std::max({hi, c.from_hi, c.to_hi});
  }
  std::vector<uint64_t> out;
  for (uint64_t b = lo; b <= hi; ++b) {
    uint64_t size = b * kBlockSize, n = size > off ? std::min(len, size - off) : 0;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const BlockModel::Mod* BlockModel::find_value(const Hist& h, uint64_t id, uint32_t origin, uint64_t block, uint64_t rs,
                                              uint64_t re) const {
  if (!h.shifted) {
    if (origin != block) return nullptr;
    const Mod* x = find(h, id);
    return x && !x->punch ? x : nullptr;
  }
  auto match = [&](const Mod& m) { return !m.punch && m.id == id && m.origin == origin; };
  // Backwards from the last mod that started before the read ended. Once a successful mod that ended
  // before the read started is behind us (the latest-starting such mod, start ymax), every mod with
  // start + max_dur < ymax ended before it began: superseded, so the scan can stop.
  auto it = std::lower_bound(h.mods.begin(), h.mods.end(), re, [](const Mod& m, uint64_t t) { return m.start < t; });
  const Mod* latest = nullptr;
  uint64_t ymax = 0;
  bool have_y = false;
  for (size_t i = size_t(it - h.mods.begin()); i-- > 0;) {
    const Mod& m = h.mods[i];
    if (have_y && m.start + h.max_dur < ymax) break;
    if (match(m)) {
      if (allowed(h, m, rs, re)) return &m;
      if (!latest) latest = &m;
    }
    if (!have_y && m.ok && m.end < rs) {
      have_y = true;
      ymax = m.start;
    }
  }
  if (latest) return latest;
  for (size_t i = h.mods.size(); i-- > 0;)  // only data from the future (or nowhere) is left
    if (match(h.mods[i])) return &h.mods[i];
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
    } else if (m.via) {
      out.push_back(fmt::format("data op={} (written at block {}, moved here by op={})", m.id, m.origin, m.via));
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
  const Mod* x = find_value(*h, id, uint32_t(block), block, rs, re);
  return x && allowed(*h, *x, rs, re);
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

const OpRecord* find_power_cut(const OpLogData& d) {
  for (const auto& r : d.ops)
    if (OpKind(r.kind) == OpKind::kPowerCut) return &r;
  return nullptr;
}

FindingSet run_oracle(const OpLogData& d, const OracleContext& ctx, OracleStats* stats) {
  BlockModel before(d);
  // kwiden dm-flakey: reads after the power cut are judged by what had to survive it (oracle.h).
  const OpRecord* cut = find_power_cut(d);
  std::optional<BlockModel> after;
  if (cut) after.emplace(d, cut->start_ns);
  FindingSet out;
  // Consecutive blocks of one read that are wrong alike (same class, ops, detail and origin of the data)
  // are one finding over a block range: a stale 8-block read is one thing the kernel did wrong.
  std::optional<Finding> pending;
  auto alike = [](const Finding& a, const Finding& b) {
    if (a.cls != b.cls || a.phase != b.phase || a.file != b.file || !a.block || !b.block ||
        *a.block + a.blocks != *b.block || a.detail != b.detail || a.ops.size() != b.ops.size() ||
        a.got_value.has_value() != b.got_value.has_value())
      return false;
    for (size_t i = 0; i < a.ops.size(); ++i)
      if (a.ops[i].id != b.ops[i].id) return false;
    return !a.got_value || (a.got_value->cls == b.got_value->cls && a.got_value->gen == b.got_value->gen &&
                            a.got_value->gen2 == b.got_value->gen2 && a.got_value->file_id == b.got_value->file_id);
  };
  auto flush = [&] {
    if (pending) out.add(std::move(*pending), ctx.keep_per_class);
    pending.reset();
  };
  auto emit = [&](Finding f) {
    if (pending && alike(*pending, f)) {
      ++pending->blocks;
      return;
    }
    flush();
    pending = std::move(f);
  };
  OracleStats st;
  if (cut) {
    st.power_cut_ns = cut->start_ns;
    st.non_durable_ops = after->non_durable_ops();
  }
  auto post_cut = [&](const OpRecord& r) { return cut && r.start_ns > cut->start_ns; };
  auto base = [&](const OpRecord& r, uint32_t block, const std::string& cls) {
    Finding f = make_finding(cls, ctx.fs, ctx.scenario, ctx.case_name, post_cut(r) ? "after-power-cut" : phase_of(OpKind(r.kind)));
    f.file = before.file_name(r.file);
    f.block = block;
    f.time_ns = r.start_ns;
    f.ops.push_back(r);
    if (post_cut(r)) {
      f.ops.push_back(*cut);
      f.detail = "read after the power cut (writes dropped, journal replayed); only fsync'ed ops had to survive: ";
    }
    return f;
  };
  auto add_op = [&](Finding& f, uint64_t id) {
    if (const OpRecord* o = before.op(id)) f.ops.push_back(*o);
  };

  // verify round -> (file, block) -> value per verify kind, for the coherence check
  std::map<std::tuple<uint32_t, uint16_t, uint32_t>, std::map<OpKind, std::pair<BlockValue, size_t>>> rounds;

  for (size_t i = 0; i < d.ops.size(); ++i) {
    const OpRecord& r = d.ops[i];
    OpKind kind = OpKind(r.kind);
    if (op_kind_modifies(kind) || op_kind_shifts(kind)) ++st.modifying_ops;
    if (!op_kind_is_read(kind)) continue;
    ++st.reads_checked;
    if (post_cut(r)) {
      ++st.reads_after_cut;
      if (after->unjudged_after_cut(r.file)) {
        ++st.unjudged_after_cut;
        continue;
      }
    }
    const BlockModel& model = post_cut(r) ? *after : before;
    if (r.result >= 0 && model.size_changes(r.file)) {
      // The file's size changed during the race: a read may end at EOF only where some size current
      // during the read put it.
      auto ok = model.allowed_read_results(r.file, r.offset, r.length, r.start_ns, r.end_ns);
      uint64_t got = uint64_t(r.result);
      bool shorter = got < ok.back();
      if (std::find(ok.begin(), ok.end(), got) == ok.end() && !(shorter && ctx.short_reads_legal)) {
        Finding f = base(r, uint32_t((r.offset + got) / kBlockSize), shorter ? "lost-write" : "stale");
        f.got = fmt::format("{} of {} bytes", got, r.length);
        for (uint64_t n : ok)
          f.expected.push_back(n < r.length ? fmt::format("{} bytes (EOF at byte {})", n, r.offset + n)
                                            : fmt::format("{} bytes (all)", n));
        f.detail += shorter ? fmt::format("{} ended at byte {} although the file was longer throughout it",
                                         op_kind_name(kind), r.offset + got)
                           : fmt::format("{} returned data up to byte {}, past every EOF the file had during it",
                                         op_kind_name(kind), r.offset + got);
        emit(std::move(f));
      }
    }
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

      // A stamp of another block is foreign unless collapse / insert can have moved it here (checked below).
      bool moved = v.block != o.block && h && h->shifted;
      if (v.cls != BlockClass::kZero && v.file_id != 0 && (v.file_id != fid || (v.block != o.block && !moved))) {
        Finding f = base(r, o.block, "foreign");
        f.got = describe(v);
        f.got_value = v;
        f.detail += v.file_id != fid ? fmt::format("stamp of another file ({:#x}; this file is {:#x})", v.file_id, fid)
                                    : fmt::format("stamp of block {} of this file", v.block);
        if (h) f.expected = model.allowed_values(*h, rs, re);
        emit(std::move(f));
        continue;
      }
      if (!h) continue;  // block outside the modelled file
      switch (v.cls) {
        case BlockClass::kData: {
          const BlockModel::Mod* x = model.find_value(*h, v.gen, uint32_t(v.block), o.block, rs, re);
          const OpRecord* w = model.op(v.gen);
          auto same_block = [&] {  // did a shift ever move (some generation of) block v.block here?
            return std::any_of(h->mods.begin(), h->mods.end(), [&](const BlockModel::Mod& m) {
              return !m.punch && m.via && m.origin == v.block && m.start < re;
            });
          };
          if (!x && moved && w && w->start_ns < re && same_block()) {
            // Block v.block's data, moved here, but an older generation than any a shift can have moved.
            Finding f = base(r, o.block, "stale");
            f.got = describe(v);
            f.got_value = v;
            add_op(f, v.gen);
            f.detail += fmt::format("data op {} wrote at block {}, not among the values collapse / insert range can "
                                   "have moved here",
                                   v.gen, v.block);
            f.expected = model.allowed_values(*h, rs, re);
            emit(std::move(f));
            break;
          }
          if (!x) {
            Finding f = base(r, o.block, "foreign");
            f.got = describe(v);
            f.got_value = v;
            f.detail += v.block == o.block
                           ? fmt::format("op {} never wrote this block", v.gen)
                           : fmt::format("block {} as op {} wrote it, which no collapse / insert range moved here",
                                         v.block, v.gen);
            f.expected = model.allowed_values(*h, rs, re);
            emit(std::move(f));
            break;
          }
          if (model.allowed(*h, *x, rs, re)) break;
          if (x->start >= re) {
            Finding f = base(r, o.block, "foreign");
            f.got = describe(v);
            f.got_value = v;
            f.detail += fmt::format("data of op {} which started after the read ended", x->id);
            add_op(f, x->id);
            f.expected = model.allowed_values(*h, rs, re);
            emit(std::move(f));
            break;
          }
          const BlockModel::Mod* y = model.superseder(*h, x->end, rs);
          Finding f = base(r, o.block, y && y->punch ? "stale-after-punch" : "stale");
          f.got = describe(v);
          f.got_value = v;
          add_op(f, x->id);
          if (y && y->via) {  // the block's content was replaced by a collapse / insert range
            add_op(f, y->via);
            f.detail += fmt::format("{} op {} completed {} ns before the read started and moved {} here, after op {} ended",
                                   model.op(y->via) ? op_kind_name(OpKind(model.op(y->via)->kind)) : "shift", y->via,
                                   rs - y->end, y->punch ? "a hole" : fmt::format("data of op {}", y->id), x->via ? x->via : x->id);
          } else if (y) {
            add_op(f, y->id);
            const OpRecord* yop = model.op(y->id);
            if (const OpRecord* fs = post_cut(r) && yop ? model.durable_by(*yop) : nullptr) {
              f.ops.push_back(*fs);
              f.detail += fmt::format("{} ended {} before the cut; {} started after it and returned 0 {} before "
                                      "the cut, so it had to survive, yet {}'s older data came back",
                                      op_ref(yop, y->id), span_text(cut->start_ns - yop->end_ns), op_ref(fs, fs->id),
                                      span_text(cut->start_ns - fs->end_ns), op_ref(model.op(x->id), x->id));
            } else {
              f.detail += fmt::format("{} completed {} before the read started, after {} ended", op_ref(yop, y->id),
                                      span_text(rs - y->end), op_ref(model.op(x->id), x->id));
            }
          }
          f.expected = model.allowed_values(*h, rs, re);
          emit(std::move(f));
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
            const OpRecord* yop = model.op(y->id);
            if (const OpRecord* fs = post_cut(r) && yop ? model.durable_by(*yop) : nullptr) {
              f.ops.push_back(*fs);
              f.detail += fmt::format("{} ended {} before the cut; {} started after it and returned 0 {} before "
                                      "the cut, so it had to survive, yet the block reads as zeroes",
                                      op_ref(yop, y->id), span_text(cut->start_ns - yop->end_ns), op_ref(fs, fs->id),
                                      span_text(cut->start_ns - fs->end_ns));
            } else {
              f.detail += fmt::format("{} completed {} before the read started", op_ref(yop, y->id), span_text(rs - y->end));
            }
          }
          f.expected = model.allowed_values(*h, rs, re);
          emit(std::move(f));
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
          f.detail += quiescent(kind) ? "torn block while the file was quiescent"
                                     : "torn block although no write or punch overlapped the read";
          f.expected = model.allowed_values(*h, rs, re);
          emit(std::move(f));
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
      emit(std::move(f));
    }
  }
  flush();
  st.shifts = before.shifts();
  st.shift_conflicts = before.shift_conflicts();
  st.shift_races = before.shift_races();
  st.shift_races_by_kind = before.shift_races_by_kind();
  if (stats) *stats = st;
  return out;
}

}  // namespace fsrace
