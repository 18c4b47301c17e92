// fork: what a fork child must do to the library's state before it runs.
//
// OFD locks belong to the open file description, and a fork child shares
// every description of its parent: through its copy of a descriptor, a child
// that unlocks drops the PARENT's lock, and a child that merely lives on keeps
// a dead parent's locks held (the kernel drops them only when the last
// reference to the description goes, and a MAP_SHARED mapping made through
// it is such a reference too). So every object that owns a descriptor on
// which it takes OFD locks (Meta) or state that a parent thread may hold at
// the fork (Cache::Impl's mutexes) registers a ForkHook here; one set of
// pthread_atfork handlers runs them:
//  * prepare (in the forking thread): takes ForkMutex(), then calls
//    BeforeFork() of every hook in registration order;
//  * parent: AfterForkInParent() of every hook, then releases ForkMutex();
//  * child: bumps the fork epoch, calls AfterForkInChild() of every hook, then
//    releases ForkMutex(). The child has one thread, the copy of the forking
//    one; POSIX allows it only async-signal-safe calls until it is done here,
//    so AfterForkInChild() does no allocation, takes no lock and calls no Env
//    method (a subclass may lock): close(2) and plain stores.
// A hook's state that AfterForkInChild() reads must only change under
// ForkMutex() (or a mutex its BeforeFork() takes), so that a fork never copies
// it half-changed. ForkMutex() is a leaf: nothing else is locked while it is
// held except by the prepare handler (hooks' BeforeFork() locks).
#pragma once

#include <atomic>
#include <cstdint>

#include "util/mutex.h"

namespace lilcache {

class ForkHook {
 public:
  virtual void BeforeFork() {}
  virtual void AfterForkInParent() {}
  virtual void AfterForkInChild() = 0;

 protected:
  ~ForkHook() = default;
};

namespace internal {
extern Mutex g_fork_mu;  // ForkMutex()
}  // namespace internal

// Held by the atfork prepare handler until the fork is over.
Mutex& ForkMutex() RETURN_CAPABILITY(internal::g_fork_mu);
// The caller holds ForkMutex(). A hook is registered at most once.
void RegisterForkHookLocked(ForkHook* hook) REQUIRES(internal::g_fork_mu);
void UnregisterForkHookLocked(ForkHook* hook) REQUIRES(internal::g_fork_mu);

// Registers a hook for the lifetime of this object (a member of the hook,
// declared last: registered once every other member exists, unregistered
// before any is destroyed).
class ForkRegistration {
 public:
  explicit ForkRegistration(ForkHook* hook) : hook_(hook) {
    MutexLock lock(&ForkMutex());
    RegisterForkHookLocked(hook_);
  }
  ~ForkRegistration() {
    MutexLock lock(&ForkMutex());
    UnregisterForkHookLocked(hook_);
  }
  ForkRegistration(const ForkRegistration&) = delete;
  ForkRegistration& operator=(const ForkRegistration&) = delete;

 private:
  ForkHook* hook_;
};

namespace internal {
extern std::atomic<std::uint64_t> g_fork_epoch;
}  // namespace internal

// How many forks this process descends from since the library was loaded:
// bumped in every fork child, before AfterForkInChild(). Relaxed: written only
// by the child's single thread before it can start another; threads started
// later synchronize with their creation.
inline std::uint64_t ForkEpoch() { return internal::g_fork_epoch.load(std::memory_order_relaxed); }

}  // namespace lilcache
