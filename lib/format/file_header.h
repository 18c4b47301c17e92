// file_header: what every file of a cache begins with (docs/format.md): a
// header of kHeaderSize bytes that starts with an 8-byte magic, the u32
// format version and the u32 header size. And the verdict of the header
// validators (meta_header.h, data_header.h, index_header.h): pure functions
// over a file's bytes, shared by the engine, which throws the first finding
// as an Error, and by the inspector, which reports every finding.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lilcache {

// The format version (docs/format.md). Each kind of file carries in its
// header the version at which its own layout last changed (VersionOf), so
// that a new index layout leaves meta and data files readable.
inline constexpr std::uint32_t kFormatVersion = 7;
inline constexpr std::uint32_t kMetaVersion = 7;
inline constexpr std::uint32_t kDataVersion = 6;
inline constexpr std::uint32_t kIndexVersion = 7;
// Every file's header: one page, so that the first record and the first
// index slot start on a page boundary.
inline constexpr std::size_t kHeaderSize = 4096;

inline constexpr std::size_t kMagicSize = 8;
inline constexpr char kMetaMagic[kMagicSize] = {'L', 'I', 'L', 'C', 'M', 'E', 'T', 'A'};
inline constexpr char kDataMagic[kMagicSize] = {'L', 'I', 'L', 'C', 'D', 'A', 'T', 'A'};
inline constexpr char kIndexMagic[kMagicSize] = {'L', 'I', 'L', 'C', 'I', 'N', 'D', 'X'};

// The first 16 bytes of every file.
struct FileHeaderPrefix {
  char magic[kMagicSize];
  std::uint32_t version;
  std::uint32_t header_size;
};
static_assert(sizeof(FileHeaderPrefix) == 16);

enum class FileKind { kMeta, kData, kIndex };
// "meta file", "log", "index": how messages name a file of that kind.
const char* FileNoun(FileKind kind);
// The version a file of `kind` has: kMetaVersion, kDataVersion or kIndexVersion.
std::uint32_t VersionOf(FileKind kind);

// What a validator found wrong with a header, most fundamental first.
enum class HeaderFault {
  kTooShort,         // the file is shorter than its header
  kBadSize,          // NAME.meta is not its fixed size
  kBadMagic,         // not a lilcache file of this kind (or, NAME.meta, never initialized)
  kBadVersion,       // another format version
  kBadField,         // an impossible layout field (header_size, slot count): unreadable
  kBadValue,         // an impossible value (NAME.meta's generation or sequence numbers)
  kWrongGeneration,  // the header names another generation than the file's name
  kWrongSalt,        // the salt is not the meta file's: every checksum fails
};

struct HeaderFinding {
  HeaderFault fault;
  std::string reason;  // without the path: "bad slot count 1000"
};

// The findings of a validator, in the order checked. A validator stops at
// the first fault that leaves the other fields meaningless (!readable()).
struct HeaderVerdict {
  FileKind kind = FileKind::kMeta;
  std::uint32_t version = 0;  // the version found (kBadVersion)
  std::vector<HeaderFinding> findings;

  bool ok() const { return findings.empty(); }
  // True unless a finding makes the header's fields meaningless (kTooShort,
  // kBadSize, kBadMagic, kBadVersion, kBadField): the inspector shows the
  // file's contents only when the header is readable.
  bool readable() const;
  void Add(HeaderFault fault, std::string reason) {
    findings.push_back({fault, std::move(reason)});
  }
  // The Error text of the first finding, naming the file: "not a lilcache
  // log: PATH has a bad magic number", "unsupported format version 3 in PATH
  // (this lilcache reads version 4)", "corrupt index PATH: bad slot count 5".
  std::string ErrorText(const std::string& path) const;
  // Throws Error(ErrorText(path)) unless ok().
  void ThrowIfBad(const std::string& path) const;
};

// The checks every file shares: at least kHeaderSize bytes, the magic of
// `kind`, version VersionOf(kind). `file` is the file's bytes from offset 0
// (at least its header, if it has one).
HeaderVerdict CheckFileHeader(FileKind kind, std::span<const char> file);

}  // namespace lilcache
