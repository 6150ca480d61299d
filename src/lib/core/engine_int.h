/* engine_int.h -- the engine's insides, shared by engine.c and mdata.c only.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_ENGINE_INT_H
#define RC_ENGINE_INT_H

#include "engine.h"
#include "mdata.h"

struct rc_subent {
    struct rc_sink *k;
    struct rc_sub *sub;
};

/* A channel, pattern or shard channel with subscribers. */
struct rc_chan {
    char *name;
    size_t len;
    struct rc_subent *subs;
    uint32_t n, cap;
    uint32_t nfmt[RC_FMT_MAX]; /* subscribers per wire format */
    uint32_t idx;              /* position in e->patlist (patterns only) */
};

/* One subscription of one sink, the value of k->subs[kind]. */
struct rc_sub {
    struct rc_chan *chan;
    uint32_t idx; /* position in chan->subs */
    uint8_t fmt;  /* format counted in chan->nfmt */
};

struct rc_engine {
    const struct rc_codec *codecs[RC_FMT_MAX];
    int ncodecs;
    const struct rc_logger *log;
    const struct rc_mdata_cfg *mdcfg;
    void (*interest)(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on);
    void *interest_arg;
    void (*count)(void *arg, enum rc_sub_kind kind, const char *name, size_t len, int delta);
    void *count_arg;
    struct rc_dict *tab[RC_SUB__COUNT]; /* name -> struct rc_chan */
    struct rc_chan **patlist;           /* every pattern, walked on each publish */
    uint32_t npat, patcap;
    struct rc_slab_pool pool;
    struct rc_arena frames; /* encoded messages */
    struct rc_mdata *md;    /* mdata.c */
    struct rc_engine_stats st;
};

/* mdata.c, for engine.c. One publish on a channel with mdata state runs
 * rc_mdata_begin, rc_mdata_deliver for each receiver, rc_mdata_end. */
struct rc_mdata_pub {
    struct rc_mchan *ch;
    const char *chan, *payload;
    size_t clen, len;
    uint64_t now_ms;
    struct rc_ref v[RC_FMT_MAX][2]; /* lazily encoded: [fmt][with sequence] */
};

void rc_mdata_init(struct rc_engine *e);
void rc_mdata_free(struct rc_engine *e);
/* Returns p filled in, or NULL when no rule matches chan. Assigns the
 * sequence, or adopts st's when st->set; fills st in (st may be NULL). */
struct rc_mdata_pub *rc_mdata_begin(struct rc_engine *e, struct rc_mdata_pub *p, const char *chan,
                                    size_t clen, const char *payload, size_t len,
                                    struct rc_stamp *st);
/* Delivers p to k: f is the frame for a pattern delivery (pat set), NULL for
 * the channel's own message (its variant is picked here). Applies the
 * conflation/drop policy and the rate cap. */
void rc_mdata_deliver(struct rc_engine *e, struct rc_mdata_pub *p, struct rc_sink *k,
                      const struct rc_ref *f, const char *pat, size_t plen);
void rc_mdata_end(struct rc_engine *e, struct rc_mdata_pub *p);
/* Drops k's side table. */
void rc_mdata_sink_free(struct rc_engine *e, struct rc_sink *k);
void rc_mdata_cron(struct rc_engine *e, uint64_t now_ms);

/* Encodes m with codec fmt into e's frame arena; *f gets its own reference. */
void rc_engine_encode(struct rc_engine *e, uint8_t fmt, const struct rc_msgview *m,
                      struct rc_ref *f);

#endif
