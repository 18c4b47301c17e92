// The module-level functions of lilcache.h: a process-wide default cache.
#include <memory>
#include <mutex>

#include "lilcache/lilcache.h"

namespace lilcache {
namespace {

std::mutex g_mu;
std::shared_ptr<Cache> g_default;  // guarded by g_mu

std::shared_ptr<Cache> Default() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_default) g_default = std::make_shared<Cache>(Cache::open());
  return g_default;
}

}  // namespace

void init(std::string_view name, const Options& options) {
  auto next = std::make_shared<Cache>(Cache::open(name, options));
  std::lock_guard<std::mutex> lock(g_mu);
  g_default = std::move(next);  // the previous one closes when its last user is done
}

Cache& default_cache() { return *Default(); }
void set(std::string_view key, std::string_view value) { Default()->set(key, value); }
void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  Default()->set(key, value, ttl);
}
std::optional<std::string> get(std::string_view key) { return Default()->get(key); }
std::optional<std::string> pop(std::string_view key) { return Default()->pop(key); }
bool contains(std::string_view key) { return Default()->contains(key); }
void purge() { Default()->purge(); }

}  // namespace lilcache
