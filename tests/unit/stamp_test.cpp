#include "core/stamp.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace fsrace;

namespace {
std::vector<char> block() { return std::vector<char>(kBlockSize, 0); }
}  // namespace

TEST(Stamp, RoundTrip) {
  auto b = block();
  stamp_encode(b.data(), 0x1234500000007ull, 42, (2ull << 40) | 99);
  BlockValue v = stamp_decode(b.data());
  EXPECT_EQ(v.cls, BlockClass::kData);
  EXPECT_EQ(v.file_id, 0x1234500000007ull);
  EXPECT_EQ(v.block, 42u);
  EXPECT_EQ(v.gen, (2ull << 40) | 99);
}

TEST(Stamp, ZeroBlockIsZero) {
  auto b = block();
  EXPECT_EQ(stamp_decode(b.data()).cls, BlockClass::kZero);
}

TEST(Stamp, DifferentInputsGiveDifferentPayloads) {
  auto a = block(), b = block();
  stamp_encode(a.data(), 1, 2, 3);
  stamp_encode(b.data(), 1, 2, 4);
  EXPECT_NE(std::memcmp(a.data() + 64, b.data() + 64, 400), 0);
}

TEST(Stamp, SingleBitFlipIsGarbage) {
  for (size_t off : {0ul, 17ul, 100ul, 511ul, 512ul + 300, kBlockSize - 1}) {
    auto b = block();
    stamp_encode(b.data(), 7, 8, 9);
    b[off] ^= 0x10;
    EXPECT_EQ(stamp_decode(b.data()).cls, BlockClass::kGarbage) << "offset " << off;
  }
}

TEST(Stamp, SectorsFromTwoWritesAreMixed) {
  auto a = block(), b = block();
  stamp_encode(a.data(), 7, 8, 100);
  stamp_encode(b.data(), 7, 8, 200);
  std::memcpy(a.data() + 2048, b.data() + 2048, 2048);  // torn at sector 4
  BlockValue v = stamp_decode(a.data());
  EXPECT_EQ(v.cls, BlockClass::kMixed);
  EXPECT_EQ(v.gen, 100u);
  EXPECT_EQ(v.gen2, 200u);
}

TEST(Stamp, PartlyZeroedIsMixed) {
  auto a = block();
  stamp_encode(a.data(), 7, 8, 100);
  std::memset(a.data() + 3584, 0, 512);
  BlockValue v = stamp_decode(a.data());
  EXPECT_EQ(v.cls, BlockClass::kMixed);
  EXPECT_EQ(v.gen2, ~0ull);
}

TEST(Stamp, TornInsideASectorIsGarbage) {
  auto a = block(), b = block();
  stamp_encode(a.data(), 7, 8, 100);
  stamp_encode(b.data(), 7, 8, 200);
  std::memcpy(a.data() + 256, b.data() + 256, 1024);  // tears sectors 0..2 mid-sector
  EXPECT_EQ(stamp_decode(a.data()).cls, BlockClass::kGarbage);
}

TEST(Stamp, MisplacedSectorIsGarbage) {
  auto a = block();
  stamp_encode(a.data(), 7, 8, 100);
  std::memcpy(a.data() + 512, a.data(), 512);  // sector 0 copied into slot 1
  EXPECT_EQ(stamp_decode(a.data()).cls, BlockClass::kGarbage);
}

TEST(Stamp, RandomBytesAreGarbage) {
  auto a = block();
  for (size_t i = 0; i < a.size(); ++i) a[i] = char(i * 131 + 7);
  EXPECT_EQ(stamp_decode(a.data()).cls, BlockClass::kGarbage);
}
