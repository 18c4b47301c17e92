// The module-level functions of lilcache.h: a process-wide default cache.
#include <pthread.h>

#include <memory>

#include "lilcache/lilcache.h"
#include "util/mutex.h"

namespace lilcache {
namespace {

// g_mu guards the pointer only: it is held to copy or swap it, never while a
// cache opens or closes, so a fork waits for it at most that long (the
// prepare handler below takes it, so the child's copy of g_default is whole).
Mutex g_mu;
std::shared_ptr<Cache> g_default GUARDED_BY(g_mu);
// Serializes the first open of the default cache (guards no data). In a
// fork child, the thread that held it does not exist: started afresh.
Mutex g_open_mu;

// The fork handlers, installed when the library is loaded (the mutexes are
// constant-initialized).
void LockForFork() ACQUIRE(g_mu) { g_mu.Lock(); }
void UnlockInParent() RELEASE(g_mu) { g_mu.Unlock(); }
void ResetInChild() RELEASE(g_mu) {
  g_mu.Unlock();
  g_open_mu.ResetAfterFork();
}
const int g_fork_handlers = pthread_atfork(LockForFork, UnlockInParent, ResetInChild);

std::shared_ptr<Cache> Current() {
  (void)g_fork_handlers;
  MutexLock lock(&g_mu);
  return g_default;
}

std::shared_ptr<Cache> Default() {
  if (auto c = Current()) return c;
  MutexLock open_lock(&g_open_mu);
  if (auto c = Current()) return c;
  auto opened = std::make_shared<Cache>(Cache::open());
  MutexLock lock(&g_mu);
  g_default = opened;
  return opened;
}

}  // namespace

void init(std::string_view name, const Options& options) {
  std::shared_ptr<Cache> next = std::make_shared<Cache>(Cache::open(name, options));
  {
    MutexLock lock(&g_mu);
    g_default.swap(next);
  }
  // `next` now holds the previous one: it closes here (outside g_mu) or when
  // its last user is done.
}

Cache& default_cache() { return *Default(); }
void set(std::string_view key, std::string_view value) { Default()->set(key, value); }
void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  Default()->set(key, value, ttl);
}
std::optional<std::string> get(std::string_view key) { return Default()->get(key); }
std::optional<std::string> pop(std::string_view key) { return Default()->pop(key); }
bool contains(std::string_view key) { return Default()->contains(key); }
bool erase(std::string_view key) { return Default()->erase(key); }
std::vector<std::string> keys(std::string_view prefix, std::size_t limit) {
  return Default()->keys(prefix, limit);
}
std::size_t size() { return Default()->size(); }
void purge() { Default()->purge(); }
bool add(std::string_view key, std::string_view value) { return Default()->add(key, value); }
bool add(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  return Default()->add(key, value, ttl);
}
std::int64_t increment(std::string_view key, std::int64_t delta, std::int64_t initial) {
  return Default()->increment(key, delta, initial);
}
std::int64_t decrement(std::string_view key, std::int64_t delta, std::int64_t initial) {
  return Default()->decrement(key, delta, initial);
}
std::optional<Versioned> get_versioned(std::string_view key) {
  return Default()->get_versioned(key);
}
bool compare_and_set(std::string_view key, std::uint64_t version, std::string_view value) {
  return Default()->compare_and_set(key, version, value);
}
bool compare_and_erase(std::string_view key, std::uint64_t version) {
  return Default()->compare_and_erase(key, version);
}
bool touch(std::string_view key, std::chrono::milliseconds ttl) {
  return Default()->touch(key, ttl);
}
bool persist(std::string_view key) { return Default()->persist(key); }
std::optional<std::chrono::milliseconds> ttl(std::string_view key) { return Default()->ttl(key); }
std::string get_or_set(std::string_view key, const std::function<std::string()>& compute) {
  return Default()->get_or_set(key, compute);
}
std::string get_or_set(std::string_view key, const std::function<std::string()>& compute,
                       std::chrono::milliseconds ttl) {
  return Default()->get_or_set(key, compute, ttl);
}
std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys) {
  return Default()->get_many(keys);
}
void set_many(const std::vector<std::pair<std::string, std::string>>& items) {
  Default()->set_many(items);
}
std::size_t erase_many(const std::vector<std::string>& keys) { return Default()->erase_many(keys); }

}  // namespace lilcache
