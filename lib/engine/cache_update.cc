// Cache::Impl's conditional writes (add, increment, compare-and-set,
// touch, persist), get_or_set() and the batches. The one mechanism under the
// conditional writes is Update(): read the key's slot, decide, append,
// publish with a CAS from exactly the slot value read (docs/concurrency.md,
// "Conditional writes").
#include <charconv>
#include <limits>

#include "engine/cache_impl.h"
#include "engine/counter.h"
#include "engine/operation.h"
#include "lilcache/env.h"

namespace lilcache {

// ---- Update -----------------------------------------------------------------

Cache::Impl::Outcome Cache::Impl::UpdateIn(Generation& g, std::string_view key, std::uint64_t hash,
                                           const Decide& decide, bool* wrote, Written& w) {
  for (;;) {
    Index::Probe p = g.Find(key, hash);
    record::RecordView cur;
    bool visible = false;
    if (p.value != 0) {
      cur = g.Record(Index::OffsetOf(p.value));
      bool expired = false;
      visible = Visible(cur, &expired);
      if (visible) CheckIntegrity(g, cur);
    }
    const Change c = decide(visible ? &cur : nullptr);
    if (c.kind == Change::Kind::kNothing) {
      *wrote = false;
      return Outcome::kDone;
    }
    if (p.full) return Outcome::kIndexFull;  // a new key, and no slot for it: nothing appended
    const bool erase = c.kind == Change::Kind::kErase;
    // Drawn after reading cur, so above its seq: the slot moves only up.
    const record::NewRecord rec =
        Sequenced({erase ? record::RecordType::kTombstone : record::RecordType::kSet, key,
                   erase ? std::string_view() : c.value, 0, erase ? 0 : c.expires_ms,
                   erase ? std::uint8_t{0} : c.value_kind});
    const std::size_t size = record::RecordSize(key.size(), rec.value.size());
    const std::uint64_t off = Append(g, rec, w);
    const std::uint64_t slot_value = Index::Pack(hash, off);
    const std::uint64_t seen = p.value;
    // acq_rel as in SetIn. From exactly the value read: the record decide
    // saw is still the key's when ours replaces it.
    const bool published = seen == 0 ? g.index.Claim(p.pos, slot_value, &p.value)
                                     : g.index.slot(p.pos).compare_exchange_strong(
                                           p.value, slot_value, std::memory_order_acq_rel);
    if (published) {
      if (seen != 0) {
        CheckSlotMove(core_.logger(), "update", key, cur.seq(), rec.seq);
        AddDead(g, cur.size());
      }
      *wrote = true;
      return Outcome::kDone;
    }
    // Another writer changed the key (or claimed that empty slot) first.
    Abort(g, off, size);
  }
}

bool Cache::Impl::Update(std::string_view key, const char* op, const Decide& decide) {
  CheckKey(key);
  ReattachIfForked();
  const std::uint64_t hash = record::HashKey(key, core_.salt());
  WriteFollowUp follow_up;
  bool wrote = false;
  for (;;) {
    std::uint64_t slots;
    {
      WriterSection w(core_);
      Written written;
      if (UpdateIn(w.gen(), key, hash, decide, &wrote, written) == Outcome::kDone) {
        if (wrote) {
          SyncWritten(w.gen(), written);
          follow_up = AssessWrite(w.gen());
        }
        break;
      }
      slots = w.gen().index.slot_count();
    }
    if (!Compact({.reason = "index full", .min_slots = slots * 2})) env_->SleepMicros(1000);
  }
  if (wrote) core_.Count(CacheCore::kSets);
  if (core_.logger().should_log(spdlog::level::debug)) {
    core_.logger().debug("{} key of {} bytes: {}", op, key.size(),
                         wrote ? "written" : "not written");
  }
  AfterWrite(follow_up);
  return wrote;
}

// ---- the conditional writes ---------------------------------------------------

bool Cache::Impl::Add(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                      std::uint8_t kind) {
  CheckValue(value);
  const std::uint64_t expires = ExpiryOf(ttl_ms);
  return Update(key, "add", [&](const record::RecordView* cur) {
    if (cur != nullptr) return Change{};
    return Change{Change::Kind::kSet, value, expires, kind};
  });
}

std::int64_t Cache::Impl::Increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                                    std::uint64_t ttl_ms) {
  const std::uint64_t expires = ExpiryOf(ttl_ms);
  std::int64_t result = 0;
  char buf[24];
  Update(key, "increment", [&](const record::RecordView* cur) {
    const std::int64_t base = cur != nullptr ? ParseCounter(key, cur->value()) : initial;
    result = AddToCounter(key, base, delta);
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, result);
    (void)ec;  // 24 bytes hold any int64
    // A present key keeps its expiry.
    return Change{Change::Kind::kSet, std::string_view(buf, static_cast<std::size_t>(end - buf)),
                  cur != nullptr ? cur->expires_ms() : expires,
                  static_cast<std::uint8_t>(ValueKind::integer)};
  });
  return result;
}

bool Cache::Impl::CompareAndSet(std::string_view key, std::uint64_t version, std::string_view value,
                                std::uint64_t ttl_ms, std::uint8_t kind) {
  CheckValue(value);
  const std::uint64_t expires = ExpiryOf(ttl_ms);
  return Update(key, "compare_and_set", [&](const record::RecordView* cur) {
    if (cur == nullptr || cur->seq() != version) return Change{};
    return Change{Change::Kind::kSet, value, expires, kind};
  });
}

bool Cache::Impl::CompareAndErase(std::string_view key, std::uint64_t version) {
  const bool erased = Update(key, "compare_and_erase", [&](const record::RecordView* cur) {
    if (cur == nullptr || cur->seq() != version) return Change{};
    return Change{Change::Kind::kErase, {}, 0};
  });
  if (erased) {
    // Update() counted it as a set.
    core_.Count(CacheCore::kSets, ~std::uint64_t{0});
    core_.Count(CacheCore::kDeletes);
  }
  return erased;
}

bool Cache::Impl::Touch(std::string_view key, std::uint64_t ttl_ms) {
  const std::uint64_t expires = env_->NowMillis() + ttl_ms;
  return Update(key, "touch", [&](const record::RecordView* cur) {
    if (cur == nullptr) return Change{};
    return Change{Change::Kind::kSet, cur->value(), expires, cur->kind()};
  });
}

bool Cache::Impl::Persist(std::string_view key) {
  bool present = false;
  Update(key, "persist", [&](const record::RecordView* cur) {
    present = cur != nullptr;
    if (cur == nullptr || cur->expires_ms() == 0) return Change{};
    return Change{Change::Kind::kSet, cur->value(), 0, cur->kind()};
  });
  return present;
}

// ---- reads with the version or the expiry -----------------------------------

std::optional<Versioned> Cache::Impl::GetVersioned(std::string_view key) {
  Found found;
  std::string value;
  if (!Lookup(key, &value, &found)) return std::nullopt;
  return Versioned{std::move(value), found.seq, static_cast<ValueKind>(found.kind)};
}

std::optional<std::chrono::milliseconds> Cache::Impl::Ttl(std::string_view key) {
  Found found;
  if (!Lookup(key, nullptr, &found)) return std::nullopt;
  if (found.expires_ms == 0) return kNoExpiry;
  const std::uint64_t now = env_->NowMillis();
  return std::chrono::milliseconds(found.expires_ms > now ? found.expires_ms - now : 0);
}

// ---- get_or_set -----------------------------------------------------------------

TypedValue Cache::Impl::GetOrSet(std::string_view key, const std::function<TypedValue()>& compute,
                                 std::uint64_t ttl_ms) {
  Found found;
  std::string v;
  if (Lookup(key, &v, &found)) return TypedValue{std::move(v), static_cast<ValueKind>(found.kind)};
  const std::uint64_t lease = LeaseOf(record::HashKey(key, core_.salt()));
  const std::uint64_t start = env_->MonotonicNanos();
  const std::uint64_t deadline = start + get_or_set_timeout_ms_ * 1'000'000;
  std::uint64_t pause_us = 50;
  for (;;) {
    {
      Lease held;
      if (leases_.TryAcquire(core_.meta().file(), lease, &held)) {
        // Whoever held it may have stored the value just before releasing.
        if (Lookup(key, &v, &found, /*count=*/false)) {
          return TypedValue{std::move(v), static_cast<ValueKind>(found.kind)};
        }
        core_.logger().debug("get_or_set key of {} bytes: computing (lease {})", key.size(), lease);
        TypedValue value = compute();  // an exception releases the lease
        Set(key, value.value, ttl_ms, static_cast<std::uint8_t>(value.kind));
        return value;
      }
    }
    // Another caller computes (or a key sharing its lease): wait for the value.
    env_->SleepMicros(pause_us);
    pause_us = std::min<std::uint64_t>(pause_us * 2, 5000);
    if (get_or_set_wait_hook_) get_or_set_wait_hook_();  // may throw: we hold nothing
    // Not counted as a miss each time: one get_or_set is one lookup in stats().
    if (Lookup(key, &v, &found, /*count=*/false)) {
      return TypedValue{std::move(v), static_cast<ValueKind>(found.kind)};
    }
    if (env_->MonotonicNanos() >= deadline) {
      core_.logger().warn("get_or_set key of {} bytes: gave up waiting after {} ms (lease {})",
                          key.size(), get_or_set_timeout_ms_, lease);
      throw Error(ErrorCode::busy,
                  "get_or_set: another caller has been computing the value for longer than "
                  "get_or_set_timeout (" +
                      std::to_string(get_or_set_timeout_ms_) + " ms)");
    }
  }
}

// ---- batches --------------------------------------------------------------------

std::vector<std::optional<std::string>> Cache::Impl::GetMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) CheckKey(k);
  ReattachIfForked();
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  auto gen = Shared(core_.meta().header().generation);
  std::uint64_t hits = 0;
  std::size_t i = 0;
  while (i < keys.size()) {
    PinGuard pin(core_.Pin());
    Generation& g = *pin.get();
    // As in Lookup: a key read in g is current only if g is still the
    // generation after the read; when it changes, re-pin and go on.
    if (g.number != gen.load(std::memory_order_acquire)) {
      core_.Refresh();
      continue;
    }
    for (; i < keys.size(); ++i) {
      bool expired = false;
      std::string value;
      std::optional<std::string> v;
      if (LookupIn(g, keys[i], record::HashKey(keys[i], core_.salt()), &value, nullptr, &expired)) {
        v = std::move(value);
      }
      if (g.number != gen.load(std::memory_order_acquire)) break;  // read it again
      hits += v.has_value() ? 1 : 0;
      if (expired) core_.Count(CacheCore::kExpired);
      out.push_back(std::move(v));
    }
  }
  // Relaxed: counters for stats().
  core_.Count(CacheCore::kHits, hits);
  core_.Count(CacheCore::kMisses, keys.size() - hits);
  core_.logger().debug("get_many of {} keys: {} hits", keys.size(), hits);
  return out;
}

void Cache::Impl::SetMany(const std::vector<std::pair<std::string, std::string>>& items,
                          std::uint64_t ttl_ms) {
  for (const auto& [k, v] : items) {
    CheckKey(k);
    CheckValue(v);
  }
  ReattachIfForked();
  const std::uint64_t expires = ExpiryOf(ttl_ms);
  WriteFollowUp follow_up;
  std::size_t i = 0;
  while (i < items.size()) {
    std::uint64_t slots = 0;
    double pace = 0;
    const std::size_t begin = i;
    {
      WriterSection w(core_);
      Written written;
      const std::size_t end = std::min(items.size(), i + kBatchChunk);
      for (; i < end; ++i) {
        const auto& [k, v] = items[i];
        record::NewRecord rec{record::RecordType::kSet, k, v, 0, expires};
        if (SetIn(w.gen(), rec, record::HashKey(k, core_.salt()), written) == Outcome::kIndexFull) {
          slots = w.gen().index.slot_count();
          break;
        }
        core_.Count(CacheCore::kSets);
      }
      SyncWritten(w.gen(), written);
      const WriteFollowUp f = AssessWrite(w.gen());
      pace = f.pace;
      follow_up.compact = follow_up.compact || f.compact;
    }
    // Backpressure per item, as for single sets, outside the writer section.
    Pace(pace, i - begin);
    if (slots != 0 && !Compact({.reason = "index full", .min_slots = slots * 2})) {
      env_->SleepMicros(1000);
    }
  }
  core_.logger().debug("set_many of {} items", items.size());
  AfterWrite(follow_up);
}

std::size_t Cache::Impl::EraseMany(const std::vector<std::string>& keys) {
  for (const std::string& k : keys) CheckKey(k);
  ReattachIfForked();
  std::size_t removed = 0;
  WriteFollowUp follow_up;
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t removed_here = 0;
    double pace = 0;
    {
      WriterSection w(core_);
      Written written;
      const std::size_t end = std::min(keys.size(), i + kBatchChunk);
      for (; i < end; ++i) {
        bool found = false;
        PopIn(w.gen(), keys[i], record::HashKey(keys[i], core_.salt()), false, &found, written);
        CountHit(found, false);
        removed_here += found ? 1 : 0;
      }
      SyncWritten(w.gen(), written);
      const WriteFollowUp f = AssessWrite(w.gen());
      pace = f.pace;
      follow_up.compact = follow_up.compact || f.compact;
    }
    // Backpressure per tombstone written, as for single erases.
    Pace(pace, removed_here);
    removed += removed_here;
  }
  core_.Count(CacheCore::kDeletes, removed);
  core_.logger().debug("erase_many of {} keys: {} removed", keys.size(), removed);
  AfterWrite(follow_up);
  return removed;
}

}  // namespace lilcache
