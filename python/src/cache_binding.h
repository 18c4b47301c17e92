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

}  // namespace lilcache::python
