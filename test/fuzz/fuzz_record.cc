// libFuzzer target: the record decoder (lib/format/record.h). The input is a
// region of log bytes; byte 0 is a flag (bit 0: rewrite the checksum of every
// record-looking header first, so that valid records are common).
// Properties: CheckRecord never reads outside the region and agrees with
// CheckRecordHeader on every header inside it; a record it accepts
// lies inside the region and re-encodes to the same bytes; ForEachValidRecord
// visits exactly records CheckRecord accepts, in order, without overlap.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "format/record.h"
#include "fuzz_util.h"

using namespace lilcache;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool fix = (data[0] & 1) != 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (fix) fuzz::FixChecksums(bytes, 0);
  // An exact-size, 8-aligned heap copy: any read past its end is an ASan report.
  const std::size_t n = bytes.size();
  // (The decoder reads 8-aligned headers, as in a page-aligned mapping; new[]
  // returns memory aligned to at least 8.)
  std::unique_ptr<char[]> exact(new char[n == 0 ? 1 : n]);
  char* base = exact.get();
  if (n != 0) std::memcpy(base, bytes.data(), n);
  std::span<const char> region(base, n);

  std::size_t valid = 0;
  for (std::size_t off = 0; off <= n + 8; off += record::kAlign) {
    record::RecordView r;
    record::Damage d = record::CheckRecord(region, off, fuzz::kSalt, &r);
    // CheckRecordHeader, the one "is this a record?" check of every reader,
    // is CheckRecord's verdict on any header that lies inside the region.
    if (off <= n && n - off >= record::kRecordHeaderSize) {
      const auto& h = *reinterpret_cast<const record::RecordHeader*>(base + off);
      record::Damage fields = record::CheckRecordHeader(h);
      if (fields != record::Damage::kNone
              ? d != fields
              : d == record::Damage::kBadMagic || d == record::Damage::kBadHeader) {
        fuzz::Fail("CheckRecordHeader disagrees with CheckRecord");
      }
    }
    if (d != record::Damage::kNone) continue;
    ++valid;
    if (r.header != reinterpret_cast<const record::RecordHeader*>(base + off)) fuzz::Fail("view");
    if (r.size() > n - off) fuzz::Fail("accepted a record running past the region");
    std::string again(r.size(), '\0');
    record::EncodeRecord({r.type(), r.key(), r.value(), r.seq(), r.expires_ms(), r.kind()},
                         fuzz::kSalt, std::span<char>(again.data(), again.size()));
    // An aborted record (docs/format.md, "Record") is one marked after it
    // was written.
    if (r.is_aborted())
      record::MarkAborted(std::span<char>(again.data(), again.size()), fuzz::kSalt);
    std::size_t body = record::kRecordHeaderSize + r.key().size() + r.value().size();
    if (std::memcmp(again.data(), base + off, body) != 0) {
      fuzz::Fail("an accepted record does not re-encode to its bytes");
    }
    (void)record::HashKey(r.key(), fuzz::kSalt);
  }
  std::size_t visited = 0, next = 0;
  record::ForEachValidRecord(
      region, 0, n, fuzz::kSalt, [&](std::uint64_t off, record::RecordView r) {
        if (off < next) fuzz::Fail("ForEachValidRecord visited overlapping records");
        record::RecordView again;
        if (record::CheckRecord(region, off, fuzz::kSalt, &again) != record::Damage::kNone) {
          fuzz::Fail("ForEachValidRecord visited an invalid record");
        }
        next = off + r.size();
        ++visited;
      });
  if (visited > valid) fuzz::Fail("ForEachValidRecord visited more records than are valid");
  return 0;
}
