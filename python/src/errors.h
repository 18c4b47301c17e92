// lilcache.Error and its subclasses, and the translation of lilcache::Error
// (the C++ exception) into them.
#pragma once

#include <pybind11/pybind11.h>

namespace lilcache::python {

// Creates lilcache.Error, InvalidArgumentError and LimitError in module m
// and registers the translator of lilcache::Error: its kind becomes the
// exception's .code (to_string(ErrorCode)), its what() the message.
void RegisterErrors(pybind11::module_& m);

// Sets the Python error for the exception being handled (call in a catch
// block): lilcache::Error as RegisterErrors translates it, pybind11's
// exceptions as pybind11 does, anything else as RuntimeError. For the
// functions that bypass pybind11's dispatcher (fast_path.cc).
void SetPythonError();

}  // namespace lilcache::python
