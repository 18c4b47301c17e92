// slot: CRC16/XMODEM and the hash slot of a key (Redis Cluster
// specification, "Key distribution model" and "Hash tags").
#include "cluster/slot.h"

#include <array>

namespace lilcache::cluster {
namespace {

// The table of CRC16/XMODEM (polynomial 0x1021, MSB first), built at compile
// time.
constexpr std::array<std::uint16_t, 256> MakeTable() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
    table[i] = crc;
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kTable = MakeTable();

}  // namespace

std::uint16_t Crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

std::uint16_t KeySlot(std::string_view key) {
  // The hash tag: the bytes between the first '{' and the first '}' after
  // it, when there are some; otherwise the whole key.
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(Crc16(key) & (kSlots - 1));
}

}  // namespace lilcache::cluster
