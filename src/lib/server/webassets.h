/* webassets.h -- the dashboard's files (web/), embedded in the binary at build time.
 *
 * cmake/webassets.cmake turns each file of an explicit list in web/ into a
 * byte array of a generated source (webassets_data.c in the build
 * directory) and lists them in rc_web_assets[], so ringcastd serves its
 * dashboard with no file on disk and nothing fetched from elsewhere.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_WEBASSETS_H
#define RC_WEBASSETS_H

#include <stddef.h>

struct rc_web_asset {
    const char *path;          /* URL path: "/" (index.html), "/app.js", "/vendor/uplot/..." */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* the file's bytes (static) */
    size_t len;
};

/* Every embedded file (generated). */
extern const struct rc_web_asset rc_web_assets[];
extern const size_t rc_web_nassets;

/* The asset at the request target path[0..len) (not NUL-terminated), or NULL.
 * A query string or fragment ("?...", "#...") is ignored, and "/index.html"
 * is the same as "/". Matching is exact and case-sensitive: no directory
 * listing, no "..", no percent-decoding. */
const struct rc_web_asset *rc_web_asset_find(const char *path, size_t len);

#endif
