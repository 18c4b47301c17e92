// size: parsing of human sizes ("64MiB", "1G", "4096"), for the tools'
// --max-bytes and --memory-budget.
//
// A size is digits with an optional unit, case-insensitive, nothing else (no
// sign, spaces or fractions): B; K, KB or KiB = 1024; M, MB or MiB = 1024^2;
// G, GB, GiB = 1024^3; T, TB, TiB = 1024^4. Every unit is binary (IEC):
// "1G" = "1GiB" = 1073741824 bytes, as memory sizes are counted (and as
// CLI11's AsSizeValue counted "KB" before). Errors (Error, invalid_argument)
// quote the input and say what is wrong at which character (1-based).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lilcache {

// The size `text` names, in bytes. Throws Error "invalid size ..." on
// anything else, or past UINT64_MAX - 1 (UINT64_MAX means "no limit").
std::uint64_t ParseSize(std::string_view text);

// A size limit: "none" (any case) gives UINT64_MAX (Options::max_bytes's
// "lift the limit"); anything else must be a size of at least 1 byte.
std::uint64_t ParseSizeLimit(std::string_view text);

// `bytes` for people: "none" for 0 or UINT64_MAX (a limit that is not set),
// else the decimal number.
std::string FormatSizeLimit(std::uint64_t bytes);

}  // namespace lilcache
