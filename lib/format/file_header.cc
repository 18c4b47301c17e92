#include "format/file_header.h"

#include <cstring>

#include "lilcache/lilcache.h"

namespace lilcache {

const char* FileNoun(FileKind kind) {
  switch (kind) {
    case FileKind::kMeta:
      return "meta file";
    case FileKind::kData:
      return "log";
    case FileKind::kIndex:
      return "index";
  }
  return "?";
}

namespace {

const char* MagicOf(FileKind kind) {
  switch (kind) {
    case FileKind::kMeta:
      return kMetaMagic;
    case FileKind::kData:
      return kDataMagic;
    case FileKind::kIndex:
      return kIndexMagic;
  }
  return kMetaMagic;
}

}  // namespace

std::uint32_t VersionOf(FileKind kind) {
  switch (kind) {
    case FileKind::kMeta:
      return kMetaVersion;
    case FileKind::kData:
      return kDataVersion;
    case FileKind::kIndex:
      return kIndexVersion;
  }
  return kFormatVersion;
}

bool HeaderVerdict::readable() const {
  for (const HeaderFinding& f : findings) {
    switch (f.fault) {
      case HeaderFault::kTooShort:
      case HeaderFault::kBadSize:
      case HeaderFault::kBadMagic:
      case HeaderFault::kBadVersion:
      case HeaderFault::kBadField:
        return false;
      case HeaderFault::kBadValue:
      case HeaderFault::kWrongGeneration:
      case HeaderFault::kWrongSalt:
        break;
    }
  }
  return true;
}

std::string HeaderVerdict::ErrorText(const std::string& path) const {
  if (findings.empty()) return "";
  const HeaderFinding& f = findings.front();
  const std::string noun = FileNoun(kind);
  switch (f.fault) {
    case HeaderFault::kBadMagic:
      return "not a lilcache " + noun + ": " + path + " has a bad magic number";
    case HeaderFault::kBadVersion:
      return "unsupported format version " + std::to_string(version) + " in " + path +
             " (this lilcache reads version " + std::to_string(VersionOf(kind)) + ")";
    case HeaderFault::kTooShort:
    case HeaderFault::kBadSize:
      return "not a lilcache " + noun + ": " + path + ": " + f.reason;
    default:
      return "corrupt " + noun + " " + path + ": " + f.reason;
  }
}

void HeaderVerdict::ThrowIfBad(const std::string& path) const {
  if (ok()) return;
  // Another format version is not damage: the file may be fine for another
  // lilcache. Everything else is.
  throw Error(findings.front().fault == HeaderFault::kBadVersion ? ErrorCode::unsupported
                                                                 : ErrorCode::corrupt,
              ErrorText(path));
}

HeaderVerdict CheckFileHeader(FileKind kind, std::span<const char> file) {
  HeaderVerdict v;
  v.kind = kind;
  if (file.size() < kHeaderSize) {
    v.Add(HeaderFault::kTooShort, std::to_string(file.size()) + " bytes, shorter than its " +
                                      std::to_string(kHeaderSize) + "-byte header");
    return v;
  }
  const auto& h = *reinterpret_cast<const FileHeaderPrefix*>(file.data());
  if (std::memcmp(h.magic, MagicOf(kind), kMagicSize) != 0) {
    v.Add(HeaderFault::kBadMagic, std::string("bad magic number: not a lilcache ") +
                                      FileNoun(kind) +
                                      (kind == FileKind::kMeta ? " (or never initialized)" : ""));
    return v;
  }
  if (h.version != VersionOf(kind)) {
    v.version = h.version;
    v.Add(HeaderFault::kBadVersion, "format version " + std::to_string(h.version) +
                                        "; this lilcache reads " + std::to_string(VersionOf(kind)));
  }
  return v;
}

}  // namespace lilcache
