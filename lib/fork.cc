#include "fork.h"

#include <pthread.h>

#include <algorithm>
#include <vector>

namespace lilcache {
namespace internal {
std::atomic<std::uint64_t> g_fork_epoch{0};
}  // namespace internal

namespace {

// Constant-initialized (constexpr constructors), so usable from any static
// initializer; the handlers are installed when the library is loaded.
std::mutex g_mu;
std::vector<ForkHook*> g_hooks;  // guarded by g_mu

void Prepare() {
  g_mu.lock();
  for (ForkHook* h : g_hooks) h->BeforeFork();
}

void Parent() {
  for (ForkHook* h : g_hooks) h->AfterForkInParent();
  g_mu.unlock();
}

void Child() {
  internal::g_fork_epoch.fetch_add(1, std::memory_order_relaxed);
  for (ForkHook* h : g_hooks) h->AfterForkInChild();
  g_mu.unlock();
}

const int g_installed = pthread_atfork(Prepare, Parent, Child);

}  // namespace

std::mutex& ForkMutex() {
  (void)g_installed;
  return g_mu;
}

void RegisterForkHookLocked(ForkHook* hook) { g_hooks.push_back(hook); }

void UnregisterForkHookLocked(ForkHook* hook) {
  auto it = std::find(g_hooks.begin(), g_hooks.end(), hook);
  if (it != g_hooks.end()) g_hooks.erase(it);
}

}  // namespace lilcache
