// Conversions between Python objects and what the C++ API takes: keys,
// typed values, durations. Every function here runs with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "lilcache/lilcache.h"

namespace lilcache::python {

namespace py = pybind11;

// A key as bytes: a str's UTF-8 (cached by CPython in the str object, not
// copied), a bytes object's buffer, or a copy of a bytearray or memoryview
// (which another thread could change while the GIL is released). view()
// stays valid while the argument object lives (the caller's reference).
// TypeError for any other type.
class Key {
 public:
  explicit Key(py::handle obj);
  std::string_view view() const { return view_; }

 private:
  std::string copy_;
  std::string_view view_;
};

// Whether obj is a key type (str, bytes, bytearray, memoryview).
bool IsKey(py::handle obj);

// A key read back from the engine: str if it is valid UTF-8, else bytes.
py::object KeyObject(std::string_view key);

// How a handle stores values that are not str, bytes or int.
enum class Serializer { none, pickle };

// A value to store: its bytes and kind. str -> text (UTF-8), bytes,
// bytearray, memoryview -> bytes, int (not bool) -> integer (decimal, must
// fit int64). Anything else (and ints outside int64) -> serialized (pickle)
// with Serializer::pickle, else TypeError (OverflowError for such ints).
struct Encoded {
  std::string copy;        // owns the bytes when they had to be made
  std::string_view bytes;  // the value's bytes (into copy or the object)
  ValueKind kind = ValueKind::bytes;
};
Encoded EncodeValue(py::handle value, Serializer serializer);

// A value read from the engine as a Python object: text -> str, integer ->
// int, bytes -> bytes, serialized -> unpickled with Serializer::pickle, else
// bytes. A text value that is not valid UTF-8 or an integer that is not an
// int64's decimal text comes back as bytes.
py::object DecodeValue(std::string_view bytes, ValueKind kind, Serializer serializer);

// A duration argument in milliseconds: None -> nullopt; int or float
// seconds (> 0; a positive value under 1 ms is 1 ms), a str in the seed's
// form ("120s", parsed by lilcache::parse_duration) or a datetime.timedelta.
// ValueError for <= 0, NaN or infinity; lilcache.InvalidArgumentError for a
// bad string; TypeError for another type. `what` names the argument.
std::optional<std::chrono::milliseconds> Duration(py::handle obj, const char* what);

// The same as an Options string ("" for None): "<N>ms", or the str itself.
std::string DurationOption(py::handle obj, const char* what);

}  // namespace lilcache::python
