#include "engine/index.h"

#include <fcntl.h>

#include <spdlog/logger.h>

#include <cstdlib>
#include <cstring>

#include "engine/data_file.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/quote.h"

namespace lilcache {
std::uint64_t Index::SlotsFor(std::uint64_t keys) {
  // keys / 0.55 = keys * 20 / 11, in integers (kSizingLoad says the same).
  static_assert(kSizingLoad == 0.55);
  // Checked before multiplying: keys * 20 must not wrap, and the result,
  // rounded up to a page of slots, must not pass kMaxSlots (a multiple of
  // a page, so rounding up never crosses it).
  if (keys > kMaxSlots / 20 * 11) {
    throw Error(ErrorCode::limit, "too many keys for one index: " + std::to_string(keys));
  }
  const std::uint64_t slots = (keys * 20 + 10) / 11;
  const std::uint64_t pages = (slots + kSlotsPerPage - 1) / kSlotsPerPage;
  return std::max(pages * kSlotsPerPage, kMinSlots);
}

std::uint64_t Index::GrownSlots(std::uint64_t slots) {
  slots = std::min(std::max(slots, kMinSlots), kMaxSlots);
  // 1.45 times, rounded down to a page (without overflow: slots <= 2^32)...
  const std::uint64_t grown = slots / 20 * 29 / kSlotsPerPage * kSlotsPerPage;
  // ... but never so few that `slots` keys would ask for growth again (small
  // indexes, where a page is a large step): more than 4/3, rounded up.
  const std::uint64_t least =
      (slots * 4 / 3 + 1 + kSlotsPerPage - 1) / kSlotsPerPage * kSlotsPerPage;
  return std::min(std::max(grown, least), kMaxSlots);
}

void Index::Create(Env* env, const std::string& path, std::uint64_t generation,
                   std::uint64_t slot_count) {
  if (!ValidSlotCount(slot_count)) {
    throw Error(ErrorCode::invalid_argument, "bad index size " + std::to_string(slot_count));
  }
  env_ = env;
  // New means new: a leftover of a crashed creator or compactor is removed,
  // and O_EXCL never truncates or writes through a file put there meanwhile.
  env->Unlink(path.c_str());
  file_ = FileHandle::Open(env, path, O_RDWR | O_CREAT | O_EXCL);
  std::uint64_t size = IndexFileSize(slot_count);
  AllocateRange(env, file_, 0, size, "cannot allocate");
  map_.Map(env, file_.fd(), path, size, size);
  IndexHeader& h = header();
  h.version = kIndexVersion;
  h.header_size = kHeaderSize;
  h.generation = generation;
  h.slot_count = slot_count;
  h.used_slots = 0;
  std::memcpy(h.magic, kIndexMagic, 8);
  slots_ = reinterpret_cast<std::uint64_t*>(map_.data() + IndexSlotOffset(0));
  n_ = slot_count;
}

void Index::Open(Env* env, const std::string& path, std::uint64_t generation) {
  env_ = env;
  file_ = FileHandle::Open(env, path, O_RDWR);
  auto size = static_cast<std::uint64_t>(file_.Size());
  map_.Map(env, file_.fd(), path, size < kHeaderSize ? 0 : kHeaderSize, IndexFileSize(kMaxSlots));
  CheckIndexHeader({map_.data(), std::min<std::uint64_t>(size, kHeaderSize)}, size, generation)
      .ThrowIfBad(path);
  const std::uint64_t n = header().slot_count;
  map_.Extend(IndexFileSize(n));
  slots_ = reinterpret_cast<std::uint64_t*>(map_.data() + IndexSlotOffset(0));
  n_ = n;
}

bool Index::Claim(std::uint64_t pos, std::uint64_t value, std::uint64_t* seen) const {
  std::uint64_t expected = 0;
  // acq_rel: release publishes the record bytes written before; acquire (on
  // failure, via *seen) lets us read the record of whoever won.
  if (slot(pos).compare_exchange_strong(expected, value, std::memory_order_acq_rel)) {
    // Relaxed: a statistic and a trigger for growth, not a synchronization point.
    Shared(header().used_slots).fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  *seen = expected;
  return false;
}

#ifndef NDEBUG
void CheckSlotMove(spdlog::logger& logger, const char* where, std::string_view key,
                   std::uint64_t replaced_seq, std::uint64_t installed_seq) {
  if (installed_seq > replaced_seq) return;
  logger.error(
      "index invariant violated: {} moved the slot of key {} from seq {} to seq {} (a slot only "
      "moves to a higher seq); aborting",
      where, Quote(key.substr(0, 64)), replaced_seq, installed_seq);
  logger.flush();
  std::abort();
}
#endif

void Index::OpenView(std::span<const char> file) {
  const auto& h = *reinterpret_cast<const IndexHeader*>(file.data());
  // Read-only: the pointer is non-const only for slot()'s atomic_ref, and
  // a view only loads through it.
  slots_ = reinterpret_cast<std::uint64_t*>(const_cast<char*>(file.data()) + IndexSlotOffset(0));
  n_ = h.slot_count;
}

void Index::Close() {
  map_.Unmap();
  file_.Reset();
  slots_ = nullptr;
  n_ = 0;
}

}  // namespace lilcache
