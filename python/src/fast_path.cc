#include "fast_path.h"

#include <initializer_list>
#include <optional>
#include <string>

#include "convert.h"
#include "errors.h"

namespace lilcache::python {

namespace py = pybind11;

namespace {

PyTypeObject* g_type = nullptr;  // _Cache (set once, at import)

// The PyCache of self (a _Cache or an instance of a subclass), or nullptr
// with TypeError set.
PyCache* SelfOf(PyObject* self) {
  if (!PyObject_TypeCheck(self, g_type)) {
    PyErr_Format(PyExc_TypeError, "expected a lilcache.Cache, not %s", Py_TYPE(self)->tp_name);
    return nullptr;
  }
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  void* p =
      inst->simple_layout ? inst->simple_value_holder[0] : inst->get_value_and_holder().value_ptr();
  if (p == nullptr) {
    PyErr_SetString(PyExc_TypeError, "lilcache.Cache.__init__() was not called");
    return nullptr;
  }
  return static_cast<PyCache*>(p);
}

// Vectorcall arguments into out[i] (nullptr when not given), by position or
// by keyword names[i]; the first `required` must be given. False with
// TypeError set on a missing, unknown or repeated argument.
bool ParseArgs(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
               std::initializer_list<const char*> names, Py_ssize_t required, PyObject** out) {
  const auto n = static_cast<Py_ssize_t>(names.size());
  if (nargs > n) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fname, n, nargs);
    return false;
  }
  for (Py_ssize_t i = 0; i < n; ++i) out[i] = i < nargs ? args[i] : nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* kw = PyTuple_GET_ITEM(kwnames, k);
    Py_ssize_t i = 0;
    for (const char* name : names) {
      if (PyUnicode_CompareWithASCIIString(kw, name) == 0) break;
      ++i;
    }
    if (i == n) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, kw);
      return false;
    }
    if (out[i] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fname, kw);
      return false;
    }
    out[i] = args[nargs + k];
  }
  for (Py_ssize_t i = 0; i < required; ++i) {
    if (out[i] == nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names.begin()[i]);
      return false;
    }
  }
  return true;
}

// Reads key into this thread's buffer (no allocation once it is large
// enough), then decodes it: the object returned holds a copy. Decoding runs
// no Python code before it has copied the bytes (DecodeValue), so a nested
// get on this thread cannot overwrite the buffer under it.
std::optional<py::object> Read(const PyCache& c, const Key& k) {
  // A buffer over 1 MiB is freed after use rather than kept per thread.
  constexpr std::size_t kKeep = 1 << 20;
  thread_local std::string buffer;
  ValueKind kind = ValueKind::bytes;
  const bool hit = Unlocked(c, [&](Cache& h) { return h.get(k.view(), buffer, &kind); });
  std::optional<py::object> out;
  if (hit) out = DecodeValue(buffer, kind, c.serializer());
  if (buffer.capacity() > kKeep) std::string().swap(buffer);
  return out;
}

PyObject* Get(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* a[2];
  PyCache* c = SelfOf(self);
  if (c == nullptr || !ParseArgs("get", args, nargs, kwnames, {"key", "default"}, 1, a)) {
    return nullptr;
  }
  try {
    Key k(a[0]);
    std::optional<py::object> v = Read(*c, k);
    if (!v) {
      PyObject* dflt = a[1] != nullptr ? a[1] : Py_None;
      Py_INCREF(dflt);
      return dflt;
    }
    return v->release().ptr();
  } catch (...) {
    SetPythonError();
    return nullptr;
  }
}

PyObject* GetItem(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* a[1];
  PyCache* c = SelfOf(self);
  if (c == nullptr || !ParseArgs("__getitem__", args, nargs, kwnames, {"key"}, 1, a)) {
    return nullptr;
  }
  try {
    Key k(a[0]);
    std::optional<py::object> v = Read(*c, k);
    if (!v) RaiseKeyError(a[0]);
    return v->release().ptr();
  } catch (...) {
    SetPythonError();
    return nullptr;
  }
}

PyObject* Set(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* a[3];
  PyCache* c = SelfOf(self);
  if (c == nullptr || !ParseArgs("set", args, nargs, kwnames, {"key", "value", "expire"}, 2, a)) {
    return nullptr;
  }
  try {
    Key k(a[0]);
    Encoded e = EncodeValue(a[1], c->serializer());
    auto ttl = a[2] != nullptr ? Duration(a[2], "expire") : std::nullopt;
    Unlocked(*c, [&](Cache& h) { h.set(k.view(), e.bytes, Write(e, ttl)); });
    Py_RETURN_TRUE;
  } catch (...) {
    SetPythonError();
    return nullptr;
  }
}

PyObject* SetItem(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* a[2];
  PyCache* c = SelfOf(self);
  if (c == nullptr || !ParseArgs("__setitem__", args, nargs, kwnames, {"key", "value"}, 2, a)) {
    return nullptr;
  }
  try {
    Key k(a[0]);
    Encoded e = EncodeValue(a[1], c->serializer());
    Unlocked(*c, [&](Cache& h) { h.set(k.view(), e.bytes, Write(e, std::nullopt)); });
    Py_RETURN_NONE;
  } catch (...) {
    SetPythonError();
    return nullptr;
  }
}

PyObject* Contains(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* a[1];
  PyCache* c = SelfOf(self);
  if (c == nullptr || !ParseArgs("__contains__", args, nargs, kwnames, {"key"}, 1, a)) {
    return nullptr;
  }
  try {
    if (!IsKey(a[0])) Py_RETURN_FALSE;
    Key k(a[0]);
    if (Unlocked(*c, [&](Cache& h) { return h.contains(k.view()); })) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
  } catch (...) {
    SetPythonError();
    return nullptr;
  }
}

template <auto F>
PyCFunction Fast() {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(
      static_cast<PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*)>(F)));
}

// "name($self, ...)\n--\n\n" gives help() and inspect.signature() the signature.
PyMethodDef g_methods[] = {
    {"get", Fast<Get>(), METH_FASTCALL | METH_KEYWORDS,
     "get($self, /, key, default=None)\n--\n\n"
     "The value of key, or default if it is absent, expired or purged. Never waits for "
     "writers; the GIL is released while the engine reads."},
    {"__getitem__", Fast<GetItem>(), METH_FASTCALL | METH_KEYWORDS,
     "__getitem__($self, key, /)\n--\n\ncache[key]: the value of key; KeyError if it is absent."},
    {"set", Fast<Set>(), METH_FASTCALL | METH_KEYWORDS,
     "set($self, /, key, value, expire=None)\n--\n\n"
     "Stores value under key, replacing any value; returns True. expire: seconds, a "
     "duration string ('120s') or a timedelta; None = the cache's `expires` (or never). "
     "Visible to every process when it returns."},
    {"__setitem__", Fast<SetItem>(), METH_FASTCALL | METH_KEYWORDS,
     "__setitem__($self, key, value, /)\n--\n\ncache[key] = value: set(key, value)."},
    {"__contains__", Fast<Contains>(), METH_FASTCALL | METH_KEYWORDS,
     "__contains__($self, key, /)\n--\n\n"
     "key in cache: whether key holds a live, unexpired value (False for a non-key type)."},
};

}  // namespace

void InstallFastPaths(py::class_<PyCache>& cls) {
  g_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  for (PyMethodDef& def : g_methods) {
    py::object method = py::reinterpret_steal<py::object>(PyDescr_NewMethod(g_type, &def));
    if (!method) throw py::error_already_set();
    cls.attr(def.ml_name) = method;  // a dunder also sets the type's slot
  }
}

}  // namespace lilcache::python
