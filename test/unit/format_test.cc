// The on-disk format's one set of header validators (lib/format/*_header.h)
// and the one check of a record header (CheckRecordHeader): pure functions
// over bytes, the engine throwing their first finding and the inspector
// reporting all of them (docs/format.md).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "format/data_header.h"
#include "format/file_header.h"
#include "format/index_header.h"
#include "format/meta_header.h"
#include "format/record.h"
#include "lilcache/lilcache.h"

using namespace lilcache;

namespace {

template <typename Header>
Header& As(std::vector<char>& file) {
  return *reinterpret_cast<Header*>(file.data());
}

// A NAME.meta as Meta::Initialize writes it: generation 1, next_seq 1.
std::vector<char> GoodMeta() {
  std::vector<char> file(kMetaFileSize);
  auto& h = As<MetaHeader>(file);
  std::memcpy(h.magic, kMetaMagic, kMagicSize);
  h.version = kMetaVersion;
  h.header_size = kHeaderSize;
  h.salt = 42;
  h.generation = 1;
  h.next_seq = 1;
  return file;
}

std::vector<char> GoodData(std::uint64_t generation, std::uint64_t salt) {
  std::vector<char> file(kHeaderSize);
  auto& h = As<DataHeader>(file);
  std::memcpy(h.magic, kDataMagic, kMagicSize);
  h.version = kDataVersion;
  h.header_size = kHeaderSize;
  h.generation = generation;
  h.salt = salt;
  h.tail = kFirstRecordOffset;
  return file;
}

std::vector<char> GoodIndex(std::uint64_t generation, std::uint64_t slot_count) {
  std::vector<char> file(IndexFileSize(slot_count));
  auto& h = As<IndexHeader>(file);
  std::memcpy(h.magic, kIndexMagic, kMagicSize);
  h.version = kIndexVersion;
  h.header_size = kHeaderSize;
  h.generation = generation;
  h.slot_count = slot_count;
  return file;
}

HeaderFault First(const HeaderVerdict& v) {
  REQUIRE_FALSE(v.ok());
  return v.findings.front().fault;
}

}  // namespace

TEST_CASE("headers as the engine writes them pass their validators") {
  CHECK(CheckMetaHeader(GoodMeta()).ok());
  CHECK(CheckDataHeader(GoodData(3, 42), 3, 42).ok());
  CHECK(CheckIndexHeader(GoodIndex(3, kMinSlots), IndexFileSize(kMinSlots), 3).ok());
}

TEST_CASE("a file shorter than its header is kTooShort, unreadable, and no byte of it is read") {
  const HeaderVerdict v = CheckDataHeader(std::span<const char>(), 1, 42);
  CHECK(First(v) == HeaderFault::kTooShort);
  CHECK_FALSE(v.readable());
  CHECK(v.findings.front().reason == "0 bytes, shorter than its 4096-byte header");
  CHECK(v.ErrorText("/r/t.1.data") ==
        "not a lilcache log: /r/t.1.data: 0 bytes, shorter than its 4096-byte header");
  std::vector<char> meta = GoodMeta();
  CHECK(First(CheckMetaHeader(std::span<const char>(meta).first(100))) == HeaderFault::kTooShort);
}

TEST_CASE("a bad magic number stops the check: not a lilcache file of that kind") {
  std::vector<char> meta = GoodMeta();
  meta[0] = 'X';
  const HeaderVerdict v = CheckMetaHeader(meta);
  REQUIRE(v.findings.size() == 1);
  CHECK(First(v) == HeaderFault::kBadMagic);
  CHECK_FALSE(v.readable());
  CHECK(v.findings.front().reason ==
        "bad magic number: not a lilcache meta file (or never initialized)");
  CHECK(v.ErrorText("/r/t.meta") == "not a lilcache meta file: /r/t.meta has a bad magic number");
  // A log is not an index.
  CHECK(First(CheckIndexHeader(GoodData(1, 42), kHeaderSize, 1)) == HeaderFault::kBadMagic);
  CHECK_THROWS_WITH_AS(v.ThrowIfBad("/r/t.meta"),
                       "not a lilcache meta file: /r/t.meta has a bad magic number", Error);
}

TEST_CASE("another format version is refused with the version found and the one read") {
  std::vector<char> data = GoodData(1, 42);
  As<DataHeader>(data).version = 3;
  const HeaderVerdict v = CheckDataHeader(data, 1, 42);
  CHECK(First(v) == HeaderFault::kBadVersion);
  CHECK_FALSE(v.readable());
  CHECK(v.findings.front().reason == "format version 3; this lilcache reads 6");
  CHECK(v.ErrorText("/r/t.1.data") ==
        "unsupported format version 3 in /r/t.1.data (this lilcache reads version 6)");
}

TEST_CASE("a meta file is checked for its fixed size, its header_size and its values") {
  SUBCASE("not its fixed size: kBadSize") {
    std::vector<char> meta = GoodMeta();
    meta.resize(kMetaFileSize + 1);
    CHECK(First(CheckMetaHeader(meta)) == HeaderFault::kBadSize);
    CHECK(CheckMetaSize(16).ErrorText("/r/t.meta") ==
          "not a lilcache meta file: /r/t.meta: size 16 bytes, expected 135168");
    CHECK(CheckMetaSize(kMetaFileSize).ok());
  }
  SUBCASE("header_size other than 4096: kBadField, unreadable") {
    std::vector<char> meta = GoodMeta();
    As<MetaHeader>(meta).header_size = 512;
    const HeaderVerdict v = CheckMetaHeader(meta);
    CHECK(First(v) == HeaderFault::kBadField);
    CHECK_FALSE(v.readable());
    CHECK(v.ErrorText("/r/t.meta") == "corrupt meta file /r/t.meta: header_size 512");
  }
  SUBCASE("generation 0 and a purge mark at next_seq: kBadValue, each reported, still readable") {
    std::vector<char> meta = GoodMeta();
    As<MetaHeader>(meta).generation = 0;
    As<MetaHeader>(meta).next_seq = 5;
    As<MetaHeader>(meta).purge_seq = 5;
    const HeaderVerdict v = CheckMetaHeader(meta);
    REQUIRE(v.findings.size() == 2);
    CHECK(v.findings[0].reason == "generation 0");
    CHECK(v.findings[1].reason == "purge mark 5 is not below the next sequence number 5");
    CHECK(v.readable());
    CHECK(v.ErrorText("/r/t.meta") == "corrupt meta file /r/t.meta: generation 0");
  }
  SUBCASE("next_seq 0 or beyond 2^63: kBadValue") {
    for (std::uint64_t bad : {std::uint64_t{0}, record::kMaxSeq + 2}) {
      std::vector<char> meta = GoodMeta();
      As<MetaHeader>(meta).next_seq = bad;
      const HeaderVerdict v = CheckMetaHeader(meta);
      CHECK(First(v) == HeaderFault::kBadValue);
      CHECK(v.findings.front().reason ==
            "next sequence number " + std::to_string(bad) + " is out of range");
    }
    std::vector<char> meta = GoodMeta();
    As<MetaHeader>(meta).next_seq = record::kMaxSeq + 1;  // every seq used: readable, not writable
    CHECK(CheckMetaHeader(meta).ok());
  }
}

TEST_CASE("a log of another generation or cache: both findings, still readable") {
  const HeaderVerdict v = CheckDataHeader(GoodData(2, 7), 1, 42);
  REQUIRE(v.findings.size() == 2);
  CHECK(v.findings[0].fault == HeaderFault::kWrongGeneration);
  CHECK(v.findings[1].fault == HeaderFault::kWrongSalt);
  CHECK(v.readable());
  CHECK(v.ErrorText("/r/t.1.data") ==
        "corrupt log /r/t.1.data: it says generation 2, its name says 1");
}

TEST_CASE("each kind of file carries the version at which its layout last changed") {
  // docs/format.md, version 7: the meta file (durable_gen) and the index changed.
  CHECK(kFormatVersion == 7);
  CHECK(VersionOf(FileKind::kMeta) == 7);
  CHECK(VersionOf(FileKind::kData) == 6);
  CHECK(VersionOf(FileKind::kIndex) == 7);
  CHECK(CheckMetaHeader(GoodMeta()).ok());
  std::vector<char> index = GoodIndex(1, kMinSlots);
  As<IndexHeader>(index).version = 6;
  const HeaderVerdict v = CheckIndexHeader(index, index.size(), 1);
  CHECK(First(v) == HeaderFault::kBadVersion);
  CHECK(v.ErrorText("/r/t.1.index") ==
        "unsupported format version 6 in /r/t.1.index (this lilcache reads version 7)");
}

TEST_CASE(
    "an index needs a slot count of whole pages of slots in range and the bytes to hold them") {
  SUBCASE("any multiple of 512 slots in range, power of two or not") {
    for (std::uint64_t n : {1024ull, 1536ull, 2560ull, 182'272ull}) {
      CAPTURE(n);
      std::vector<char> index = GoodIndex(1, n);
      CHECK(CheckIndexHeader(index, index.size(), 1).ok());
    }
  }
  SUBCASE("a slot count that is not a multiple of 512") {
    std::vector<char> index = GoodIndex(1, kMinSlots);
    As<IndexHeader>(index).slot_count = 1000;
    const HeaderVerdict v = CheckIndexHeader(index, index.size(), 1);
    CHECK(First(v) == HeaderFault::kBadField);
    CHECK_FALSE(v.readable());
    CHECK(v.ErrorText("/r/t.1.index") == "corrupt index /r/t.1.index: bad slot count 1000");
  }
  SUBCASE("fewer than kMinSlots") {
    std::vector<char> index = GoodIndex(1, kMinSlots);
    As<IndexHeader>(index).slot_count = kMinSlots / 2;
    CHECK(First(CheckIndexHeader(index, index.size(), 1)) == HeaderFault::kBadField);
    As<IndexHeader>(index).slot_count = 0;
    CHECK(First(CheckIndexHeader(index, index.size(), 1)) == HeaderFault::kBadField);
  }
  SUBCASE("more than kMaxSlots") {
    std::vector<char> index = GoodIndex(1, kMinSlots);
    As<IndexHeader>(index).slot_count = kMaxSlots + 512;
    CHECK(First(CheckIndexHeader(index, ~0ull, 1)) == HeaderFault::kBadField);
  }
  SUBCASE("a file cut in the middle of its slots") {
    std::vector<char> index = GoodIndex(1, kMinSlots);
    const HeaderVerdict v = CheckIndexHeader(index, index.size() - 8, 1);
    CHECK(First(v) == HeaderFault::kBadField);
    CHECK(v.findings.front().reason == "truncated: 12280 bytes hold fewer than 1024 slots");
  }
  SUBCASE("another generation, then a bad slot count: both reported") {
    std::vector<char> index = GoodIndex(2, kMinSlots);
    As<IndexHeader>(index).slot_count = 3;
    const HeaderVerdict v = CheckIndexHeader(index, index.size(), 1);
    REQUIRE(v.findings.size() == 2);
    CHECK(v.findings[0].fault == HeaderFault::kWrongGeneration);
    CHECK(v.findings[1].fault == HeaderFault::kBadField);
  }
}

TEST_CASE("an index file is its header then 8-byte slots, page aligned for every slot count") {
  CHECK(IndexFileSize(kMinSlots) == kHeaderSize + kMinSlots * 8);
  CHECK(IndexFileSize(kMinSlots) % kHeaderSize == 0);
  const std::uint64_t hash = 0xABCDEF0123456789ull;
  const std::uint64_t slot = PackSlot(hash, 4096 + 48);
  CHECK(SlotOffset(slot) == 4096 + 48);
  CHECK(SlotTagMatches(slot, hash));
  CHECK_FALSE(SlotTagMatches(slot, hash ^ (1ull << 63)));
}

TEST_CASE("CheckRecordHeader is CheckRecord's verdict short of the bounds and the checksum") {
  using namespace lilcache::record;
  std::vector<char> buf(RecordSize(1, 1));
  EncodeRecord({RecordType::kSet, "a", "b", 1, 0}, 42, buf);
  auto& h = *reinterpret_cast<RecordHeader*>(buf.data());
  CHECK(CheckRecordHeader(h) == Damage::kNone);
  SUBCASE("the checksum is not its business") {
    h.checksum ^= 1;
    CHECK(CheckRecordHeader(h) == Damage::kNone);
    CHECK(CheckRecord(buf, 0, 42, nullptr) == Damage::kBadChecksum);
  }
  SUBCASE("a bad magic") {
    h.magic ^= 1;
    CHECK(CheckRecordHeader(h) == Damage::kBadMagic);
    CHECK(CheckRecord(buf, 0, 42, nullptr) == Damage::kBadMagic);
  }
  SUBCASE("impossible fields") {
    SUBCASE("type") { h.type = 3; }
    SUBCASE("a flag other than ABORTED and KIND") { h.flags = 8; }
    SUBCASE("a tombstone with a KIND") {
      h.type = static_cast<std::uint8_t>(RecordType::kTombstone);
      h.value_len = 0;
      h.flags = 2;
    }
    SUBCASE("reserved") { h.reserved = 1; }
    SUBCASE("an empty key") { h.key_len = 0; }
    SUBCASE("a key over kMaxKeyBytes") { h.key_len = kMaxKeyBytes + 1; }
    SUBCASE("a value over kMaxValueBytes") { h.value_len = kMaxValueBytes + 1; }
    SUBCASE("a seq of 2^63") { h.seq = kMaxSeq + 1; }
    SUBCASE("a tombstone with a value") {
      h.type = static_cast<std::uint8_t>(RecordType::kTombstone);
    }
    CHECK(CheckRecordHeader(h) == Damage::kBadHeader);
    CHECK(CheckRecord(buf, 0, 42, nullptr) == Damage::kBadHeader);
  }
}
