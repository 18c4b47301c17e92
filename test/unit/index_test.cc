#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "engine/builder.h"
#include "engine/index.h"
#include "format/record.h"
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

TEST_CASE("index sizes are whole pages of slots at a load of at most 0.55") {
  using lilcache::kMaxSlots;
  using lilcache::kSlotsPerPage;
  CHECK(kSlotsPerPage == 512);
  CHECK(Index::SlotsFor(0) == 1024);
  CHECK(Index::SlotsFor(563) == 1024);  // 563 / 0.55 = 1023.6
  CHECK(Index::SlotsFor(564) == 1536);  // 1025.5: the next page, not the next power of two
  CHECK(Index::SlotsFor(100'000) == 182'272);
  for (std::uint64_t keys = 1; keys < 3'000'000; keys = keys * 3 / 2 + 1) {
    CAPTURE(keys);
    const std::uint64_t slots = Index::SlotsFor(keys);
    CHECK(slots % kSlotsPerPage == 0);
    CHECK(static_cast<double>(keys) <= Index::kSizingLoad * static_cast<double>(slots));
    CHECK(slots < (keys + 1) * 20 / 11 + kSlotsPerPage + 1024);  // no more than needed
  }
  // The target of issue 16: at most 16 bytes of index file per key, 100k to 10M keys.
  for (std::uint64_t keys = 100'000; keys <= 10'000'000; keys += 99'991) {
    CAPTURE(keys);
    CHECK(lilcache::IndexFileSize(Index::SlotsFor(keys)) <= 16 * keys);
  }
  CHECK(Index::SlotsFor(kMaxSlots / 20 * 11) <= kMaxSlots);
  // A key count that would overflow is refused, not wrapped (fuzz_index).
  CHECK_THROWS_AS(Index::SlotsFor(kMaxSlots / 20 * 11 + 1), lilcache::Error);
  CHECK_THROWS_AS(Index::SlotsFor(1ull << 62), lilcache::Error);
  CHECK_THROWS_AS(Index::SlotsFor(~0ull), lilcache::Error);
}

TEST_CASE("an index grows past 3/4 full, to more slots than it had, and a new one is not crowded") {
  CHECK_FALSE(Index::NeedsGrowth(768, 1024));
  CHECK(Index::NeedsGrowth(769, 1024));
  CHECK_FALSE(Index::TooFullToBuild(819, 1024));
  CHECK(Index::TooFullToBuild(820, 1024));
  for (std::uint64_t slots = lilcache::kMinSlots; slots < 20'000'000;
       slots = slots * 5 / 4 / 512 * 512 + 512) {
    CAPTURE(slots);
    // The first key count that asks for growth gets a larger index from SlotsFor...
    const std::uint64_t trigger = slots * 3 / 4 + 1;
    REQUIRE(Index::NeedsGrowth(trigger, slots));
    CHECK_FALSE(Index::NeedsGrowth(trigger - 1, slots));
    CHECK(Index::SlotsFor(trigger) > slots);
    // ... and a builder may take in more keys than it was sized for before it gives up.
    CHECK_FALSE(Index::TooFullToBuild(trigger, slots));
    // A growth (GrownSlots) leaves the keys that asked for it at most 16 B
    // of slots each, and room for every key the old index can take (it
    // holds `slots` at most) without asking for growth again.
    const std::uint64_t grown = Index::GrownSlots(slots);
    CHECK(grown % lilcache::kSlotsPerPage == 0);
    CHECK(grown > slots);
    if (slots >= 4096) CHECK(grown * 8 <= 16 * trigger);  // 1,536 -> 2,560: 17.8 B
    CHECK_FALSE(Index::NeedsGrowth(slots, grown));
    CHECK_FALSE(Index::TooFullToBuild(slots, grown));
  }
  CHECK(Index::GrownSlots(lilcache::kMaxSlots) == lilcache::kMaxSlots);
  CHECK(Index::GrownSlots(lilcache::kMaxSlots / 4 * 3) == lilcache::kMaxSlots);
  for (std::uint64_t keys = 0; keys < 5'000'000; keys = keys * 3 / 2 + 7) {
    CAPTURE(keys);
    const std::uint64_t slots = Index::SlotsFor(keys);
    CHECK_FALSE(Index::NeedsGrowth(keys, slots));
    // Room for a third more keys during a compaction's catch-up.
    CHECK_FALSE(Index::TooFullToBuild(keys + keys / 3, slots));
  }
}

TEST_CASE("a key's home scales the low 32 bits of its hash to any slot count, not its tag bits") {
  using lilcache::IndexHome;
  for (std::uint64_t n :
       std::initializer_list<std::uint64_t>{1024, 1536, 182'272, lilcache::kMaxSlots}) {
    CAPTURE(n);
    CHECK(IndexHome(0, n) == 0);
    CHECK(IndexHome(0xFFFF'FFFFull, n) == n - 1);
    CHECK(IndexHome(0xFFFF'FFFF'0000'0000ull, n) == 0);  // the high bits play no part
    const std::uint64_t h = 0x0123'4567'89AB'CDEFull;
    CHECK(IndexHome(h ^ (0xFF'FFFFull << 40), n) == IndexHome(h, n));  // nor the tag
  }
  // Uniform over a count that is not a power of two: 100 hashes per slot on average.
  constexpr std::uint64_t kN = 1536;
  std::vector<int> hits(kN);
  std::uint64_t x = 42;
  for (std::uint64_t i = 0; i < kN * 100; ++i) {
    x += 0x9E37'79B9'7F4A'7C15ull;  // splitmix64
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58'476D'1CE4'E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D0'49BB'1331'11EBull;
    ++hits[IndexHome(z ^ (z >> 31), kN)];
  }
  CHECK(*std::min_element(hits.begin(), hits.end()) > 50);
  CHECK(*std::max_element(hits.begin(), hits.end()) < 150);
  // The last third of the table gets its share (a mask of 1,024 would never reach it).
  CHECK(std::accumulate(hits.begin() + 1024, hits.end(), 0) > 100 * 512 * 9 / 10);
}

TEST_CASE(
    "probing finds claimed keys, walks collisions, wraps at the end, and reports a full table") {
  for (std::uint64_t n : {1024ull, 1536ull}) {
    CAPTURE(n);
    lilcache::test::TempDir dir;
    Index idx;
    idx.Create(lilcache::Env::Default(), dir.file("x.index"), 1, n);
    CHECK(idx.slot_count() == n);
    // Fake "records": the offset encodes which key it holds.
    std::map<std::uint64_t, std::uint64_t> key_at;  // offset -> key id
    auto find = [&](std::uint64_t key, std::uint64_t hash) {
      return idx.Find(hash, [&](std::uint64_t off) { return key_at[off] == key; });
    };
    // All keys share one home slot, the table's last: a worst-case chain
    // that wraps to slot 0 at once.
    const std::uint64_t hash = 0x5555'0000'FFFF'FFFFull;
    REQUIRE(lilcache::IndexHome(hash, n) == n - 1);
    for (std::uint64_t k = 0; k < n; ++k) {
      auto p = find(k, hash);
      REQUIRE(!p.full);
      REQUIRE(p.value == 0);
      REQUIRE(p.pos == (k == 0 ? n - 1 : k - 1));
      std::uint64_t off = 4096 + 8 * k;
      key_at[off] = k;
      std::uint64_t seen;
      REQUIRE(idx.Claim(p.pos, Index::Pack(hash, off), &seen));
    }
    CHECK(idx.used() == n);
    auto p = find(500, hash);
    CHECK(Index::OffsetOf(p.value) == 4096 + 8 * 500);
    CHECK(p.pos == 499);
    CHECK(find(0, hash).pos == n - 1);
    CHECK(find(n - 1, hash).pos == n - 2);  // the whole table walked, around the end
    CHECK(find(5000, hash).full);           // bounded: every slot once, then full
    CHECK(find(5000, hash).value == 0);
    std::uint64_t seen = 0;
    CHECK(!idx.Claim(p.pos, 1, &seen));
    CHECK(seen == p.value);
  }
}

TEST_CASE("an index refuses slot counts that are not whole pages of slots in range") {
  lilcache::test::TempDir dir;
  for (std::uint64_t n : std::initializer_list<std::uint64_t>{0, 512, 1000, 1025, 1536 + 8,
                                                              lilcache::kMaxSlots + 512}) {
    CAPTURE(n);
    Index idx;
    CHECK_ERROR_CODE(idx.Create(lilcache::Env::Default(), dir.file("x.index"), 1, n),
                     lilcache::ErrorCode::invalid_argument);
  }
}

TEST_CASE("an index file reopens with its slots, and a wrong generation is refused") {
  lilcache::test::TempDir dir;
  {
    Index idx;
    idx.Create(lilcache::Env::Default(), dir.file("x.index"), 3, 2560);
    std::uint64_t seen;
    REQUIRE(idx.Claim(5, Index::Pack(5, 4096), &seen));
  }
  Index again;
  again.Open(lilcache::Env::Default(), dir.file("x.index"), 3);
  CHECK(again.slot_count() == 2560);
  CHECK(again.slot(5).load() == Index::Pack(5, 4096));
  Index wrong;
  CHECK_ERROR_CODE(wrong.Open(lilcache::Env::Default(), dir.file("x.index"), 4),
                   lilcache::ErrorCode::corrupt);
}

namespace {

struct FileSizes {
  std::uint64_t size = 0;       // st_size
  std::uint64_t allocated = 0;  // st_blocks * 512
};

FileSizes SizesOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return {static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_blocks) * 512};
}

}  // namespace

TEST_CASE("a new generation's log gets its live data plus an eighth, within kMaxDataBytes") {
  using lilcache::NewDataCapacity;
  CHECK(NewDataCapacity(0) == 4096);
  CHECK(NewDataCapacity(8 << 20) == (8 << 20) + 4096 + (1 << 20));
  CHECK(NewDataCapacity(lilcache::kMaxDataBytes - 4096) == lilcache::kMaxDataBytes);
  CHECK(NewDataCapacity(lilcache::kMaxDataBytes / 2) == lilcache::kMaxDataBytes / 16 * 9 + 4096);
  CHECK(NewDataCapacity(lilcache::kMaxDataBytes / 10 * 9) == lilcache::kMaxDataBytes);
}

TEST_CASE(
    "after a compaction of keys overwritten many times, the index takes at most 16 bytes per key "
    "and both files at most 1.5 x the live data + 1 MiB") {
  // Issue 16, target 4: the index was sized for its peak (262,144 slots for
  // 19,000 keys: 110 B per key) and never shrank.
  lilcache::test::TempDir dir;
  auto c = lilcache::Cache::open("t", {.root = dir.path()});
  constexpr int kKeys = 20'000;
  const std::string value(100, 'v');
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < kKeys; ++i) c.set("key" + std::to_string(i), value + std::to_string(round));
  }
  const lilcache::CompactionResult r = c.compact();
  REQUIRE(r.compacted);
  const lilcache::Stats st = c.stats();
  REQUIRE(st.keys == kKeys);
  REQUIRE(st.generation == r.generation);
  CAPTURE(st.index_slots);
  CAPTURE(st.bytes_live);
  CHECK(st.index_used == kKeys);
  CHECK(lilcache::IndexFileSize(st.index_slots) <= 16 * st.keys);
  const std::string gen = std::to_string(st.generation);
  const FileSizes data = SizesOf(dir.file("t." + gen + ".data"));
  const FileSizes index = SizesOf(dir.file("t." + gen + ".index"));
  CHECK(index.size == lilcache::IndexFileSize(st.index_slots));
  const std::uint64_t limit = st.bytes_live / 2 * 3 + (1 << 20);
  CAPTURE(data.size);
  CAPTURE(index.size);
  CHECK(data.size + index.size <= limit);
  CHECK(data.allocated + index.allocated <= limit);
  // And the files still hold room for writes: the next ones do not grow the log.
  for (int i = 0; i < 100; ++i) c.set("key" + std::to_string(i), value);
  CHECK(SizesOf(dir.file("t." + gen + ".data")).size == data.size);
}

TEST_CASE("a compaction after most keys were deleted shrinks the index to the keys left") {
  lilcache::test::TempDir dir;
  auto c = lilcache::Cache::open("t", {.root = dir.path()});
  for (int i = 0; i < 20'000; ++i) c.set("key" + std::to_string(i), "v");
  REQUIRE(c.compact().compacted);
  const std::uint64_t big = c.stats().index_slots;
  CHECK(big == Index::SlotsFor(20'000));
  for (int i = 1'000; i < 20'000; ++i) REQUIRE(c.erase("key" + std::to_string(i)));
  REQUIRE(c.compact().compacted);
  const lilcache::Stats st = c.stats();
  CHECK(st.keys == 1'000);
  CHECK(st.index_slots == Index::SlotsFor(1'000));
  CHECK(st.index_slots < big / 10);
  for (int i = 0; i < 1'000; ++i) CHECK(c.get("key" + std::to_string(i)) == "v");
  CHECK_FALSE(c.get("key1000").has_value());
}

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

template <typename T>
T Get(const std::string& b, std::size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

template <typename T>
void Put(std::string& b, std::size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

}  // namespace

TEST_CASE("an index of format version 6 is rebuilt from the log at open, not refused") {
  // docs/format.md, version 7: an index is derived data. A version 6 index
  // (a power of two of slots, homes at h & (n - 1)) as the last release wrote it.
  constexpr std::size_t kVersion = 8, kSlotCount = 24, kSalt = 16;  // docs/format.md
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 300; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
    REQUIRE(c.stats().generation == 1);
    REQUIRE(c.stats().index_slots == 1024);
  }
  const std::uint64_t salt = Get<std::uint64_t>(ReadAll(dir.file("t.meta")), kSalt);
  const std::string data = ReadAll(dir.file("t.1.data"));
  std::string index = ReadAll(dir.file("t.1.index"));
  REQUIRE(Get<std::uint32_t>(index, kVersion) == 7);
  std::vector<std::uint64_t> slots;
  for (std::uint64_t i = 0; i < 1024; ++i) {
    const auto v = Get<std::uint64_t>(index, lilcache::IndexSlotOffset(i));
    if (v != 0) slots.push_back(v);
    Put<std::uint64_t>(index, lilcache::IndexSlotOffset(i), 0);
  }
  REQUIRE(slots.size() == 300);
  std::uint64_t moved = 0;
  for (std::uint64_t v : slots) {
    const std::uint64_t off = Index::OffsetOf(v);
    const auto key_len = Get<std::uint32_t>(data, off + 16);  // docs/format.md, "Record"
    const std::uint64_t h = lilcache::record::HashKey(data.substr(off + 40, key_len), salt);
    std::uint64_t pos = h & 1023;
    while (Get<std::uint64_t>(index, lilcache::IndexSlotOffset(pos)) != 0) pos = (pos + 1) & 1023;
    Put<std::uint64_t>(index, lilcache::IndexSlotOffset(pos), v);
    if (pos != lilcache::IndexHome(h, 1024)) ++moved;
  }
  REQUIRE(moved > 250);  // read as version 7, most keys would be missed
  Put<std::uint32_t>(index, kVersion, 6);
  REQUIRE(Get<std::uint64_t>(index, kSlotCount) == 1024);
  WriteAll(dir.file("t.1.index"), index);

  {
    auto c = lilcache::Cache::open("t", {.root = dir.path()});
    CHECK(c.stats().generation == 2);  // replayed into a new generation, a version 7 index
    CHECK(c.size() == 300);
    for (int i = 0; i < 300; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
    c.set("after", "works");
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("t.1.index")));
  CHECK(Get<std::uint32_t>(ReadAll(dir.file("t.2.index")), kVersion) == 7);
  auto c = lilcache::Cache::open("t", {.root = dir.path()});
  CHECK(c.get("after") == "works");
  CHECK(c.stats().generation == 2);
}
