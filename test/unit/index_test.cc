#include <doctest/doctest.h>

#include <map>
#include <string>

#include "engine/index.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using lilcache::Index;

TEST_CASE("a slot packs a 24-bit tag and an 8-byte-aligned offset") {
  std::uint64_t h = 0xABCDEF0123456789ull;
  std::uint64_t v = Index::Pack(h, 4096 + 48);
  CHECK(Index::OffsetOf(v) == 4096 + 48);
  CHECK(Index::TagMatches(v, h));
  CHECK(!Index::TagMatches(v, h ^ (1ull << 63)));
  CHECK(Index::OffsetOf(Index::Pack(h, (1ull << 43) - 8)) == (1ull << 43) - 8);
}

TEST_CASE("index sizes are powers of two with room to spare") {
  CHECK(Index::SlotsFor(0) == 1024);
  CHECK(Index::SlotsFor(256) == 1024);
  CHECK(Index::SlotsFor(257) == 2048);
  CHECK(Index::SlotsFor(100'000) == 524288);
  CHECK(Index::SlotsFor(lilcache::kMaxSlots / 4) == lilcache::kMaxSlots);
  // A key count that would overflow is refused, not wrapped (fuzz_index).
  CHECK_THROWS_AS(Index::SlotsFor(lilcache::kMaxSlots / 4 + 1), lilcache::Error);
  CHECK_THROWS_AS(Index::SlotsFor(1ull << 62), lilcache::Error);
}

TEST_CASE("probing finds claimed keys, walks collisions, and reports a full table") {
  lilcache::test::TempDir dir;
  Index idx;
  idx.Create(lilcache::Env::Default(), dir.file("x.index"), 1, 1024);
  // Fake "records": the offset encodes which key it holds.
  std::map<std::uint64_t, int> key_at;  // offset -> key id
  auto find = [&](int key, std::uint64_t hash) {
    return idx.Find(hash, [&](std::uint64_t off) { return key_at[off] == key; });
  };
  // All keys share one home slot: a worst-case chain.
  const std::uint64_t hash = 0x5555000000000007ull;
  for (int k = 0; k < 1024; ++k) {
    auto p = find(k, hash);
    REQUIRE(!p.full);
    REQUIRE(p.value == 0);
    std::uint64_t off = 4096 + 8 * static_cast<std::uint64_t>(k);
    key_at[off] = k;
    std::uint64_t seen;
    REQUIRE(idx.Claim(p.pos, Index::Pack(hash, off), &seen));
  }
  CHECK(idx.used() == 1024);
  auto p = find(500, hash);
  CHECK(Index::OffsetOf(p.value) == 4096 + 8 * 500);
  CHECK(p.pos == ((7 + 500) & 1023));
  CHECK(find(5000, hash).full);
  std::uint64_t seen = 0;
  CHECK(!idx.Claim(p.pos, 1, &seen));
  CHECK(seen == p.value);
}

TEST_CASE("an index file reopens with its slots, and a wrong generation is refused") {
  lilcache::test::TempDir dir;
  {
    Index idx;
    idx.Create(lilcache::Env::Default(), dir.file("x.index"), 3, 2048);
    std::uint64_t seen;
    REQUIRE(idx.Claim(5, Index::Pack(5, 4096), &seen));
  }
  Index again;
  again.Open(lilcache::Env::Default(), dir.file("x.index"), 3);
  CHECK(again.slot_count() == 2048);
  CHECK(again.slot(5).load() == Index::Pack(5, 4096));
  Index wrong;
  CHECK_ERROR_CODE(wrong.Open(lilcache::Env::Default(), dir.file("x.index"), 4),
                   lilcache::ErrorCode::corrupt);
}
