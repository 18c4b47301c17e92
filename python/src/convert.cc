#include "convert.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

namespace lilcache::python {

namespace {

// Objects looked up once and kept for the life of the process (never
// released: the interpreter may be finalizing when static destructors run).
PyObject* Imported(const char* module, const char* name) {
  py::object obj = py::module_::import(module).attr(name);
  return obj.release().ptr();
}
PyObject* PickleDumps() {
  static PyObject* f = Imported("pickle", "dumps");
  return f;
}
PyObject* PickleLoads() {
  static PyObject* f = Imported("pickle", "loads");
  return f;
}
PyObject* TimedeltaType() {
  static PyObject* t = Imported("datetime", "timedelta");
  return t;
}

std::string_view BytesView(PyObject* obj) {
  return {PyBytes_AS_STRING(obj), static_cast<std::size_t>(PyBytes_GET_SIZE(obj))};
}

// str's UTF-8 (cached in the object). A str holding lone surrogates has no
// UTF-8: UnicodeEncodeError, as str.encode() raises.
std::string_view Utf8View(PyObject* obj) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj, &size);
  if (data == nullptr) throw py::error_already_set();
  return {data, static_cast<std::size_t>(size)};
}

// A copy of a bytes-like object's buffer (bytearray, memoryview).
std::string BufferCopy(py::handle obj) {
  Py_buffer view;
  if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_CONTIG_RO) != 0) throw py::error_already_set();
  std::string out(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
  PyBuffer_Release(&view);
  return out;
}

bool IsBufferKey(py::handle obj) {
  return PyByteArray_Check(obj.ptr()) || PyMemoryView_Check(obj.ptr());
}

}  // namespace

bool IsKey(py::handle obj) {
  return PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()) || IsBufferKey(obj);
}

Key::Key(py::handle obj) {
  PyObject* p = obj.ptr();
  if (PyUnicode_Check(p)) {
    view_ = Utf8View(p);
  } else if (PyBytes_Check(p)) {
    view_ = BytesView(p);
  } else if (IsBufferKey(obj)) {
    copy_ = BufferCopy(obj);
    view_ = copy_;
  } else {
    throw py::type_error(std::string("lilcache keys are str or bytes, not ") + Py_TYPE(p)->tp_name);
  }
}

py::object KeyObject(std::string_view key) {
  PyObject* s = PyUnicode_DecodeUTF8(key.data(), static_cast<Py_ssize_t>(key.size()), nullptr);
  if (s != nullptr) return py::reinterpret_steal<py::object>(s);
  PyErr_Clear();
  return py::bytes(key.data(), key.size());
}

Encoded EncodeValue(py::handle value, Serializer serializer) {
  PyObject* p = value.ptr();
  Encoded out;
  if (PyUnicode_Check(p)) {
    out.bytes = Utf8View(p);
    out.kind = ValueKind::text;
    return out;
  }
  if (PyBytes_Check(p)) {
    out.bytes = BytesView(p);
    return out;
  }
  if (IsBufferKey(value)) {
    out.copy = BufferCopy(value);
    out.bytes = out.copy;
    return out;
  }
  if (PyLong_Check(p) && !PyBool_Check(p)) {
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(p, &overflow);
    if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow == 0) {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, n);
      out.copy.assign(buf, r.ptr);
      out.bytes = out.copy;
      out.kind = ValueKind::integer;
      return out;
    }
    if (serializer != Serializer::pickle) {
      PyErr_SetString(PyExc_OverflowError,
                      "lilcache stores ints of -2**63 .. 2**63-1 as integers (open the cache "
                      "with serializer='pickle' to store larger ones)");
      throw py::error_already_set();
    }
  }
  if (serializer == Serializer::pickle) {
    py::object data = py::reinterpret_steal<py::object>(
        PyObject_CallFunction(PickleDumps(), "Oi", p, 4 /* protocol */));
    if (!data) throw py::error_already_set();
    out.copy.assign(BytesView(data.ptr()));
    out.bytes = out.copy;
    out.kind = ValueKind::serialized;
    return out;
  }
  throw py::type_error(std::string("lilcache stores str, bytes and int values, not ") +
                       Py_TYPE(p)->tp_name +
                       " (open the cache with serializer='pickle' to store "
                       "other objects)");
}

py::object DecodeValue(std::string_view bytes, ValueKind kind, Serializer serializer) {
  const auto size = static_cast<Py_ssize_t>(bytes.size());
  switch (kind) {
    case ValueKind::text: {
      PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), size, nullptr);
      if (s != nullptr) return py::reinterpret_steal<py::object>(s);
      PyErr_Clear();
      break;
    }
    case ValueKind::integer: {
      long long n = 0;
      auto r = std::from_chars(bytes.data(), bytes.data() + bytes.size(), n);
      if (r.ec == std::errc() && r.ptr == bytes.data() + bytes.size() && !bytes.empty()) {
        return py::reinterpret_steal<py::object>(PyLong_FromLongLong(n));
      }
      break;
    }
    case ValueKind::serialized:
      if (serializer == Serializer::pickle) {
        py::object data = py::bytes(bytes.data(), bytes.size());
        PyObject* obj = PyObject_CallOneArg(PickleLoads(), data.ptr());
        if (obj == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(obj);
      }
      break;
    case ValueKind::bytes:
      break;
  }
  return py::reinterpret_steal<py::object>(PyBytes_FromStringAndSize(bytes.data(), size));
}

std::optional<std::chrono::milliseconds> Duration(py::handle obj, const char* what) {
  PyObject* p = obj.ptr();
  if (p == Py_None) return std::nullopt;
  if (PyUnicode_Check(p)) {
    const std::chrono::milliseconds ms = parse_duration(Utf8View(p));
    if (ms.count() <= 0) {  // as the engine refuses a ttl of 0 (InvalidArgumentError)
      throw Error(ErrorCode::invalid_argument, std::string(what) +
                                                   " must be a positive duration, not " +
                                                   py::repr(obj).cast<std::string>());
    }
    return ms;
  }
  double seconds = 0;
  if (PyObject_IsInstance(p, TimedeltaType()) == 1) {
    seconds = obj.attr("total_seconds")().cast<double>();
  } else if ((PyLong_Check(p) || PyFloat_Check(p)) && !PyBool_Check(p)) {
    seconds = PyFloat_AsDouble(p);
    if (seconds == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  } else {
    throw py::type_error(std::string(what) +
                         " is seconds (int or float), a duration string such as '120s' or a "
                         "datetime.timedelta, not " +
                         Py_TYPE(p)->tp_name);
  }
  // About 290 million years: a longer one is a mistake.
  constexpr double kMaxSeconds = 9.2e15;
  if (!(seconds > 0) || !(seconds <= kMaxSeconds)) {
    throw py::value_error(std::string(what) +
                          " must be a positive, finite number of seconds, not " +
                          py::repr(obj).cast<std::string>());
  }
  const double ms = std::ceil(seconds * 1000.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::string DurationOption(py::handle obj, const char* what) {
  if (obj.is_none()) return {};
  // "" would mean the option's default to the engine: only None says that.
  if (PyUnicode_Check(obj.ptr()) && PyUnicode_GET_LENGTH(obj.ptr()) == 0) {
    throw py::value_error(std::string(what) + " must be a duration (None for the default), not ''");
  }
  if (PyUnicode_Check(obj.ptr())) return std::string(Utf8View(obj.ptr()));
  return std::to_string(Duration(obj, what)->count()) + "ms";
}

}  // namespace lilcache::python
