#include "engine/fork.h"

#include <pthread.h>

#include <algorithm>
#include <vector>

namespace lilcache {
namespace internal {
std::atomic<std::uint64_t> g_fork_epoch{0};
// Constant-initialized (constexpr constructor; trivial destructor).
Mutex g_fork_mu;
}  // namespace internal

namespace {

using internal::g_fork_mu;

// The registered hooks; guarded by g_fork_mu (also its first use, so no fork
// copies its initialization half done). Never destroyed: static destructors
// run at exit() in no order across files, and a Cache destroyed then (the
// default cache, a static one) unregisters itself.
std::vector<ForkHook*>& Hooks() {
  static auto* hooks = new std::vector<ForkHook*>();
  return *hooks;
}

void Prepare() ACQUIRE(g_fork_mu) {
  g_fork_mu.Lock();
  for (ForkHook* h : Hooks()) h->BeforeFork();
}

void Parent() RELEASE(g_fork_mu) {
  for (ForkHook* h : Hooks()) h->AfterForkInParent();
  g_fork_mu.Unlock();
}

void Child() RELEASE(g_fork_mu) {
  internal::g_fork_epoch.fetch_add(1, std::memory_order_relaxed);
  for (ForkHook* h : Hooks()) h->AfterForkInChild();
  g_fork_mu.Unlock();
}

const int g_installed = pthread_atfork(Prepare, Parent, Child);

}  // namespace

Mutex& ForkMutex() {
  (void)g_installed;
  return g_fork_mu;
}

void RegisterForkHookLocked(ForkHook* hook) { Hooks().push_back(hook); }

void UnregisterForkHookLocked(ForkHook* hook) {
  auto it = std::find(Hooks().begin(), Hooks().end(), hook);
  if (it != Hooks().end()) Hooks().erase(it);
}

}  // namespace lilcache
