// libFuzzer target: the index file. A fixed, valid log (fuzz_util.h,
// IndexData: a dozen keys, overwritten, deleted, expired, binary) and meta
// file, and the input as NAME.1.index. Cache::open must throw
// lilcache::Error or give a cache whose reads return only values that were
// written for the key read (a corrupt index may point at a stale record,
// never at another key's or at garbage), where a value set is read back, and
// which compacts and reopens with the same contents -- never a crash, hang or
// out-of-bounds access.
//
// Input: byte 0 flags, then the index file in compact form: bytes [0, 72) are
// the header fields, the rest are the slots (from offset 4096). Flags:
//   bit 0  write the file exactly as given (else zero-pad it to the size of
//          a 1,024-slot index)
//   bit 1  force a valid header prefix (magic, version, header size,
//          generation 1), leaving slot_count and used_slots to the input
//   bit 2  the meta file's boot id is another boot's: full replay from the
//          log (the index is still opened and checked first)
//   bit 3  the log ends with a torn record (a writer killed mid-append): the
//          open rebuilds from the records the index publishes
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/index.h"
#include "engine/meta.h"
#include "fuzz_util.h"

using namespace lilcache;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  const fuzz::IndexFixture& fx = fuzz::IndexData();
  constexpr std::size_t kFields = 72;
  std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (file.size() > kFields) {
    file =
        file.substr(0, kFields) + std::string(kHeaderSize - kFields, '\0') + file.substr(kFields);
  }
  if ((flags & 1) == 0 && file.size() < kHeaderSize + kMinSlots * 8) {
    file.resize(kHeaderSize + kMinSlots * 8, '\0');
  }
  if ((flags & 2) != 0 && file.size() >= kFields) {
    std::string valid = fuzz::MakeIndex(1, "");
    std::memcpy(file.data(), valid.data(), offsetof(IndexHeader, slot_count));
  }

  fuzz::ResetRoot();
  fuzz::MetaFields meta;
  meta.next_seq = fx.next_seq;
  if ((flags & 4) != 0) meta.boot_id = "another-boot";
  fuzz::WriteFile(std::string(fuzz::kName) + ".meta", fuzz::MakeMeta(meta));
  fuzz::WriteFile(std::string(fuzz::kName) + ".1.data", (flags & 8) != 0 ? fx.data_torn : fx.data);
  fuzz::WriteFile(std::string(fuzz::kName) + ".1.index", file);
  const Options options{.root = fuzz::Root(), .loglevel = "off", .env = fuzz::env()};
  std::map<std::string, std::string> before;
  try {
    Cache c = Cache::open(fuzz::kName, options);
    if (!fuzz::Exercise(c, &fx.written, fx.keys)) return 0;
    before = fuzz::Contents(c);
  } catch (const Error&) {
    return 0;
  }
  try {
    Cache c = Cache::open(fuzz::kName, options);
    if (fuzz::Contents(c) != before) fuzz::Fail("reopening changed the contents");
  } catch (const Error& e) {
    fuzz::Fail(std::string("a cache that opened and worked cannot be reopened: ") + e.what());
  }
  return 0;
}
