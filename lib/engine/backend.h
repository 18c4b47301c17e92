// backend: Cache::Backend, what lilcache::Cache forwards every call to. Two
// implement it: the local engine (Cache::Impl, engine/cache_impl.h) and the
// Redis backend (cluster::RedisCache, cluster/redis_cache.h), chosen by
// Options::backend at Cache::open() (api/cache.cc).
//
// The public Cache checks what is independent of the backend (a ttl > 0, a
// WriteOptions' ttl and kind, a moved-from handle) and passes ttl_ms = 0 for
// "the handle's default expiry". Everything else (keys, values, limits) is
// checked here, by each backend, with the messages of operation.h.
//
// Thread-safety: every method may be called from any number of threads at
// once (the Cache contract).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lilcache/lilcache.h"

namespace lilcache {

class Cache::Backend {
 public:
  virtual ~Backend() = default;

  // kind: the value's ValueKind as a byte.
  virtual void Set(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                   std::uint8_t kind) = 0;
  virtual std::optional<std::string> Get(std::string_view key) = 0;
  virtual bool GetInto(std::string_view key, std::string& value, ValueKind* kind) = 0;
  // `kind` (if not null) receives the popped value's kind. !want_value:
  // erase() (the optional holds "" if a key was removed).
  virtual std::optional<std::string> Pop(std::string_view key, bool want_value,
                                         std::uint8_t* kind) = 0;
  virtual bool Contains(std::string_view key) = 0;
  virtual void Purge() = 0;
  virtual std::size_t Size() = 0;
  // Calls fn for each live key with the prefix; `verify`: values are handed
  // out (for_each), else only keys (keys, for_each_key: the value is "").
  virtual void ForEach(std::string_view prefix,
                       const std::function<bool(std::string_view, std::string_view)>& fn,
                       bool verify) = 0;
  virtual Stats GetStats() = 0;

  virtual bool Add(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                   std::uint8_t kind) = 0;
  virtual std::int64_t Increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                                 std::uint64_t ttl_ms) = 0;
  virtual std::optional<Versioned> GetVersioned(std::string_view key) = 0;
  virtual bool CompareAndSet(std::string_view key, std::uint64_t version, std::string_view value,
                             std::uint64_t ttl_ms, std::uint8_t kind) = 0;
  virtual bool CompareAndErase(std::string_view key, std::uint64_t version) = 0;
  virtual bool Touch(std::string_view key, std::uint64_t ttl_ms) = 0;
  virtual bool Persist(std::string_view key) = 0;
  virtual std::optional<std::chrono::milliseconds> Ttl(std::string_view key) = 0;
  virtual TypedValue GetOrSet(std::string_view key, const std::function<TypedValue()>& compute,
                              std::uint64_t ttl_ms) = 0;
  virtual std::vector<std::optional<std::string>> GetMany(const std::vector<std::string>& keys) = 0;
  virtual void SetMany(const std::vector<std::pair<std::string, std::string>>& items,
                       std::uint64_t ttl_ms) = 0;
  virtual std::size_t EraseMany(const std::vector<std::string>& keys) = 0;

  // Cache::compact() / snapshot(), Cache::sync().
  virtual CompactionResult CompactNow() = 0;
  virtual void Sync() = 0;

  virtual const std::string& name() const = 0;
  virtual const std::string& root() const = 0;
  virtual Env* env() const = 0;
};

}  // namespace lilcache
