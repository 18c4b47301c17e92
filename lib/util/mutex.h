// mutex: the in-process mutex of the library, annotated for clang's thread
// safety analysis (-Wthread-safety, on in clang builds: meson.build), as
// leveldb's port::Mutex and thread_annotations.h.
//
// A member that a mutex guards says so with GUARDED_BY(mu_); a function that
// must be called with it held says REQUIRES(mu_), one that takes it itself
// EXCLUDES(mu_). Clang then checks every access at compile time; on other
// compilers the macros expand to nothing.
//
// Only in-process mutexes are annotated. The OFD byte-range locks on
// NAME.meta (file_lock.h) are held by open file descriptions shared between
// processes, and what they guard lives in shared memory: the analysis cannot
// follow them (docs/concurrency.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>

#if defined(__clang__)
#define LILCACHE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define LILCACHE_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) LILCACHE_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY LILCACHE_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) LILCACHE_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) LILCACHE_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) LILCACHE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) LILCACHE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) LILCACHE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) LILCACHE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) LILCACHE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) LILCACHE_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) LILCACHE_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS LILCACHE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace lilcache {

class CondVar;

// A std::mutex that clang's analysis knows as a capability.
class CAPABILITY("mutex") Mutex {
 public:
  constexpr Mutex() = default;  // constant-initialized: usable in static objects
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the calling thread holds the mutex (where it
  // cannot see it: a fork handler, a callback).
  void AssertHeld() ASSERT_CAPABILITY(this) {}

  // In a fork child: the mutex starts afresh (unlocked), whichever thread of
  // the parent held it. Only where the fork handlers say so (fork.h).
  void ResetAfterFork() NO_THREAD_SAFETY_ANALYSIS { new (&mu_) std::mutex; }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a mutex for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable tied to one Mutex, which the caller holds around
// every Wait (as leveldb's port::CondVar). Wait is not annotated REQUIRES:
// the analysis cannot tell that mu_ is the caller's mutex.
class CondVar {
 public:
  explicit CondVar(Mutex* mu) : mu_(mu) {}
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases the mutex while waiting; holds it again on return. May wake
  // spuriously: callers loop on their condition.
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait(), until `deadline` at the latest.
  void WaitUntil(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    cv_.wait_until(lock, deadline);
    lock.release();
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

  // In a fork child, with the mutex (fork.h).
  void ResetAfterFork() { new (&cv_) std::condition_variable; }

 private:
  Mutex* const mu_;
  std::condition_variable cv_;
};

}  // namespace lilcache
