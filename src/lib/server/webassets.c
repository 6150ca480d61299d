/* webassets.c -- looks up the dashboard's embedded files by URL path.
 *
 * The files themselves are in the generated webassets_data.c (see
 * webassets.h); here is only the lookup the HTTP layer uses for GET. The
 * table has a handful of entries, so a linear scan is enough.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "webassets.h"

#include <string.h>

const struct rc_web_asset *rc_web_asset_find(const char *path, size_t len)
{
    static const char index_html[] = "/index.html";
    const char *end = path ? memchr(path, '?', len) : NULL;
    const char *hash = path ? memchr(path, '#', len) : NULL;

    if (!path)
        return NULL;
    if (hash && (!end || hash < end))
        end = hash;
    if (end)
        len = (size_t)(end - path);
    if (len == sizeof(index_html) - 1 && memcmp(path, index_html, len) == 0)
        len = 1; /* "/" */
    for (size_t i = 0; i < rc_web_nassets; i++) {
        const struct rc_web_asset *a = &rc_web_assets[i];
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0)
            return a;
    }
    return NULL;
}
