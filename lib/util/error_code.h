// error_code: the ErrorCode of a failing system call, from its errno.
#pragma once

#include <cerrno>

#include "lilcache/lilcache.h"

namespace lilcache {

// ENOSPC and EDQUOT: no_space; EACCES and EPERM: permission; every other
// errno: io. Every Error built from errno takes its code from here
// (ThrowErrno in engine/file_lock.h and the few that format errno
// themselves).
constexpr ErrorCode ErrorCodeOfErrno(int e) noexcept {
  switch (e) {
    case ENOSPC:
    case EDQUOT:
      return ErrorCode::no_space;
    case EACCES:
    case EPERM:
      return ErrorCode::permission;
    default:
      return ErrorCode::io;
  }
}

}  // namespace lilcache
