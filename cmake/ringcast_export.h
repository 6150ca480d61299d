/* ringcast_export.h -- the export list of libringcast.so, force-included into
 * every source of the shared library (-include) next to -fvisibility=hidden.
 *
 * What ringcast.h declares is the public API and keeps default visibility;
 * every other function and object is hidden, so the compiler calls it directly
 * instead of through the PLT. The sources need no annotations. The linker
 * version script (libringcast.map) checks the same boundary a second time.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#pragma GCC visibility push(default)
#include "ringcast.h"
#pragma GCC visibility pop
