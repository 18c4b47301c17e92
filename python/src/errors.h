// lilcache.Error and its subclasses, and the translation of lilcache::Error
// (the C++ exception) into them.
#pragma once

#include <pybind11/pybind11.h>

namespace lilcache::python {

// Creates lilcache.Error, InvalidArgumentError and LimitError in module m
// and registers the translator of lilcache::Error: its kind becomes the
// exception's .code (to_string(ErrorCode)), its what() the message.
void RegisterErrors(pybind11::module_& m);

}  // namespace lilcache::python
