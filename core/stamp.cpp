#include "core/stamp.h"

#include <cstring>
#include <fmt/core.h>

#include "core/util.h"

namespace fsrace {
namespace {

constexpr size_t kWords = kSectorSize / 8;

uint32_t sector_checksum(const uint64_t* w) {
  // 64-bit multiply-xor over the sector's words (csum field treated as zero), folded to 32 bits.
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < kWords; ++i) {
    uint64_t x = w[i];
    if (i == 4) x &= 0x00000000ffffffffull;  // word 4 = {sector, csum}: mask out csum
    h ^= x;
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return uint32_t(h ^ (h >> 32));
}

bool all_zero(const uint64_t* w, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= w[i];
  return acc == 0;
}

}  // namespace

const char* block_class_name(BlockClass c) {
  switch (c) {
    case BlockClass::kZero: return "zero";
    case BlockClass::kData: return "data";
    case BlockClass::kMixed: return "mixed";
    case BlockClass::kGarbage: return "garbage";
  }
  return "?";
}

void stamp_encode(void* out, uint64_t file_id, uint64_t block, uint64_t gen) {
  auto* w = static_cast<uint64_t*>(out);
  for (uint32_t s = 0; s < kSectorsPerBlock; ++s) {
    uint64_t* sw = w + s * kWords;
    SectorHeader h{kStampMagic, file_id, block, gen, s, 0};
    std::memcpy(sw, &h, sizeof h);
    uint64_t st = file_id * 0x9e3779b97f4a7c15ull ^ (block << 20) ^ (gen * 31) ^ s;
    for (size_t i = sizeof(SectorHeader) / 8; i < kWords; ++i) sw[i] = splitmix64(st);
    uint32_t c = sector_checksum(sw);
    std::memcpy(reinterpret_cast<char*>(sw) + offsetof(SectorHeader, csum), &c, sizeof c);
  }
}

BlockValue stamp_decode(const void* in) {
  const auto* w = static_cast<const uint64_t*>(in);
  BlockValue v;
  bool have = false, mixed = false, garbage = false, any_zero = false;
  for (uint32_t s = 0; s < kSectorsPerBlock; ++s) {
    const uint64_t* sw = w + s * kWords;
    SectorHeader h;
    std::memcpy(&h, sw, sizeof h);
    if (h.magic != kStampMagic || h.sector != s || sector_checksum(sw) != h.csum) {
      if (all_zero(sw, kWords)) {
        any_zero = true;
        continue;
      }
      garbage = true;
      continue;
    }
    if (!have) {
      have = true;
      v.file_id = h.file_id;
      v.block = h.block;
      v.gen = h.gen;
    } else if (h.file_id != v.file_id || h.block != v.block || h.gen != v.gen) {
      if (!mixed) v.gen2 = h.gen;
      mixed = true;
    }
  }
  if (garbage) {
    v.cls = BlockClass::kGarbage;
  } else if (!have) {
    v = BlockValue{};  // all sectors zero
  } else if (mixed || any_zero) {
    v.cls = BlockClass::kMixed;
    if (!mixed) v.gen2 = ~0ull;  // data + zero sectors
  } else {
    v.cls = BlockClass::kData;
  }
  return v;
}

std::string describe(const BlockValue& v) {
  switch (v.cls) {
    case BlockClass::kZero: return "zeroes";
    case BlockClass::kData:
      return fmt::format("data(file={:#x}, block={}, op={})", v.file_id, v.block, v.gen);
    case BlockClass::kMixed:
      if (v.gen2 == ~0ull)
        return fmt::format("mixed(op={} + zero sectors, file={:#x}, block={})", v.gen, v.file_id, v.block);
      return fmt::format("mixed(op={} + op={}, file={:#x}, block={})", v.gen, v.gen2, v.file_id, v.block);
    case BlockClass::kGarbage:
      return v.file_id ? fmt::format("garbage(partly op={}, file={:#x}, block={})", v.gen, v.file_id, v.block)
                       : "garbage";
  }
  return "?";
}

}  // namespace fsrace
