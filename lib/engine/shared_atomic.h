// Moved to lib/format/shared_atomic.h (the atomic fields are part of the
// on-disk format). This forwarding header keeps the branches written before
// the move compiling; include "format/shared_atomic.h" in new code.
#pragma once

#include "format/shared_atomic.h"
