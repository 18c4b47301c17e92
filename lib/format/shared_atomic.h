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

// An atomic load of a field seen through a const view (a header validator's
// bytes, the inspector's PROT_READ mapping) that other processes may update
// meanwhile. The const_cast is only for atomic_ref's signature: a lock-free
// load never writes.
template <typename T>
inline T LoadShared(const T& field, std::memory_order order) {
  return Shared(const_cast<T&>(field)).load(order);
}

}  // namespace lilcache
