// Atomic access to fields of memory shared between processes (mmapped
// files). Every field documented as *atomic* in docs/format.md is accessed
// only through these; each call site states its memory order and why.
#pragma once

#include <atomic>
#include <cstdint>

namespace lilcache {

// An atomic view of a naturally aligned integer in a shared mapping.
template <typename T>
inline std::atomic_ref<T> Shared(T& field) {
  static_assert(std::atomic_ref<T>::is_always_lock_free,
                "shared-memory atomics must be lock-free to work across processes");
  return std::atomic_ref<T>(field);
}

}  // namespace lilcache
