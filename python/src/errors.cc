#include "errors.h"

#include <string>

#include "lilcache/lilcache.h"

namespace lilcache::python {
namespace py = pybind11;

namespace {

// The exception classes (new references kept for the life of the process:
// the module is never unloaded).
PyObject* g_error = nullptr;
PyObject* g_invalid_argument = nullptr;
PyObject* g_limit = nullptr;

PyObject* NewClass(const char* name, const char* doc, PyObject* bases) {
  PyObject* cls = PyErr_NewExceptionWithDoc(name, doc, bases, nullptr);
  if (cls == nullptr) throw py::error_already_set();
  return cls;
}

// Raises cls(message) with .code = code.
void Raise(PyObject* cls, const Error& e) {
  py::object exc = py::reinterpret_steal<py::object>(PyObject_CallFunction(cls, "s", e.what()));
  if (!exc) return;  // the constructor's error is set
  std::string_view code = to_string(e.code());
  exc.attr("code") = py::str(code.data(), code.size());
  PyErr_SetObject(cls, exc.ptr());
}

// Raises the class of e's kind.
void RaiseError(const Error& e) {
  switch (e.code()) {
    case ErrorCode::invalid_argument:
      Raise(g_invalid_argument, e);
      break;
    case ErrorCode::limit:
      Raise(g_limit, e);
      break;
    default:
      Raise(g_error, e);
  }
}

}  // namespace

void SetPythonError() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const Error& e) {
    RaiseError(e);
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "lilcache: unknown C++ exception");
  }
}

void RegisterErrors(py::module_& m) {
  g_error = NewClass("lilcache.Error",
                     "Every failure of the engine. .code names its kind as the C++ ErrorCode "
                     "spells it: 'invalid_argument', 'limit', 'no_such_cache', 'no_space', 'io', "
                     "'corrupt', 'unsupported', 'permission', 'busy', 'invalid_state' (new kinds "
                     "may be added: treat an unknown one like 'io'). str(e) is the engine's "
                     "message, naming the argument, file or system call.",
                     PyExc_Exception);
  PyObject_SetAttrString(g_error, "code", Py_None);
  py::tuple invalid_bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_invalid_argument =
      NewClass("lilcache.InvalidArgumentError",
               "code 'invalid_argument': a bad argument or option (an empty key, a bad cache name, "
               "duration string, log level or option value). Also a ValueError.",
               invalid_bases.ptr());
  py::tuple limit_bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_limit = NewClass("lilcache.LimitError",
                     "code 'limit': over a hard limit (a key over 4096 bytes, a value over 64 "
                     "MiB, an int64 counter overflowing, a full index or log). Also a ValueError.",
                     limit_bases.ptr());
  m.add_object("Error", py::handle(g_error));
  m.add_object("InvalidArgumentError", py::handle(g_invalid_argument));
  m.add_object("LimitError", py::handle(g_limit));

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      RaiseError(e);
    }
  });
}

}  // namespace lilcache::python
