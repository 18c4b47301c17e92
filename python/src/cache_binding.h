// lilcache._lilcache._Cache: a Cache handle for Python (the base class of
// lilcache.Cache, python/lilcache/__init__.py).
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "convert.h"
#include "lilcache/lilcache.h"

namespace lilcache::python {

// Concurrency: every method runs with the GIL held on entry, takes a
// reference to the C++ handle (cache_, guarded by the GIL), and releases the
// GIL while the engine works; close() drops cache_ under the GIL, and the C++
// handle closes when the last call still using it returns. So close() may
// race any call from another thread safely: the call finishes on the handle
// it started with, later calls raise Error (invalid_state).
class PyCache {
 public:
  PyCache(const std::string& name, const Options& options, Serializer serializer);

  // The open C++ handle, or Error (invalid_state) once closed. GIL held.
  std::shared_ptr<Cache> Handle() const;
  void Close();
  bool closed() const { return cache_ == nullptr; }
  Serializer serializer() const { return serializer_; }
  const std::string& name() const { return name_; }
  const std::string& root() const { return root_; }

 private:
  std::shared_ptr<Cache> cache_;  // guarded by the GIL; null once closed
  Serializer serializer_;
  std::string name_;
  std::string root_;
};

void RegisterCache(pybind11::module_& m);

// Runs fn(cache) with the GIL released (called with it held), on the handle
// of self (Error invalid_state if it is closed).
template <typename Fn>
auto Unlocked(const PyCache& self, Fn&& fn) {
  std::shared_ptr<Cache> c = self.Handle();
  pybind11::gil_scoped_release unlocked;
  return fn(*c);
}

// The WriteOptions of an encoded value with this ttl (nullopt: the default).
inline WriteOptions Write(const Encoded& e, const std::optional<std::chrono::milliseconds>& ttl) {
  return WriteOptions{.ttl = ttl.value_or(std::chrono::milliseconds(0)), .kind = e.kind};
}

// A value read by self as a Python object (DecodeValue with its serializer).
inline pybind11::object Decode(const PyCache& self, const TypedValue& v) {
  return DecodeValue(v.value, v.kind, self.serializer());
}

// Raises KeyError(key).
[[noreturn]] void RaiseKeyError(pybind11::handle key);

}  // namespace lilcache::python
