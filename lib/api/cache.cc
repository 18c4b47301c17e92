// The public Cache: checks what is the same for every backend, and forwards
// to the Cache::Backend chosen by Options::backend at open (backend.h): the
// local engine (engine/cache_impl.h) or Redis (cluster/redis_cache.h).
#include "cluster/redis_cache.h"
#include "engine/backend.h"
#include "engine/cache_impl.h"

namespace lilcache {

Cache::Cache(std::unique_ptr<Backend> impl) : impl_(std::move(impl)) {}
Cache::Cache(Cache&&) noexcept = default;
Cache& Cache::operator=(Cache&&) noexcept = default;
Cache::~Cache() = default;

Cache Cache::open(std::string_view name, const Options& options) {
  if (std::string url = cluster::ResolveBackend(options.backend); !url.empty()) {
    return Cache(std::make_unique<cluster::RedisCache>(name, options, url));
  }
  return Cache(std::make_unique<Impl>(name, options));
}

static Cache::Backend& Checked(const std::unique_ptr<Cache::Backend>& impl) {
  if (!impl) throw Error(ErrorCode::invalid_state, "use of a moved-from lilcache::Cache");
  return *impl;
}

// A ttl argument in ms; throws unless > 0.
static std::uint64_t TtlMs(std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) {
    throw Error(ErrorCode::invalid_argument,
                "invalid ttl: " + std::to_string(ttl.count()) + " ms (must be > 0)");
  }
  return static_cast<std::uint64_t>(ttl.count());
}

void Cache::set(std::string_view key, std::string_view value) {
  Checked(impl_).Set(key, value, 0, 0);
}

void Cache::set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  Checked(impl_).Set(key, value, TtlMs(ttl), 0);
}

// WriteOptions::ttl in ms (0: Options::expires); throws if negative.
static std::uint64_t TtlMs(const WriteOptions& w) {
  if (w.ttl.count() < 0) {
    throw Error(ErrorCode::invalid_argument,
                "invalid ttl: " + std::to_string(w.ttl.count()) + " ms (must be >= 0)");
  }
  return static_cast<std::uint64_t>(w.ttl.count());
}

// ValueKind as the record's KIND; throws on a value outside the enum.
static std::uint8_t KindOf(const WriteOptions& w) {
  const auto k = static_cast<std::uint8_t>(w.kind);
  if (k > static_cast<std::uint8_t>(ValueKind::serialized)) {
    throw Error(ErrorCode::invalid_argument, "invalid ValueKind " + std::to_string(k));
  }
  return k;
}

void Cache::set(std::string_view key, std::string_view value, const WriteOptions& w) {
  Checked(impl_).Set(key, value, TtlMs(w), KindOf(w));
}

bool Cache::add(std::string_view key, std::string_view value, const WriteOptions& w) {
  return Checked(impl_).Add(key, value, TtlMs(w), KindOf(w));
}

bool Cache::compare_and_set(std::string_view key, std::uint64_t version, std::string_view value,
                            const WriteOptions& w) {
  return Checked(impl_).CompareAndSet(key, version, value, TtlMs(w), KindOf(w));
}

TypedValue Cache::get_or_set(std::string_view key, const std::function<TypedValue()>& compute,
                             const WriteOptions& w) {
  return Checked(impl_).GetOrSet(key, compute, TtlMs(w));
}

bool Cache::add(std::string_view key, std::string_view value) {
  return Checked(impl_).Add(key, value, 0, 0);
}
bool Cache::add(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  return Checked(impl_).Add(key, value, TtlMs(ttl), 0);
}

std::int64_t Cache::increment(std::string_view key, std::int64_t delta, std::int64_t initial) {
  return Checked(impl_).Increment(key, delta, initial, 0);
}
std::int64_t Cache::increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                              std::chrono::milliseconds ttl) {
  return Checked(impl_).Increment(key, delta, initial, TtlMs(ttl));
}
// -delta; throws for INT64_MIN, whose negation is not an int64.
static std::int64_t Negated(std::int64_t delta) {
  if (delta == INT64_MIN) {
    throw Error(ErrorCode::limit, "cannot decrement by " + std::to_string(delta) +
                                      ": its negation overflows an int64");
  }
  return -delta;
}

std::int64_t Cache::decrement(std::string_view key, std::int64_t delta, std::int64_t initial) {
  return Checked(impl_).Increment(key, Negated(delta), initial, 0);
}
std::int64_t Cache::decrement(std::string_view key, std::int64_t delta, std::int64_t initial,
                              std::chrono::milliseconds ttl) {
  return Checked(impl_).Increment(key, Negated(delta), initial, TtlMs(ttl));
}

std::optional<Versioned> Cache::get_versioned(std::string_view key) {
  return Checked(impl_).GetVersioned(key);
}
bool Cache::compare_and_set(std::string_view key, std::uint64_t version, std::string_view value) {
  return Checked(impl_).CompareAndSet(key, version, value, 0, 0);
}
bool Cache::compare_and_set(std::string_view key, std::uint64_t version, std::string_view value,
                            std::chrono::milliseconds ttl) {
  return Checked(impl_).CompareAndSet(key, version, value, TtlMs(ttl), 0);
}
bool Cache::compare_and_erase(std::string_view key, std::uint64_t version) {
  return Checked(impl_).CompareAndErase(key, version);
}

bool Cache::touch(std::string_view key, std::chrono::milliseconds ttl) {
  return Checked(impl_).Touch(key, TtlMs(ttl));
}
bool Cache::persist(std::string_view key) { return Checked(impl_).Persist(key); }
std::optional<std::chrono::milliseconds> Cache::ttl(std::string_view key) {
  return Checked(impl_).Ttl(key);
}

// The untyped compute as a typed one (its values are bytes).
static std::function<TypedValue()> AsBytes(const std::function<std::string()>& compute) {
  return [&compute] { return TypedValue{compute(), ValueKind::bytes}; };
}

std::string Cache::get_or_set(std::string_view key, const std::function<std::string()>& compute) {
  return Checked(impl_).GetOrSet(key, AsBytes(compute), 0).value;
}
std::string Cache::get_or_set(std::string_view key, const std::function<std::string()>& compute,
                              std::chrono::milliseconds ttl) {
  return Checked(impl_).GetOrSet(key, AsBytes(compute), TtlMs(ttl)).value;
}

std::vector<std::optional<std::string>> Cache::get_many(const std::vector<std::string>& keys) {
  return Checked(impl_).GetMany(keys);
}
void Cache::set_many(const std::vector<std::pair<std::string, std::string>>& items) {
  Checked(impl_).SetMany(items, 0);
}
void Cache::set_many(const std::vector<std::pair<std::string, std::string>>& items,
                     std::chrono::milliseconds ttl) {
  Checked(impl_).SetMany(items, TtlMs(ttl));
}
std::size_t Cache::erase_many(const std::vector<std::string>& keys) {
  return Checked(impl_).EraseMany(keys);
}

std::optional<std::string> Cache::get(std::string_view key) { return Checked(impl_).Get(key); }
std::optional<std::string> Cache::pop(std::string_view key) {
  return Checked(impl_).Pop(key, true, nullptr);
}
bool Cache::get(std::string_view key, std::string& value, ValueKind* kind) {
  return Checked(impl_).GetInto(key, value, kind);
}
std::optional<TypedValue> Cache::get_typed(std::string_view key) {
  std::optional<Versioned> v = Checked(impl_).GetVersioned(key);
  if (!v) return std::nullopt;
  return TypedValue{std::move(v->value), v->kind};
}
std::optional<TypedValue> Cache::pop_typed(std::string_view key) {
  std::uint8_t kind = 0;
  std::optional<std::string> v = Checked(impl_).Pop(key, true, &kind);
  if (!v) return std::nullopt;
  return TypedValue{std::move(*v), static_cast<ValueKind>(kind)};
}
bool Cache::erase(std::string_view key) {
  return Checked(impl_).Pop(key, false, nullptr).has_value();
}
bool Cache::contains(std::string_view key) { return Checked(impl_).Contains(key); }
void Cache::purge() { Checked(impl_).Purge(); }
std::size_t Cache::size() { return Checked(impl_).Size(); }

std::vector<std::string> Cache::keys(std::string_view prefix, std::size_t limit) {
  std::vector<std::string> out;
  if (limit == 0) return out;
  Checked(impl_).ForEach(
      prefix,
      [&](std::string_view k, std::string_view) {
        out.emplace_back(k);
        return out.size() < limit;
      },
      /*verify=*/false);
  return out;
}

void Cache::for_each_key(std::string_view prefix, const std::function<bool(std::string_view)>& fn) {
  Checked(impl_).ForEach(
      prefix, [&](std::string_view k, std::string_view) { return fn(k); }, /*verify=*/false);
}

void Cache::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  Checked(impl_).ForEach({}, fn, /*verify=*/true);
}

Stats Cache::stats() { return Checked(impl_).GetStats(); }

CompactionResult Cache::snapshot() { return compact(); }  // compactions are snapshots
void Cache::sync() { Checked(impl_).Sync(); }

CompactionResult Cache::compact() { return Checked(impl_).CompactNow(); }
const std::string& Cache::name() const { return Checked(impl_).name(); }
const std::string& Cache::root() const { return Checked(impl_).root(); }
Env* Cache::env() const { return Checked(impl_).env(); }

std::string_view version() { return LILCACHE_VERSION; }

}  // namespace lilcache
