// Block stamps: every 4 KiB block fsrace writes says which file, which block and which write op
// (generation) produced it, with a checksum per 512-byte sector, so any block read back is
// classified without ambiguity: zeroes, one intact stamp, a mix of stamps (torn), or garbage.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fsrace {

inline constexpr size_t kBlockSize = 4096;
inline constexpr size_t kSectorSize = 512;
inline constexpr size_t kSectorsPerBlock = kBlockSize / kSectorSize;
inline constexpr uint64_t kStampMagic = 0x5453524341525346ull;  // "FSRACRST" little-endian

// Layout of the first 40 bytes of every sector; the other 472 bytes are a pattern derived from
// (file_id, block, gen, sector) and covered by the checksum.
struct SectorHeader {
  uint64_t magic;
  uint64_t file_id;
  uint64_t block;
  uint64_t gen;  // op id of the write that produced the block
  uint32_t sector;
  uint32_t csum;  // checksum of the whole sector with this field zero
};
static_assert(sizeof(SectorHeader) == 40);

enum class BlockClass : uint8_t {
  kZero = 0,     // all bytes zero (a hole or a punched range)
  kData = 1,     // all sectors intact and of one (file, block, gen)
  kMixed = 2,    // every sector intact or zero, but not all the same stamp (torn at sector level)
  kGarbage = 3,  // at least one sector is neither a valid stamp nor zero
};

const char* block_class_name(BlockClass c);

struct BlockValue {
  BlockClass cls = BlockClass::kZero;
  uint64_t file_id = 0;  // of the first intact sector (kData / kMixed)
  uint64_t block = 0;
  uint64_t gen = 0;
  uint64_t gen2 = 0;  // kMixed: a second, different generation (or ~0 for a zero sector)
  bool operator==(const BlockValue&) const = default;
};

// Fills `out` (kBlockSize bytes) with the stamp of (file_id, block, gen).
void stamp_encode(void* out, uint64_t file_id, uint64_t block, uint64_t gen);

// Classifies a block read back.
BlockValue stamp_decode(const void* in);

// Human-readable form, e.g. "data(file=0x..., block=12, op=4711)".
std::string describe(const BlockValue& v);

}  // namespace fsrace
