#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "format/record.h"

using namespace lilcache::record;

namespace {
std::vector<char> Encode(const NewRecord& r, std::uint64_t salt = 42) {
  std::vector<char> buf(RecordSize(r.key.size(), r.value.size()));
  EncodeRecord(r, salt, buf);
  return buf;
}
}  // namespace

TEST_CASE("a record encodes to the documented layout and decodes back") {
  auto buf = Encode({RecordType::kSet, "a", "b", 1, 0});
  REQUIRE(buf.size() == 48);  // docs/format.md worked example
  RecordView v;
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(v.key() == "a");
  CHECK(v.value() == "b");
  CHECK(v.seq() == 1);
  CHECK(v.expires_ms() == 0);
  CHECK(!v.is_tombstone());
  CHECK(std::string(buf.data() + 8, 4) == "LCRC");
  CHECK(buf[12] == 1);
  CHECK(buf[40] == 'a');
  CHECK(buf[41] == 'b');
  for (int i = 42; i < 48; ++i) CHECK(buf[i] == 0);
}

TEST_CASE("keys and values are arbitrary bytes, NULs included") {
  std::string key("k\0\xff", 3), value("\0\0v\x80", 4);
  auto buf = Encode({RecordType::kSet, key, value, 7, 123});
  RecordView v;
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(v.key() == key);
  CHECK(v.value() == value);
  CHECK(v.expires_ms() == 123);
}

TEST_CASE("any flipped bit is caught by the checksum or the header check") {
  auto good = Encode({RecordType::kSet, "key", "value-bytes", 9, 0});
  for (std::size_t byte = 0; byte < 40 + 3 + 11; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      CAPTURE(byte);
      CHECK(CheckRecord(bad, 0, 42, nullptr) != Damage::kNone);
    }
  }
}

TEST_CASE("a record whose sequence number is beyond 2^63 - 1 is not valid") {
  // Found by test/fuzz/fuzz_recovery: a replay of a log holding such a record
  // set next_seq past 2^64 - 1, to 0, and the writes after it were lost.
  CHECK(CheckRecord(Encode({RecordType::kSet, "k", "v", kMaxSeq, 0}), 0, 42, nullptr) ==
        Damage::kNone);
  CHECK(CheckRecord(Encode({RecordType::kSet, "k", "v", kMaxSeq + 1, 0}), 0, 42, nullptr) ==
        Damage::kBadHeader);
  CHECK(CheckRecord(Encode({RecordType::kSet, "k", "v", ~0ull, 0}), 0, 42, nullptr) ==
        Damage::kBadHeader);
}

TEST_CASE("a record checked with another salt fails") {
  auto buf = Encode({RecordType::kSet, "k", "v", 1, 0}, 1);
  CHECK(CheckRecord(buf, 0, 2, nullptr) == Damage::kBadChecksum);
}

TEST_CASE("a record cut short is reported truncated, never read past the region") {
  auto buf = Encode({RecordType::kSet, "key", std::string(100, 'x'), 1, 0});
  for (std::size_t n = 0; n < buf.size(); ++n) {
    CAPTURE(n);
    CHECK(CheckRecord(std::span<const char>(buf.data(), n), 0, 42, nullptr) == Damage::kTruncated);
  }
}

TEST_CASE("zeros are not a record, and tombstones carry no value") {
  std::vector<char> zeros(64, 0);
  CHECK(CheckRecord(zeros, 0, 42, nullptr) == Damage::kBadMagic);
  auto t = Encode({RecordType::kTombstone, "k", "", 3, 0});
  RecordView v;
  REQUIRE(CheckRecord(t, 0, 42, &v) == Damage::kNone);
  CHECK(v.is_tombstone());
}

TEST_CASE("the key hash depends on the key and the salt") {
  CHECK(HashKey("a", 1) != HashKey("b", 1));
  CHECK(HashKey("a", 1) != HashKey("a", 2));
  CHECK(HashKey("a", 1) == HashKey("a", 1));
}

TEST_CASE("a scan resynchronizes past holes and torn records, losing only them") {
  auto a = Encode({RecordType::kSet, "a", "1", 1, 0});
  auto b = Encode({RecordType::kSet, "b", "2", 2, 0});
  auto torn = Encode({RecordType::kSet, "t", std::string(50, 'x'), 3, 0});
  torn[0] = static_cast<char>(torn[0] ^ 1);  // checksum no longer matches
  std::vector<char> log;
  log.insert(log.end(), a.begin(), a.end());
  log.insert(log.end(), 64, 0);  // a hole: space reserved, never written
  log.insert(log.end(), torn.begin(), torn.end());
  log.insert(log.end(), b.begin(), b.end());
  std::vector<std::string> keys;
  std::uint64_t damaged = ForEachValidRecord(
      log, 0, log.size(), 42, [&](std::uint64_t, RecordView r) { keys.emplace_back(r.key()); });
  CHECK(keys == std::vector<std::string>{"a", "b"});
  CHECK(damaged == 1);
}

TEST_CASE("an aborted record stays valid with flag ABORTED and a new checksum") {
  auto buf = Encode({RecordType::kSet, "k", "value", 7, 0});
  RecordView v;
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(!v.is_aborted());
  const std::uint64_t before = v.header->checksum;
  MarkAborted(buf, 42);
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(v.is_aborted());
  CHECK(buf[13] == kFlagAborted);  // the flags byte (docs/format.md)
  CHECK(v.header->checksum != before);
  CHECK(v.key() == "k");
  CHECK(v.value() == "value");
}

TEST_CASE("a record's KIND is bits 1-2 of its flags and survives the abort mark") {
  auto buf = Encode({RecordType::kSet, "k", "42", 3, 0, 2});
  RecordView v;
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(v.kind() == 2);
  CHECK(buf[13] == 4);  // flags: KIND 2 << 1
  MarkAborted(buf, 42);
  REQUIRE(CheckRecord(buf, 0, 42, &v) == Damage::kNone);
  CHECK(v.kind() == 2);
  CHECK(v.is_aborted());
  // A tombstone never has one: the encoder drops it, the checker refuses it.
  auto tomb = Encode({RecordType::kTombstone, "k", "", 4, 0, 3});
  REQUIRE(CheckRecord(tomb, 0, 42, &v) == Damage::kNone);
  CHECK(v.kind() == 0);
  tomb[13] = 2;
  CHECK(CheckRecordHeader(*reinterpret_cast<const RecordHeader*>(tomb.data())) ==
        Damage::kBadHeader);
}
