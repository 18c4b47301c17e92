#include "fuzz_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "engine/data_file.h"
#include "engine/index.h"
#include "engine/meta.h"
#include "format/record.h"

namespace lilcache::fuzz {

Env* env() {
  static FuzzEnv e;
  return &e;
}

namespace {

std::string MakeRoot() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/lilcache-fuzz-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp failed");
  return tmpl;
}

template <typename T>
void Put(std::string& bytes, std::size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof v);
}

template <typename T>
T Get(std::string_view bytes, std::size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

}  // namespace

void Fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

const std::string& Root() {
  // Never destroyed: the exit handler that removes it runs after static
  // destructors of objects constructed later.
  static const std::string* root = [] {
    auto* r = new std::string(MakeRoot());
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(Root(), ec);
    });
    return r;
  }();
  return *root;
}

void ResetRoot() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(Root(), ec)) {
    std::filesystem::remove_all(e.path(), ec);
  }
}

std::string PathOf(std::string_view file) { return Root() + "/" + std::string(file); }

void WriteFile(std::string_view file, std::string_view bytes) {
  std::string path = PathOf(file);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Fail("cannot create " + path);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) Fail("cannot write " + path);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

std::string MakeMeta(const MetaFields& m) {
  std::string b(kMetaFileSize, '\0');
  std::memcpy(b.data(), kMetaMagic, 8);
  Put<std::uint32_t>(b, offsetof(MetaHeader, version), kMetaVersion);
  Put<std::uint32_t>(b, offsetof(MetaHeader, header_size), kHeaderSize);
  Put<std::uint64_t>(b, offsetof(MetaHeader, salt), kSalt);
  Put<std::uint64_t>(b, offsetof(MetaHeader, created_ms), kNowMs - 1000);
  Put<std::uint64_t>(b, offsetof(MetaHeader, generation), m.generation);
  Put<std::uint64_t>(b, offsetof(MetaHeader, purge_seq), m.purge_seq);
  Put<std::uint32_t>(b, offsetof(MetaHeader, flags), m.flags);
  Put<std::uint64_t>(b, offsetof(MetaHeader, next_seq), m.next_seq);
  std::memcpy(b.data() + offsetof(MetaHeader, boot_id), m.boot_id.data(),
              std::min<std::size_t>(m.boot_id.size(), 39));
  return b;
}

std::string MakeData(std::uint64_t gen, std::string_view records) {
  std::string b(kHeaderSize, '\0');
  b.append(records);
  b.resize((b.size() + 4095) / 4096 * 4096, '\0');
  std::memcpy(b.data(), kDataMagic, 8);
  Put<std::uint32_t>(b, offsetof(DataHeader, version), kDataVersion);
  Put<std::uint32_t>(b, offsetof(DataHeader, header_size), kHeaderSize);
  Put<std::uint64_t>(b, offsetof(DataHeader, generation), gen);
  Put<std::uint64_t>(b, offsetof(DataHeader, salt), kSalt);
  Put<std::uint64_t>(b, offsetof(DataHeader, created_ms), kNowMs - 1000);
  Put<std::uint64_t>(b, offsetof(DataHeader, tail), kHeaderSize + records.size());
  Put<std::uint64_t>(b, offsetof(DataHeader, capacity), b.size());
  Put<std::uint64_t>(b, offsetof(DataHeader, verified_upto), kHeaderSize + records.size());
  return b;
}

std::string Record(bool tombstone, std::string_view key, std::string_view value, std::uint64_t seq,
                   std::uint64_t expires_ms) {
  std::string b(record::RecordSize(key.size(), value.size()), '\0');
  record::EncodeRecord({tombstone ? record::RecordType::kTombstone : record::RecordType::kSet, key,
                        value, seq, expires_ms},
                       kSalt, std::span<char>(b.data(), b.size()));
  return b;
}

std::string MakeIndex(std::uint64_t gen, std::string_view data, std::uint64_t slots) {
  std::string b(kHeaderSize + slots * 8, '\0');
  std::memcpy(b.data(), kIndexMagic, 8);
  Put<std::uint32_t>(b, offsetof(IndexHeader, version), kIndexVersion);
  Put<std::uint32_t>(b, offsetof(IndexHeader, header_size), kHeaderSize);
  Put<std::uint64_t>(b, offsetof(IndexHeader, generation), gen);
  Put<std::uint64_t>(b, offsetof(IndexHeader, slot_count), slots);
  std::map<std::string_view, std::pair<std::uint64_t, std::uint64_t>> latest;  // seq, offset
  std::span<const char> region(data.data(), data.size());
  std::uint64_t tail =
      data.size() < kHeaderSize ? 0 : Get<std::uint64_t>(data, offsetof(DataHeader, tail));
  record::ForEachValidRecord(region, kHeaderSize, std::min<std::uint64_t>(tail, data.size()), kSalt,
                             [&](std::uint64_t off, record::RecordView r) {
                               auto [it, fresh] = latest.try_emplace(r.key(), r.seq(), off);
                               if (!fresh && it->second.first < r.seq())
                                 it->second = {r.seq(), off};
                             });
  std::uint64_t used = 0;
  for (const auto& [key, so] : latest) {
    std::uint64_t h = record::HashKey(key, kSalt);
    for (std::uint64_t pos = IndexHome(h, slots);; pos = pos + 1 == slots ? 0 : pos + 1) {
      if (Get<std::uint64_t>(b, kHeaderSize + pos * 8) != 0) continue;
      Put<std::uint64_t>(b, kHeaderSize + pos * 8, Index::Pack(h, so.second));
      ++used;
      break;
    }
  }
  Put<std::uint64_t>(b, offsetof(IndexHeader, used_slots), used);
  return b;
}

void FixChecksums(std::string& bytes, std::size_t from) {
  for (std::size_t off = from; off + record::kRecordHeaderSize <= bytes.size();
       off += record::kAlign) {
    auto magic = Get<std::uint32_t>(bytes, off + offsetof(record::RecordHeader, magic));
    if (magic != record::kRecordMagic) continue;
    auto key_len = Get<std::uint32_t>(bytes, off + offsetof(record::RecordHeader, key_len));
    auto value_len = Get<std::uint32_t>(bytes, off + offsetof(record::RecordHeader, value_len));
    if (key_len > kMaxKeyBytes || value_len > kMaxValueBytes) continue;
    if (record::kRecordHeaderSize + key_len + value_len > bytes.size() - off) continue;
    const auto* h = reinterpret_cast<const record::RecordHeader*>(bytes.data() + off);
    Put<std::uint64_t>(bytes, off, record::RecordChecksum(h, kSalt));
  }
}

std::map<std::string, std::string> Contents(Cache& cache) {
  std::map<std::string, std::string> m;
  cache.for_each([&](std::string_view k, std::string_view v) {
    m.emplace(k, v);
    return true;
  });
  return m;
}

const IndexFixture& IndexData() {
  static const IndexFixture fixture = [] {
    IndexFixture f;
    std::string records;
    std::uint64_t seq = 1;
    auto add = [&](bool tomb, std::string_view k, std::string_view v, std::uint64_t exp = 0) {
      records += Record(tomb, k, v, seq++, exp);
      if (!tomb) f.written[std::string(k)].insert(std::string(v));
      if (f.written.count(std::string(k)) == 0) f.written[std::string(k)];
    };
    add(false, "k0", "v0-old");
    add(false, "k1", std::string(300, 'x'));
    add(false, "k2", "v2 then deleted");
    add(false, "k3", "v3 expired", kNowMs - 1);
    add(false, "k0", "v0-new");
    add(true, "k2", "");
    add(false, "k4", "v4 expires later", kNowMs + 3'600'000);
    add(false, std::string_view("k5\0bin", 6), "");
    for (int i = 6; i < 12; ++i) add(false, "k" + std::to_string(i), "v" + std::to_string(i));
    f.data = MakeData(1, records);
    std::string torn = Record(false, "k6", "torn value", seq);
    torn[torn.size() - 9] ^= 1;  // the last value byte: the checksum fails
    f.data_torn = MakeData(1, records + torn);
    std::uint64_t verified = kHeaderSize + records.size();
    std::memcpy(f.data_torn.data() + offsetof(DataHeader, verified_upto), &verified, 8);
    f.next_seq = seq + 1;
    for (const auto& [k, vs] : f.written) f.keys.push_back(k);
    f.keys.push_back("absent");
    return f;
  }();
  return fixture;
}

namespace {

// increment() of `key`, which holds `value` (not an integer), must throw
// Error (invalid_argument) and leave it.
void ExpectNotAnInteger(Cache& cache, const std::string& key, std::string_view value) {
  bool threw = false;
  try {
    std::int64_t n = cache.increment(key);
    Fail("increment of a value that is not an integer returned " + std::to_string(n));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::invalid_argument) throw;
    threw = true;
  }
  if (!threw || cache.get(key) != value) Fail("a failed increment changed the value");
}

// The conditional operations, expiry and batches (the reference model: what
// the header promises of a key this function alone writes), on keys the
// fuzz inputs never hold; every key it writes is gone at the end.
void ExerciseConditional(Cache& cache) {
  const std::string k = "fuzz-cond-key", counter = "fuzz-counter";
  if (!cache.add(k, "added")) Fail("add of an absent key returned false");
  if (cache.add(k, "again")) Fail("add of a present key returned true");
  std::optional<Versioned> v = cache.get_versioned(k);
  if (!v || v->value != "added") Fail("get_versioned after add");
  if (!cache.compare_and_set(k, v->version, "swapped")) Fail("compare_and_set, current version");
  if (cache.compare_and_set(k, v->version, "stale")) Fail("compare_and_set, stale version");
  if (cache.compare_and_erase(k, v->version)) Fail("compare_and_erase, stale version");
  std::optional<Versioned> w = cache.get_versioned(k);
  if (!w || w->value != "swapped" || w->version == v->version) Fail("get_versioned after a CAS");
  // Expiry: the Env's clock stands still, so the ttl is exactly the one given.
  if (!cache.touch(k, std::chrono::hours(1))) Fail("touch of a present key returned false");
  if (cache.ttl(k) != std::chrono::milliseconds(3'600'000)) Fail("ttl after touch");
  std::optional<Versioned> touched = cache.get_versioned(k);
  if (!touched || touched->value != "swapped" || touched->version == w->version) {
    Fail("touch must keep the value and change the version");
  }
  if (!cache.persist(k) || cache.ttl(k) != kNoExpiry) Fail("persist");
  ExpectNotAnInteger(cache, k, "swapped");
  std::optional<Versioned> now = cache.get_versioned(k);
  if (!now || !cache.compare_and_erase(k, now->version)) Fail("compare_and_erase, current version");
  if (cache.get(k) || cache.ttl(k) || cache.touch(k, std::chrono::hours(1)) || cache.persist(k)) {
    Fail("a key removed by compare_and_erase is still there");
  }
  // Increments: from 0, a sum of deltas, stored as decimal text.
  if (cache.increment(counter, 5) != 5 || cache.decrement(counter, 7) != -2 ||
      cache.get(counter) != "-2") {
    Fail("increment/decrement");
  }
  if (cache.increment(counter, INT64_MAX - 1, 0) != INT64_MAX - 3) Fail("increment to near max");
  bool overflow = false;
  try {
    std::int64_t n = cache.increment(counter, 4);
    Fail("increment past INT64_MAX returned " + std::to_string(n));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::limit) throw;
    overflow = true;
  }
  if (!overflow || cache.get(counter) != std::to_string(INT64_MAX - 3)) Fail("overflow changed it");
  // get_or_set: computes an absent key once, then returns it uncomputed.
  int computed = 0;
  auto compute = [&] {
    ++computed;
    return std::string("computed");
  };
  if (cache.get_or_set(k, compute) != "computed" || cache.get_or_set(k, compute) != "computed" ||
      computed != 1) {
    Fail("get_or_set computed " + std::to_string(computed) + " times");
  }
  // Batches.
  cache.set_many({{"fuzz-batch-a", "a"}, {"fuzz-batch-b", ""}});
  std::vector<std::optional<std::string>> got =
      cache.get_many({"fuzz-batch-a", "fuzz-batch-b", "fuzz-batch-c"});
  if (got.size() != 3 || got[0] != "a" || got[1] != "" || got[2].has_value()) Fail("get_many");
  if (cache.erase_many({k, counter, "fuzz-batch-a", "fuzz-batch-b", "fuzz-batch-c"}) != 4) {
    Fail("erase_many did not remove the 4 keys set");
  }
}

}  // namespace

bool Exercise(Cache& cache, const Written* written, const std::vector<std::string>& probe) {
  auto check = [&](std::string_view key, std::string_view value, const char* how) {
    if (written == nullptr) return;
    auto it = written->find(std::string(key));
    if (it == written->end() || it->second.count(std::string(value)) == 0) {
      Fail(std::string(how) + " returned a value never written for key \"" + std::string(key) +
           "\" (" + std::to_string(value.size()) + " bytes)");
    }
  };
  try {
    std::map<std::string, std::string> listed;
    bool unique = true;
    cache.for_each([&](std::string_view k, std::string_view v) {
      check(k, v, "for_each");
      unique = listed.emplace(k, v).second && unique;
      return true;
    });
    std::vector<std::string> keys = cache.keys();
    if (unique && keys.size() != listed.size()) {
      Fail("keys() lists " + std::to_string(keys.size()) + " keys, for_each " +
           std::to_string(listed.size()));
    }
    std::size_t size = cache.size();
    Stats st = cache.stats();
    if (unique && (size != listed.size() || st.keys != size)) {
      Fail("size() " + std::to_string(size) + ", stats().keys " + std::to_string(st.keys) +
           ", for_each " + std::to_string(listed.size()));
    }
    // Whether get() agrees with the scan: false only with a corrupt index
    // (a slot off its key's probe chain), which the fast path cannot see.
    bool consistent = unique;
    std::vector<std::string> all = probe;
    all.insert(all.end(), keys.begin(), keys.end());
    for (const std::string& k : all) {
      if (k.empty() || k.size() > kMaxKeyBytes) continue;
      std::optional<std::string> v = cache.get(k);
      if (v) check(k, *v, "get");
      if (cache.contains(k) != v.has_value()) Fail("contains() disagrees with get()");
      auto it = listed.find(k);
      if (it == listed.end() ? v.has_value() : v != it->second) consistent = false;
    }
    // Writes: a value set is read back, popped once, then gone.
    cache.set("fuzz-new-key", "fresh value");
    if (cache.get("fuzz-new-key") != "fresh value") Fail("get after set of a new key");
    if (cache.pop("fuzz-new-key") != "fresh value") Fail("pop after set of a new key");
    if (cache.get("fuzz-new-key").has_value()) Fail("get after pop of a new key");
    ExerciseConditional(cache);
    if (!keys.empty()) {
      cache.set(keys.front(), "overwritten");
      if (cache.get(keys.front()) != "overwritten") {
        Fail("get after set of the existing key \"" + keys.front() + "\"");
      }
      if (consistent) listed[keys.front()] = "overwritten";
      // A present key that is not an integer: add refuses, increment throws
      // (invalid_argument) and leaves it, get_or_set returns it uncomputed,
      // get_many agrees with get.
      if (cache.add(keys.front(), "added")) Fail("add of a present key returned true");
      ExpectNotAnInteger(cache, keys.front(), "overwritten");
      if (cache.get_or_set(keys.front(), [] { return std::string("computed"); }) != "overwritten") {
        Fail("get_or_set of a present key did not return its value");
      }
      std::vector<std::string> batch;
      for (const std::string& key : all) {
        if (!key.empty() && key.size() <= kMaxKeyBytes && batch.size() < 8) batch.push_back(key);
      }
      batch.push_back(keys.front());
      std::vector<std::optional<std::string>> many = cache.get_many(batch);
      if (many.size() != batch.size()) Fail("get_many returned another number of values");
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (many[i] != cache.get(batch[i])) Fail("get_many disagrees with get");
      }
    }
    // A compaction keeps exactly the live keys (when the scan and the
    // lookups agreed, i.e. the index was consistent).
    CompactionResult r = cache.compact();
    if (consistent && r.compacted) {
      std::map<std::string, std::string> after;
      cache.for_each([&](std::string_view k, std::string_view v) {
        after.emplace(k, v);
        return true;
      });
      if (after != listed) {
        Fail("compaction changed the contents: " + std::to_string(listed.size()) +
             " keys before, " + std::to_string(after.size()) + " after");
      }
      for (const auto& [k, v] : listed) {
        if (cache.get(k) != v) Fail("get of \"" + k + "\" after compaction");
      }
    }
  } catch (const Error&) {
    return false;  // corruption detected late is fine, as long as it is an Error
  }
  return true;
}

}  // namespace lilcache::fuzz
