/* fuzz_config.c -- libFuzzer harness for the config-file parser.
 *
 * Feeds arbitrary bytes to rc_config_load_string() on a freshly initialised
 * config, then reads every setting back through rc_config_get() and frees
 * the config. Besides crashes, leaks and undefined behaviour (caught by the
 * sanitizers), it checks invariants a successful or failed load must keep:
 * the error text is a terminated "line N: ..." string, the bind list is
 * 1..RC_MAX_BIND addresses, and every CONFIG GET value is a C string.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(void *arg, const char *name, const char *value)
{
    size_t *n = arg;

    /* Reading both strings fully makes ASan check they are terminated. */
    if (strlen(name) == 0 || strlen(value) > 16 * 1024 * 1024)
        abort();
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_config c;
    char err[256];
    size_t n = 0;
    int r;

    rc_config_init(&c);
    memset(err, 0x55, sizeof(err));
    r = rc_config_load_string(&c, (const char *)data, size, err, sizeof(err));
    if (r != 0 && r != -EINVAL)
        abort();
    if (r != 0 && (!memchr(err, '\0', sizeof(err)) || strncmp(err, "line ", 5) != 0))
        abort();
    if (c.nbind < 1 || c.nbind > RC_MAX_BIND || c.port < 0 || c.port > 65535 || !c.logfile)
        abort();
    for (int i = 0; i < c.nbind; i++)
        if (!c.bind[i] || !c.bind[i][0])
            abort();
    rc_config_get(&c, "*", 1, check_value, &n);
    if (n == 0)
        abort();
    rc_config_free(&c);
    return 0;
}
