/* test_webassets.c -- the dashboard's embedded files (webassets.c and the generated table).
 *
 * The table is generated from web/ at build time (cmake/webassets.cmake);
 * this checks that every listed file is there byte for byte (compared with
 * the file in the source tree, RINGCAST_SRC, when the test knows it), with
 * the right type, and that rc_web_asset_find() maps URL paths as documented.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webassets.h"

static const struct rc_web_asset *find(const char *path)
{
    return rc_web_asset_find(path, strlen(path));
}

static void test_find(void **state)
{
    const struct rc_web_asset *idx = find("/");

    assert_non_null(idx);
    assert_string_equal(idx->path, "/");
    assert_string_equal(idx->type, "text/html; charset=utf-8");
    assert_ptr_equal(find("/index.html"), idx);
    assert_ptr_equal(find("/?auth=pw"), idx);
    assert_ptr_equal(find("/#top"), idx);
    assert_ptr_equal(find("/index.html?x=1"), idx);

    const struct rc_web_asset *js = find("/app.js");
    assert_non_null(js);
    assert_string_equal(js->type, "text/javascript; charset=utf-8");
    assert_ptr_equal(find("/app.js?v=2"), js);
    assert_string_equal(find("/style.css")->type, "text/css; charset=utf-8");
    assert_string_equal(find("/vendor/uplot/uPlot.iife.min.js")->type,
                        "text/javascript; charset=utf-8");
    assert_string_equal(find("/vendor/uplot/uPlot.min.css")->type, "text/css; charset=utf-8");
    assert_string_equal(find("/vendor/uplot/LICENSE")->type, "text/plain; charset=utf-8");

    /* Exact paths only. */
    assert_null(find(""));
    assert_null(find("app.js"));
    assert_null(find("/APP.JS"));
    assert_null(find("/app.js/"));
    assert_null(find("/app.j"));
    assert_null(find("/vendor/"));
    assert_null(find("/vendor/uplot"));
    assert_null(find("/../web/app.js"));
    assert_null(find("/%61pp.js"));
    assert_null(find("/metrics"));
    assert_null(rc_web_asset_find(NULL, 0));
    /* The length bounds the path: no NUL needed, nothing read past it. */
    assert_ptr_equal(rc_web_asset_find("/app.jsXYZ", 7), js);
    assert_ptr_equal(rc_web_asset_find("/", 1), idx);
}

static void test_contents(void **state)
{
    const struct rc_web_asset *idx = find("/");
    const struct rc_web_asset *lic = find("/vendor/uplot/LICENSE");

    assert_true(rc_web_nassets >= 6);
    assert_true(idx->len > 100);
    assert_memory_equal(idx->data, "<!doctype html>", 15);
    /* The page loads the vendored chart library and the app, both embedded. */
    assert_non_null(memmem(idx->data, idx->len, "vendor/uplot/uPlot.iife.min.js", 30));
    assert_non_null(memmem(idx->data, idx->len, "app.js", 6));
    assert_non_null(memmem(lic->data, lic->len, "The MIT License", 15));
    const struct rc_web_asset *u = find("/vendor/uplot/uPlot.iife.min.js");
    assert_non_null(memmem(u->data, u->len, "(v1.6.32)", 9));
    for (size_t i = 0; i < rc_web_nassets; i++) {
        /* Every entry is found under its own path. */
        assert_ptr_equal(find(rc_web_assets[i].path), &rc_web_assets[i]);
        assert_true(rc_web_assets[i].len > 0);
    }
}

/* Each embedded file equals web/<file> in the source tree, byte for byte. */
static void test_matches_source_tree(void **state)
{
    const char *src = getenv("RINGCAST_SRC");
    if (!src)
        src = RC_SOURCE_DIR;
    for (size_t i = 0; i < rc_web_nassets; i++) {
        const struct rc_web_asset *a = &rc_web_assets[i];
        char path[4096];
        snprintf(path, sizeof(path), "%s/web%s", src,
                 strcmp(a->path, "/") == 0 ? "/index.html" : a->path);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            fail_msg("cannot open %s", path);
        unsigned char *buf = malloc(a->len + 1);
        size_t n = fread(buf, 1, a->len + 1, fp);
        fclose(fp);
        if (n != a->len || memcmp(buf, a->data, n) != 0)
            fail_msg("%s differs from the embedded %s (%zu vs %zu bytes)", path, a->path, n,
                     a->len);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_contents),
        cmocka_unit_test(test_matches_source_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
