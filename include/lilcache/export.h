// lilcache/export.h: LILCACHE_EXPORT marks the public API of liblilcache and
// liblilcache_server. Both libraries are compiled with -fvisibility=hidden
// (meson's gnu_symbol_visibility : 'hidden'), so that a shared library
// exports exactly what include/lilcache/ declares with this macro, and no
// internal function, no spdlog or fmt type: the ABI is the headers.
//
// Applications never use the macro; it is harmless in their code (a
// declaration of default visibility is what they would get anyway).
#pragma once

#define LILCACHE_EXPORT __attribute__((visibility("default")))
