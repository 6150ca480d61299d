/* config.c -- the settings table, Redis-style config files and CONFIG GET.
 *
 * Every setting is one row of a static table: its name, a setter and a
 * getter for its type (integer, memory, bool, enum, string, list, or a
 * special one such as client-output-buffer-limit), the field it lives in,
 * its default written in config-file syntax, and its bounds. rc_config_init()
 * applies each default through the same setter a config file line goes
 * through, so a default can never be a value the parser would refuse, and
 * CONFIG GET formats every value with the row's getter, in table order.
 *
 * Parsing follows Redis 7.0's config loader: a file is split into lines,
 * each line trimmed, '#' lines and blank lines skipped, the rest split into
 * words like sdssplitargs() (double quotes with \n \r \t \b \a \xHH escapes,
 * single quotes with \'), and the words handed to rc_config_set(). Error
 * texts are Redis's where Redis has one ("argument must be between 0 and
 * 65535 inclusive"). Setters validate before they store, so a refused value
 * leaves the setting as it was. Two limits Redis does not have keep hostile
 * input cheap: a line may be at most 64 KiB and may not contain a NUL byte.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glob.h"
#include "resp.h"
#include "udp.h"
#include "upstream.h"

#define MAX_LINE (64 * 1024)        /* longest config line accepted */
#define MAX_FILE (16 * 1024 * 1024) /* largest config file read */
#define MAX_WORD 64                 /* longest enum word compared */

/* Redis shows the replica class in CONFIG GET client-output-buffer-limit even
 * though ringcast has no replicas; these are Redis 7.0's defaults for it. */
#define SLAVE_OBUF_TEXT "slave 268435456 67108864 60"

struct setting;

typedef int (*set_fn)(const struct setting *s, struct rc_config *c, int argc,
                      const char *const *argv, char *err, size_t errlen);
typedef void (*get_fn)(const struct setting *s, const struct rc_config *c, struct rc_buf *out);

/* An enum's words: parse returns the value or a negative number. */
struct enum_ops {
    int (*parse)(const char *word);
    const char *(*name)(int value);
    const char *choices; /* "a, b, c" for the error message */
};

struct setting {
    const char *name;
    set_fn set;
    get_fn get;
    size_t off;         /* offset of the field in struct rc_config */
    const char *def;    /* default, as written in a config file */
    long long min, max; /* numeric bounds, inclusive */
    bool multi;         /* takes any number of value words */
    bool empty_null;    /* strings: "" is stored as NULL */
    const struct enum_ops *en;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#define FIELD(c, s, type)  ((type *)((char *)(c) + (s)->off))
#define CFIELD(c, s, type) ((const type *)((const char *)(c) + (s)->off))

/* ---- Value parsers ---- */

/* Redis's string2ll() accepts exactly -?(0|[1-9][0-9]*) without "-0": no
 * spaces, no '+', no leading zeros. rc_parse_i64() then catches overflow. */
static bool parse_ll(const char *w, long long *out)
{
    const char *d = w[0] == '-' ? w + 1 : w;
    size_t len = strlen(w);
    int64_t v;

    if (d[0] < '0' || d[0] > '9')
        return false;
    if (d[0] == '0' && (d[1] != '\0' || d != w))
        return false;
    if (!rc_parse_i64(w, len, &v))
        return false;
    *out = v;
    return true;
}

/* A memory value must start with a digit: this refuses signs and spaces
 * whatever rc_parse_memory() would make of them, as Redis does. */
static bool parse_mem(const char *w, uint64_t *out)
{
    return w[0] >= '0' && w[0] <= '9' && rc_parse_memory(w, out);
}

static int check_range(const struct setting *s, long long v, char *err, size_t errlen)
{
    if (v < s->min || v > s->max) {
        seterr(err, errlen, "argument must be between %lld and %lld inclusive", s->min, s->max);
        return -EINVAL;
    }
    return 0;
}

/* ---- Types: integer (int or uint64_t field), memory, bool, enum, string ---- */

static int set_number(const struct setting *s, const char *w, bool mem, long long *v, char *err,
                      size_t errlen)
{
    uint64_t u;

    if (mem ? !parse_mem(w, &u) : !parse_ll(w, v)) {
        seterr(err, errlen,
               mem ? "argument must be a memory value"
                   : "argument couldn't be parsed into an integer");
        return -EINVAL;
    }
    if (mem) {
        /* Redis reads memory values into a long long; larger ones are out
         * of every range here. */
        if (u > (uint64_t)s->max) {
            seterr(err, errlen, "argument must be between %lld and %lld inclusive", s->min, s->max);
            return -EINVAL;
        }
        *v = (long long)u;
    }
    return check_range(s, *v, err, errlen);
}

static int set_int(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                   char *err, size_t errlen)
{
    long long v;
    int r = set_number(s, argv[0], false, &v, err, errlen);

    if (r == 0)
        *FIELD(c, s, int) = (int)v;
    return r;
}

static int set_u64(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                   char *err, size_t errlen)
{
    long long v;
    int r = set_number(s, argv[0], false, &v, err, errlen);

    if (r == 0)
        *FIELD(c, s, uint64_t) = (uint64_t)v;
    return r;
}

static int set_mem(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                   char *err, size_t errlen)
{
    long long v;
    int r = set_number(s, argv[0], true, &v, err, errlen);

    if (r == 0)
        *FIELD(c, s, uint64_t) = (uint64_t)v;
    return r;
}

static void get_int(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    rc_buf_append_i64(out, *CFIELD(c, s, int));
}

static void get_u64(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    rc_buf_append_u64(out, *CFIELD(c, s, uint64_t));
}

static int set_bool(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                    char *err, size_t errlen)
{
    if (!strcasecmp(argv[0], "yes")) {
        *FIELD(c, s, bool) = true;
    } else if (!strcasecmp(argv[0], "no")) {
        *FIELD(c, s, bool) = false;
    } else {
        seterr(err, errlen, "argument must be 'yes' or 'no'");
        return -EINVAL;
    }
    return 0;
}

static void get_bool(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    const char *v = *CFIELD(c, s, bool) ? "yes" : "no";

    rc_buf_append(out, v, strlen(v));
}

/* Enum fields are stored as int (enum rc_io_kind has int's size and only
 * non-negative values, so an int view of it is exact). */
_Static_assert(sizeof(enum rc_io_kind) == sizeof(int), "enum rc_io_kind must be int-sized");

static int set_enum(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                    char *err, size_t errlen)
{
    char low[MAX_WORD];
    size_t len = strlen(argv[0]);
    int v = -1;

    /* Redis compares enum words case-insensitively. */
    if (len < sizeof(low)) {
        for (size_t i = 0; i <= len; i++)
            low[i] = (char)tolower((unsigned char)argv[0][i]);
        v = s->en->parse(low);
    }
    if (v < 0) {
        seterr(err, errlen, "argument(s) must be one of the following: %s", s->en->choices);
        return -EINVAL;
    }
    *FIELD(c, s, int) = v;
    return 0;
}

static void get_enum(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    const char *v = s->en->name(*CFIELD(c, s, int));

    rc_buf_append(out, v, strlen(v));
}

static int set_str(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                   char *err, size_t errlen)
{
    char **field = FIELD(c, s, char *);

    free(*field);
    *field = (s->empty_null && argv[0][0] == '\0') ? NULL : rc_xstrdup(argv[0]);
    return 0;
}

static void get_str(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    const char *v = *CFIELD(c, s, char *);

    if (v)
        rc_buf_append(out, v, strlen(v));
}

/* ---- Enums ---- */

static int io_parse(const char *w)
{
    if (!strcmp(w, "uring"))
        return RC_IO_URING;
    if (!strcmp(w, "epoll"))
        return RC_IO_EPOLL;
    if (!strcmp(w, "naive"))
        return RC_IO_NAIVE;
    if (!strcmp(w, "kmod"))
        return RC_IO_KMOD;
    return -1;
}

static const char *io_name(int v)
{
    return rc_io_name((enum rc_io_kind)v);
}

const char *rc_io_name(enum rc_io_kind io)
{
    switch (io) {
    case RC_IO_URING: return "uring";
    case RC_IO_EPOLL: return "epoll";
    case RC_IO_NAIVE: return "naive";
    case RC_IO_KMOD: return "kmod";
    }
    return "unknown";
}

static const struct enum_ops io_enum = {io_parse, io_name, "uring, epoll, naive, kmod"};
static const struct enum_ops loglevel_enum = {rc_log_level_parse, rc_log_level_name,
                                              "debug, verbose, notice, warning"};

/* ---- Specials: bind, client-output-buffer-limit ---- */

/* Each value word may itself hold several space-separated addresses, so
 * `bind a b`, `--bind "a b"` and CONFIG SET bind "a b" all give two. */
static int set_bind(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                    char *err, size_t errlen)
{
    char *addrs[RC_MAX_BIND];
    int n = 0;

    for (int i = 0; i < argc; i++) {
        const char *p = argv[i];

        for (;;) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (!*p)
                break;
            size_t len = strcspn(p, " \t");
            if (n == RC_MAX_BIND) {
                for (int j = 0; j < n; j++)
                    free(addrs[j]);
                seterr(err, errlen, "Too many bind addresses specified.");
                return -EINVAL;
            }
            char *a = rc_xmalloc(len + 1);
            memcpy(a, p, len);
            a[len] = '\0';
            addrs[n++] = a;
            p += len;
        }
    }
    /* Redis accepts an empty list and then listens on no TCP port; ringcast
     * has no unix socket, so that would be a server nobody can reach. */
    if (n == 0) {
        seterr(err, errlen, "argument must list at least one address");
        return -EINVAL;
    }
    for (int i = 0; i < c->nbind; i++)
        free(c->bind[i]);
    memcpy(c->bind, addrs, sizeof(addrs[0]) * (size_t)n);
    for (int i = n; i < RC_MAX_BIND; i++)
        c->bind[i] = NULL;
    c->nbind = n;
    return 0;
}

static void get_bind(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    for (int i = 0; i < c->nbind; i++) {
        if (i)
            rc_buf_appendc(out, ' ');
        rc_buf_append(out, c->bind[i], strlen(c->bind[i]));
    }
}

/* `client-output-buffer-limit <class> <hard> <soft> <seconds> ...`: the whole
 * line is checked before anything is stored, as in Redis. The replica class
 * is accepted (configs written for Redis carry it) and ignored. */
static int set_obuf(const struct setting *s, struct rc_config *c, int argc, const char *const *argv,
                    char *err, size_t errlen)
{
    struct rc_obuf_limit normal = c->obuf_normal, pubsub = c->obuf_pubsub;

    if (argc % 4) {
        seterr(err, errlen, "Wrong number of arguments in buffer limit configuration.");
        return -EINVAL;
    }
    for (int i = 0; i < argc; i += 4) {
        struct rc_obuf_limit l, *dst;
        int64_t secs;
        const char *cls = argv[i], *sw = argv[i + 3];

        if (!strcasecmp(cls, "normal")) {
            dst = &normal;
        } else if (!strcasecmp(cls, "pubsub")) {
            dst = &pubsub;
        } else if (!strcasecmp(cls, "replica") || !strcasecmp(cls, "slave")) {
            dst = NULL;
        } else {
            seterr(err, errlen, "Invalid client class specified in buffer limit configuration.");
            return -EINVAL;
        }
        if (argv[i + 1][0] < '0' || argv[i + 1][0] > '9' || argv[i + 2][0] < '0' ||
            argv[i + 2][0] > '9' || !rc_parse_memory(argv[i + 1], &l.hard) ||
            !rc_parse_memory(argv[i + 2], &l.soft) || sw[0] < '0' || sw[0] > '9' ||
            !rc_parse_i64(sw, strlen(sw), &secs) || secs < 0) {
            seterr(err, errlen,
                   "Error in hard, soft or soft_seconds setting in buffer limit configuration.");
            return -EINVAL;
        }
        l.soft_secs = (uint64_t)secs;
        if (dst)
            *dst = l;
    }
    c->obuf_normal = normal;
    c->obuf_pubsub = pubsub;
    return 0;
}

static void get_obuf(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    rc_buf_appendf(out, "normal %llu %llu %llu " SLAVE_OBUF_TEXT " pubsub %llu %llu %llu",
                   (unsigned long long)c->obuf_normal.hard, (unsigned long long)c->obuf_normal.soft,
                   (unsigned long long)c->obuf_normal.soft_secs,
                   (unsigned long long)c->obuf_pubsub.hard, (unsigned long long)c->obuf_pubsub.soft,
                   (unsigned long long)c->obuf_pubsub.soft_secs);
}

/* ---- Special: mdata-rule ---- */

static void free_rules(struct rc_mdata_rule *r, int n)
{
    for (int i = 0; i < n; i++)
        free(r[i].pattern);
    free(r);
}

void rc_config_free_rules(struct rc_config *c)
{
    free_rules(c->md.rules, c->md.nrules);
    c->md.rules = NULL;
    c->md.nrules = 0;
}

/* Parses one rule's option word into r. */
static int rule_option(struct rc_mdata_rule *r, const char *w, char *err, size_t errlen)
{
    const char *eq = strchr(w, '=');
    size_t kl = eq ? (size_t)(eq - w) : strlen(w);
    const char *v = eq ? eq + 1 : "";
    int64_t n = 0;
    bool num = eq && rc_parse_i64(v, strlen(v), &n) && n >= 0 && n <= INT_MAX;

    if (!eq && !strcasecmp(w, "last")) {
        r->last = true;
    } else if (!eq && !strcasecmp(w, "seq")) {
        r->seq = true;
    } else if (kl == 3 && !strncasecmp(w, "ttl", 3) && num) {
        r->ttl_ms = (uint64_t)n * 1000;
    } else if (kl == 7 && !strncasecmp(w, "history", 7) && num && n <= 1000000) {
        r->history = (uint32_t)n;
        r->seq |= n > 0;
    } else if (kl == 4 && !strncasecmp(w, "rate", 4) && num && n >= 1 && n <= 1000) {
        /* rate=0 would read as "no messages at all" but meant "no cap":
         * refused rather than silently doing nothing. */
        r->rate = (uint32_t)n;
    } else if (kl == 6 && !strncasecmp(w, "policy", 6) && !strcasecmp(v, "stream")) {
        r->policy = RC_MD_STREAM;
    } else if (kl == 6 && !strncasecmp(w, "policy", 6) && !strcasecmp(v, "conflate")) {
        r->policy = RC_MD_CONFLATE;
    } else if (kl == 6 && !strncasecmp(w, "policy", 6) && !strcasecmp(v, "drop")) {
        r->policy = RC_MD_DROP;
    } else {
        seterr(err, errlen,
               "invalid mdata-rule option '%.64s' (expected last, seq, ttl=<secs>, "
               "history=<0-1000000>, rate=<1-1000>, policy=stream|conflate|drop or off)",
               w);
        return -EINVAL;
    }
    return 0;
}

/* `mdata-rule <pattern> <option>... [; <pattern> <option>...]`: adds or
 * replaces the rule of each pattern; `<pattern> off` removes it, and no words
 * at all (`mdata-rule ""`) remove every rule. Like set_bind, a value word may
 * hold several space-separated words, so CONFIG SET takes the whole rule as
 * one argument. The new set is built aside and swapped in only when every
 * rule parsed. */
static int set_rules(const struct setting *s, struct rc_config *c, int argc,
                     const char *const *argv, char *err, size_t errlen)
{
    struct rc_mdata_rule *rules = NULL, cur;
    int n = 0, nwords = 0;
    char **words = NULL;
    int r = 0;

    for (int i = 0; i < argc; i++) {
        const char *p = argv[i];
        for (;;) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (!*p)
                break;
            size_t len = strcspn(p, " \t");
            words = rc_xrealloc(words, sizeof(*words) * (size_t)(nwords + 1));
            words[nwords] = rc_xmalloc(len + 1);
            memcpy(words[nwords], p, len);
            words[nwords++][len] = '\0';
            p += len;
        }
    }
    /* Start from a copy of the current rules (none when there are no words). */
    if (nwords > 0 && c->md.nrules > 0) {
        rules = rc_xmalloc(sizeof(*rules) * (size_t)c->md.nrules);
        for (int i = 0; i < c->md.nrules; i++) {
            rules[i] = c->md.rules[i];
            rules[i].pattern = rc_xstrdup(c->md.rules[i].pattern);
        }
        n = c->md.nrules;
    }
    for (int i = 0; i < nwords && r == 0;) {
        bool off = false;
        int k;

        if (!strcmp(words[i], ";")) {
            i++;
            continue;
        }
        memset(&cur, 0, sizeof(cur));
        for (k = i + 1; k < nwords && strcmp(words[k], ";") != 0 && r == 0; k++) {
            if (!strcasecmp(words[k], "off"))
                off = true;
            else
                r = rule_option(&cur, words[k], err, errlen);
        }
        if (r == 0) {
            int at = -1;
            for (int j = 0; j < n; j++)
                if (!strcmp(rules[j].pattern, words[i]))
                    at = j;
            if (off && at >= 0) {
                free(rules[at].pattern);
                rules[at] = rules[--n];
            } else if (!off) {
                if (at < 0) {
                    if (n >= 256) {
                        seterr(err, errlen, "too many mdata rules (at most 256)");
                        r = -EINVAL;
                        break;
                    }
                    rules = rc_xrealloc(rules, sizeof(*rules) * (size_t)(n + 1));
                    at = n++;
                    cur.pattern = rc_xstrdup(words[i]);
                } else {
                    cur.pattern = rules[at].pattern;
                }
                rules[at] = cur;
            }
        }
        i = k;
    }
    for (int i = 0; i < nwords; i++)
        free(words[i]);
    free(words);
    if (r) {
        free_rules(rules, n);
        return r;
    }
    free_rules(c->md.rules, c->md.nrules);
    c->md.rules = rules;
    c->md.nrules = n;
    return 0;
}

static void get_rules(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    static const char *const pol[] = {"stream", "conflate", "drop"};

    for (int i = 0; i < c->md.nrules; i++) {
        const struct rc_mdata_rule *r = &c->md.rules[i];
        if (i)
            rc_buf_append(out, " ; ", 3);
        rc_buf_append(out, r->pattern, strlen(r->pattern));
        if (r->last)
            rc_buf_append(out, " last", 5);
        if (r->seq && !r->history)
            rc_buf_append(out, " seq", 4);
        if (r->ttl_ms)
            rc_buf_appendf(out, " ttl=%llu", (unsigned long long)(r->ttl_ms / 1000));
        if (r->history)
            rc_buf_appendf(out, " history=%u", r->history);
        if (r->rate)
            rc_buf_appendf(out, " rate=%u", r->rate);
        rc_buf_appendf(out, " policy=%s", pol[r->policy]);
    }
}

void rc_config_dup_rules(struct rc_config *c)
{
    struct rc_mdata_rule *r = NULL;

    if (c->md.nrules) {
        r = rc_xmemdup(c->md.rules, sizeof(*r) * (size_t)c->md.nrules);
        for (int i = 0; i < c->md.nrules; i++)
            r[i].pattern = rc_xstrdup(r[i].pattern);
    }
    c->md.rules = r;
}

static const struct setting *lookup(const char *name);

bool rc_config_runtime(const char *name)
{
    return !strncasecmp(name, "mdata-", 6) || !strcasecmp(name, "maxmemory") ||
           !strcasecmp(name, "max-name-len");
}

bool rc_config_exists(const char *name)
{
    return lookup(name) != NULL;
}

/* ---- Specials: udp-source, udp-arbitrate (udp.c, docs/udp.md) ---- */

/* Each line adds one source (names are unique); a line without a value
 * (`udp-source ""`) removes them all, which is also the default. */
static int set_udp_source(const struct setting *s, struct rc_config *c, int argc,
                          const char *const *argv, char *err, size_t errlen)
{
    struct rc_udp_source_cfg src;

    if (argc == 0 || (argc == 1 && argv[0][0] == '\0')) {
        c->nudp = 0;
        return 0;
    }
    if (rc_udp_source_parse(&src, argc, argv, err, errlen) < 0)
        return -EINVAL;
    for (int i = 0; i < c->nudp; i++) {
        if (!strcmp(c->udp[i].name, src.name)) {
            seterr(err, errlen, "duplicate udp-source name '%s'", src.name);
            return -EINVAL;
        }
    }
    if (c->nudp == RC_MAX_UDP) {
        seterr(err, errlen, "too many udp-source lines (at most %d)", RC_MAX_UDP);
        return -EINVAL;
    }
    c->udp[c->nudp++] = src;
    return 0;
}

static void get_udp_source(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    for (int i = 0; i < c->nudp; i++) {
        const struct rc_udp_source_cfg *u = &c->udp[i];
        bool v6 = strchr(u->addr, ':') != NULL;

        rc_buf_appendf(out, "%s%s %s%s%s:%d", i ? ", " : "", u->name, v6 ? "[" : "", u->addr,
                       v6 ? "]" : "", u->port);
        if (u->group[0])
            rc_buf_appendf(out, " group %s", u->group);
        if (u->iface[0])
            rc_buf_appendf(out, " iface %s", u->iface);
    }
}

/* `udp-arbitrate <a> <b>`: the two sources carry the same feed. The names
 * are resolved when the server starts (the lines may come in any order). */
static int set_udp_arb(const struct setting *s, struct rc_config *c, int argc,
                       const char *const *argv, char *err, size_t errlen)
{
    if (argc == 0 || (argc == 1 && argv[0][0] == '\0')) {
        c->nudp_arb = 0;
        return 0;
    }
    if (argc != 2) {
        seterr(err, errlen, "udp-arbitrate takes two source names");
        return -EINVAL;
    }
    if (strlen(argv[0]) >= RC_UDP_NAME || strlen(argv[1]) >= RC_UDP_NAME ||
        !strcmp(argv[0], argv[1])) {
        seterr(err, errlen, "udp-arbitrate needs two different source names");
        return -EINVAL;
    }
    if (c->nudp_arb == RC_MAX_UDP) {
        seterr(err, errlen, "too many udp-arbitrate lines");
        return -EINVAL;
    }
    for (int k = 0; k < 2; k++)
        snprintf(c->udp_arb[c->nudp_arb][k], RC_UDP_NAME, "%s", argv[k]);
    c->nudp_arb++;
    return 0;
}

static void get_udp_arb(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    for (int i = 0; i < c->nudp_arb; i++)
        rc_buf_appendf(out, "%s%s %s", i ? ", " : "", c->udp_arb[i][0], c->udp_arb[i][1]);
}

/* ---- Specials: the NATS upstream (upstream.h, docs/cluster.md) ---- */

/* A string kept in a fixed-size field of s->max bytes. */
static int set_fixed(const struct setting *s, struct rc_config *c, int argc,
                     const char *const *argv, char *err, size_t errlen)
{
    if (strlen(argv[0]) >= (size_t)s->max) {
        seterr(err, errlen, "argument is too long (at most %lld bytes)", s->max - 1);
        return -EINVAL;
    }
    snprintf(FIELD(c, s, char), (size_t)s->max, "%s", argv[0]);
    return 0;
}

static void get_fixed(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    rc_buf_append(out, CFIELD(c, s, char), strlen(CFIELD(c, s, char)));
}

/* `upstream nats://a:4222,nats://b:4222` (or the URLs as separate words);
 * `upstream ""` turns it off. Refused when the build has no libnats. */
static int set_upstream(const struct setting *s, struct rc_config *c, int argc,
                        const char *const *argv, char *err, size_t errlen)
{
    struct rc_buf b = {0};
    int r = 0;

    for (int i = 0; i < argc; i++)
        rc_buf_appendf(&b, "%s%s", i && argv[i][0] ? "," : "", argv[i]);
    if (b.len >= sizeof(c->upstream)) {
        seterr(err, errlen, "argument is too long (at most %zu bytes)", sizeof(c->upstream) - 1);
        r = -EINVAL;
    } else if (b.len && (r = rc_upstream_check_urls(b.p, err, errlen)) == 0) {
        memcpy(c->upstream, b.p, b.len + 1);
    } else if (!b.len) {
        c->upstream[0] = '\0';
    }
    rc_buf_free(&b);
    return r;
}

static void get_upstream(const struct setting *s, const struct rc_config *c, struct rc_buf *out)
{
    rc_buf_append(out, c->upstream, strlen(c->upstream));
}

/* ---- The table ---- */

/* One initializer per type; clang-format would spread each over four lines. */
/* clang-format off */
#define OFF(f) offsetof(struct rc_config, f)
#define INT(n, f, d, lo, hi)  {n, set_int, get_int, OFF(f), d, lo, hi, false, false, NULL}
#define U64(n, f, d, lo, hi)  {n, set_u64, get_u64, OFF(f), d, lo, hi, false, false, NULL}
#define MEM(n, f, d, lo, hi)  {n, set_mem, get_u64, OFF(f), d, lo, hi, false, false, NULL}
#define BOOL(n, f, d)         {n, set_bool, get_bool, OFF(f), d, 0, 0, false, false, NULL}
#define ENUM(n, f, d, e)      {n, set_enum, get_enum, OFF(f), d, 0, 0, false, false, e}
#define STR(n, f, d, en)      {n, set_str, get_str, OFF(f), d, 0, 0, false, en, NULL}
#define SPECIAL(n, st, gt, d) {n, st, gt, 0, d, 0, 0, true, false, NULL}
#define FIXED(n, f, d)        {n, set_fixed, get_fixed, OFF(f), d, 0, sizeof(((struct rc_config *)0)->f), false, false, NULL}
/* clang-format on */

#define MB (1024LL * 1024)

/* Bounds are Redis 7.0's for the settings Redis has. */
static const struct setting settings[] = {
    INT("port", port, "6380", 0, 65535),
    SPECIAL("bind", set_bind, get_bind, "127.0.0.1"),
    INT("tcp-backlog", tcp_backlog, "511", 0, INT_MAX),
    U64("maxclients", maxclients, "10000", 1, UINT_MAX),
    STR("requirepass", requirepass, "", true),
    BOOL("protected-mode", protected_mode, "yes"),
    INT("http-port", http_port, "8380", 0, 65535),
    STR("http-allowed-origins", http_allowed_origins, "", true),
    MEM("http-max-request", http_max_request, "16kb", 1024, 1 * MB),
    MEM("ws-max-frame", ws_max_frame, "1mb", 1024, 512 * MB),
    U64("http-idle-timeout", http_idle_timeout, "30", 0, INT_MAX),
    SPECIAL("client-output-buffer-limit", set_obuf, get_obuf, "normal 0 0 0 pubsub 32mb 8mb 60"),
    MEM("proto-max-bulk-len", proto_max_bulk_len, "512mb", 1 * MB, LLONG_MAX),
    U64("proto-max-multibulk-len", proto_max_multibulk_len, "2147483647", 1, INT_MAX),
    MEM("client-query-buffer-limit", client_query_buffer_limit, "1gb", 1 * MB, LLONG_MAX),
    MEM("maxmemory", maxmemory, "0", 0, LLONG_MAX),
    U64("max-name-len", max_name_len, "1024", 0, INT_MAX),
    U64("timeout", timeout, "0", 0, INT_MAX),
    ENUM("io", io, "uring", &io_enum),
    U64("tick-us", tick_us, "0", 0, 1000000),
    U64("accum-budget-us", accum_budget_us, "500", 0, 1000000),
    MEM("tick-bytes", tick_bytes, "1mb", 0, LLONG_MAX),
    MEM("so-sndbuf", so_sndbuf, "0", 0, INT_MAX),
    U64("uring-entries", uring_entries, "4096", 1, 32768),
    MEM("send-zc-threshold", zc_threshold, "0", 0, LLONG_MAX),
    FIXED("kmod-device", kmod_device, "/dev/ringcast"),
    BOOL("kmod-zerocopy", kmod_zerocopy, "no"),
    ENUM("loglevel", loglevel, "notice", &loglevel_enum),
    STR("logfile", logfile, "", false),
    U64("shutdown-timeout", shutdown_timeout, "2", 0, INT_MAX),
    U64("workers", workers, "0", 0, RC_MAX_WORKERS),
    SPECIAL("udp-source", set_udp_source, get_udp_source, ""),
    SPECIAL("udp-arbitrate", set_udp_arb, get_udp_arb, ""),
    SPECIAL("mdata-rule", set_rules, get_rules, ""),
    U64("mdata-max-channels", md.max_channels, "100000", 1, UINT_MAX),
    MEM("mdata-max-memory", md.max_memory, "64mb", 0, LLONG_MAX),
    MEM("mdata-queue-soft", md.queue_soft, "1mb", 1, LLONG_MAX),
    MEM("mdata-queue-low", md.queue_low, "256kb", 0, LLONG_MAX),
    MEM("mdata-pending-max", md.pending_max, "4mb", 0, LLONG_MAX),
    U64("mdata-lastp-max", md.lastp_max, "1000", 1, 1000000),
    SPECIAL("upstream", set_upstream, get_upstream, ""),
    FIXED("upstream-user", upstream_user, ""),
    FIXED("upstream-password", upstream_password, ""),
    FIXED("upstream-creds", upstream_creds, ""),
    BOOL("upstream-tls", upstream_tls, "no"),
    FIXED("upstream-tls-ca", upstream_tls_ca, ""),
};

static const struct setting *lookup(const char *name)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++)
        if (!strcasecmp(settings[i].name, name))
            return &settings[i];
    return NULL;
}

/* ---- Word splitting (sdssplitargs semantics, shared with inline requests) ---- */

struct split_ctx {
    const char *out; /* the words, back to back, as rc_resp_splitargs wrote them */
    char *arena;     /* where the NUL-terminated copies go */
    char **words;
    int n, cap;
    bool nul;
};

static void add_word(void *arg, size_t off, size_t len)
{
    struct split_ctx *x = arg;
    char *w = x->arena;

    memcpy(w, x->out + off, len);
    w[len] = '\0';
    x->arena += len + 1;
    x->nul |= memchr(w, '\0', len) != NULL;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->words = rc_xrealloc(x->words, sizeof(char *) * (size_t)x->cap);
    }
    x->words[x->n++] = w;
}

/* Splits the NUL-terminated line into words written to arena (at least
 * 2 * strlen(line) + 2 bytes: a word never grows and each adds one NUL).
 * Returns the number of words or -EINVAL with err set. *words is
 * rc_xrealloc'ed; the caller frees it. */
/* NOLINTNEXTLINE(readability-non-const-parameter): add_word writes through it */
static int split_words(const char *p, char *arena, char ***words, char *err, size_t errlen)
{
    size_t len = strlen(p);
    char *out = rc_xmalloc(len + 1);
    struct split_ctx x = {.out = out, .arena = arena, .words = *words};
    int r = rc_resp_splitargs(p, len, out, add_word, &x);

    free(out);
    *words = x.words;
    if (x.nul) {
        seterr(err, errlen, "NUL byte (\\x00) in an argument");
        return -EINVAL;
    }
    if (r < 0) {
        seterr(err, errlen, "Unbalanced quotes in configuration line");
        return -EINVAL;
    }
    return x.n;
}

/* ---- API ---- */

void rc_config_init(struct rc_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        char arena[2 * 64 + 2], **words = NULL, err[128];
        const char *one[1] = {s->def};
        int n, r;

        if (!s->multi) {
            r = s->set(s, c, 1, one, err, sizeof(err));
        } else {
            /* Defaults are short literals; the arena is sized for them. */
            if (strlen(s->def) > 64)
                abort();
            n = split_words(s->def, arena, &words, err, sizeof(err));
            r = n < 0 ? n : s->set(s, c, n, (const char *const *)words, err, sizeof(err));
            free(words);
        }
        if (r) {
            fprintf(stderr, "ringcast: bad default for %s: %s\n", s->name, err);
            abort();
        }
    }
}

void rc_config_free(struct rc_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nbind && i < RC_MAX_BIND; i++) {
        free(c->bind[i]);
        c->bind[i] = NULL;
    }
    c->nbind = 0;
    free(c->requirepass);
    free(c->http_allowed_origins);
    c->http_allowed_origins = NULL;
    c->requirepass = NULL;
    free(c->logfile);
    c->logfile = NULL;
    rc_config_free_rules(c);
}

int rc_config_set(struct rc_config *c, int argc, const char *const *argv, char *err, size_t errlen)
{
    const struct setting *s;

    if (argc < 1 || !argv[0]) {
        seterr(err, errlen, "wrong number of arguments");
        return -EINVAL;
    }
    s = lookup(argv[0]);
    if (!s) {
        seterr(err, errlen, "Bad directive or wrong number of arguments");
        return -ENOENT;
    }
    if (!s->multi && argc != 2) {
        seterr(err, errlen, "wrong number of arguments");
        return -EINVAL;
    }
    return s->set(s, c, argc - 1, argv + 1, err, errlen);
}

/* Handles one line (NUL-terminated, no newline, may be modified). */
static int load_line(struct rc_config *c, char *line, size_t len, char *err, size_t errlen)
{
    char *arena, **words = NULL;
    int n, r = 0;

    /* Trim like Redis: spaces, tabs and CR/LF at both ends. */
    while (len && strchr(" \t\r\n", line[len - 1]))
        line[--len] = '\0';
    while (*line && strchr(" \t\r\n", *line)) {
        line++;
        len--;
    }
    if (line[0] == '#' || line[0] == '\0')
        return 0;

    arena = rc_xmalloc(2 * len + 2);
    n = split_words(line, arena, &words, err, errlen);
    if (n < 0)
        r = n;
    else if (n > 0)
        r = rc_config_set(c, n, (const char *const *)words, err, errlen);
    free(words);
    free(arena);
    return r ? -EINVAL : 0;
}

int rc_config_load_string(struct rc_config *c, const char *text, size_t len, char *err,
                          size_t errlen)
{
    size_t pos = 0;
    char reason[512];

    for (unsigned long lineno = 1; pos < len; lineno++) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        int r;

        pos += n + (nl ? 1 : 0);
        if (n > MAX_LINE) {
            seterr(err, errlen, "line %lu: line too long (more than %d bytes)", lineno, MAX_LINE);
            return -EINVAL;
        }
        if (memchr(start, '\0', n)) {
            seterr(err, errlen, "line %lu: NUL byte in line", lineno);
            return -EINVAL;
        }
        char *line = rc_xmalloc(n + 1);
        memcpy(line, start, n);
        line[n] = '\0';
        reason[0] = '\0';
        r = load_line(c, line, n, reason, sizeof(reason));
        free(line);
        if (r) {
            seterr(err, errlen, "line %lu: %s", lineno, reason);
            return -EINVAL;
        }
    }
    return 0;
}

int rc_config_load_file(struct rc_config *c, const char *path, char *err, size_t errlen)
{
    struct rc_buf b = {0};
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        seterr(err, errlen, "can't open config file '%s': %s", path, strerror(-r));
        return r;
    }
    for (;;) {
        if (b.len > MAX_FILE) {
            seterr(err, errlen, "config file '%s' is larger than %d bytes", path, MAX_FILE);
            r = -EFBIG;
            goto out;
        }
        rc_buf_reserve(&b, 65536);
        ssize_t got = read(fd, b.p + b.len, b.cap - b.len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            seterr(err, errlen, "can't read config file '%s': %s", path, strerror(-r));
            goto out;
        }
        if (got == 0)
            break;
        b.len += (size_t)got;
    }
    r = rc_config_load_string(c, b.p ? b.p : "", b.len, err, errlen);
out:
    close(fd);
    rc_buf_free(&b);
    return r;
}

void rc_config_get(const struct rc_config *c, const char *pattern, size_t plen,
                   void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    struct rc_buf v = {0};
    /* Redis matches CONFIG GET patterns without case; the names are all
     * lower case, so lowering the pattern is the same thing. */
    char *pat = rc_xmalloc(plen + 1);

    for (size_t i = 0; i < plen; i++)
        pat[i] = (char)tolower((unsigned char)pattern[i]);
    pat[plen] = '\0';
    for (size_t i = 0; i < RC_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];

        if (!rc_glob_match(pat, plen, s->name, strlen(s->name)))
            continue;
        v.len = 0;
        s->get(s, c, &v);
        rc_buf_appendc(&v, '\0');
        fn(arg, s->name, v.p);
    }
    rc_buf_free(&v);
    free(pat);
}
