// libFuzzer target: log recovery. The input becomes the data file of a
// cache (NAME.1.data), next to a valid meta file and an empty index, and
// Cache::open must throw lilcache::Error or give a cache that reads, writes,
// compacts and reopens with the same contents (fuzz_util.h, Exercise) --
// never crash, hang or touch memory it should not.
//
// Input: byte 0 flags, bytes 1..16 meta next_seq and purge_seq (u64 LE),
// then the data file. Flags:
//   bit 0  the meta file's boot id is this "boot's": the fast path (check
//          the log from verified_upto to tail, trust the index) instead of a
//          full replay ("first open since a reboot")
//   bit 1  rewrite the checksum of every record-looking header
//   bit 2  compact form: the first 96 bytes are the header's fields, the
//          rest starts at offset 4096 (the reserved bytes are zero)
//   bit 3  force a valid header (magic, version, size, generation 1, salt)
//   bit 4  the meta file's needs_rebuild flag
#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "engine/data_file.h"
#include "engine/meta.h"
#include "fuzz_util.h"

using namespace lilcache;

namespace {

std::uint64_t U64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 17) return 0;
  const std::uint8_t flags = data[0];
  fuzz::MetaFields meta;
  meta.next_seq = U64(data + 1);
  meta.purge_seq = U64(data + 9);
  if ((flags & 1) == 0) meta.boot_id = "another-boot";
  if ((flags & 16) != 0) meta.flags = kFlagNeedsRebuild;
  std::string file(reinterpret_cast<const char*>(data) + 17, size - 17);
  if ((flags & 4) != 0 && file.size() >= 96) {
    file = file.substr(0, 96) + std::string(kHeaderSize - 96, '\0') + file.substr(96);
  }
  if ((flags & 8) != 0 && file.size() >= 96) {
    std::string valid = fuzz::MakeData(1, "");
    std::memcpy(file.data(), valid.data(), offsetof(DataHeader, created_ms));
  }
  if ((flags & 2) != 0) fuzz::FixChecksums(file, kHeaderSize);

  fuzz::ResetRoot();
  fuzz::WriteFile(std::string(fuzz::kName) + ".meta", fuzz::MakeMeta(meta));
  fuzz::WriteFile(std::string(fuzz::kName) + ".1.data", file);
  fuzz::WriteFile(std::string(fuzz::kName) + ".1.index", fuzz::MakeIndex(1, ""));
  const Options options{.root = fuzz::Root(), .loglevel = "off", .env = fuzz::env()};
  std::map<std::string, std::string> before;
  try {
    Cache c = Cache::open(fuzz::kName, options);
    // Only a session without any Error is checked at reopen: an Error may
    // have flagged the cache for a rebuild from the log.
    if (!fuzz::Exercise(c, nullptr, {})) return 0;
    before = fuzz::Contents(c);
  } catch (const Error&) {
    return 0;  // refused (or corruption found while reading): fine
  }
  // What a cache held when it was closed is what it holds when reopened.
  try {
    Cache c = Cache::open(fuzz::kName, options);
    if (fuzz::Contents(c) != before) fuzz::Fail("reopening changed the contents");
  } catch (const Error& e) {
    fuzz::Fail(std::string("a cache that opened and worked cannot be reopened: ") + e.what());
  }
  return 0;
}
