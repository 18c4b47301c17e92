// The hot methods of _Cache (get, set, cache[key], cache[key] = v, key in
// cache) as vectorcall methods of the CPython API, bypassing pybind11's
// dispatcher: it costs about 100 ns per call (bench/README.md, "Python"), as
// much as the engine's own get of a key in cache. Same semantics and
// documentation as the pybind11 methods they replace.
#pragma once

#include <pybind11/pybind11.h>

#include "cache_binding.h"

namespace lilcache::python {

// Installs the methods on cls, the type object of PyCache.
void InstallFastPaths(pybind11::class_<PyCache>& cls);

}  // namespace lilcache::python
