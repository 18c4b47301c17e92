#include "engine/generation.h"

#include "lilcache/lilcache.h"
#include "util/names.h"

namespace lilcache {

std::size_t NewThreadStripe() {
  // Relaxed: only distinctness matters, which the RMW gives in any order.
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % kStripes;
}

void Generation::Open(Env* env, const CachePaths& paths, std::uint64_t gen, std::uint64_t s) {
  number = gen;
  salt = s;
  data.Open(env, paths.data(gen), gen, salt);
  index.Open(env, paths.index(gen), gen);
}

void Generation::Close() {
  data.Close();
  index.Close();
}

record::RecordView Generation::RecordSlow(std::uint64_t offset) {
  data.EnsureMapped(offset + record::kRecordHeaderSize);
  record::RecordView rec;
  rec.header = reinterpret_cast<const record::RecordHeader*>(data.base() + offset);
  const auto* h = rec.header;
  if (offset < kFirstRecordOffset || offset % record::kAlign != 0 ||
      record::CheckRecordHeader(*h) != record::Damage::kNone) {
    throw Error(ErrorCode::corrupt, "corrupt cache: the index of " + index.path() +
                                        " points at offset " + std::to_string(offset) + " of " +
                                        data.path() + ", which holds no record");
  }
  data.EnsureMapped(offset + rec.size());
  return rec;
}

}  // namespace lilcache
