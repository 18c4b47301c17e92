// slot: the hash slot of a key, per the Redis Cluster specification: CRC16
// (XMODEM: polynomial 0x1021, initial 0) of the key, or of its hash tag (the
// bytes between the first '{' and the first '}' after it, if not empty),
// modulo 16384.
#pragma once

#include <cstdint>
#include <string_view>

namespace lilcache::cluster {

inline constexpr std::uint16_t kSlots = 16384;

// CRC16/XMODEM of data (CRC16("123456789") = 0x31C3).
std::uint16_t Crc16(std::string_view data);

// The hash slot of key, hash tags honoured.
std::uint16_t KeySlot(std::string_view key);

}  // namespace lilcache::cluster
