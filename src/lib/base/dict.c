/* dict.c -- chained hash table keyed by binary-safe strings, SipHash-1-3 seeded.
 *
 * Each entry is one allocation holding the chain link, the value, the cached
 * 64-bit hash and a copy of the key, so a key never moves while its entry
 * lives and a lookup is one hash, one bucket load and a short chain walk
 * that compares cached hashes before touching key bytes. The bucket array is
 * a power of two, allocated on the first insert (an empty table is just the
 * small header, which matters because every client owns one) and doubled
 * all at once when the load factor passes 1; with the hash cached, a
 * rehash is a pointer shuffle with no key reads.
 *
 * Deleting never resizes, so deleting the entry an iteration just returned
 * is safe: the iterator already holds the next entry of the chain and the
 * bucket index to resume from. The one exception, freeing the bucket array
 * when the last entry goes, leaves nothing to visit. A table that grew large
 * and then emptied out is shrunk on the next insert, or when its owner calls
 * rc_dict_shrink() after a batch of deletes (the engine does after each
 * unsubscribe-all and teardown slice), so its buckets do not stay at peak.
 *
 * Keys are hashed with SipHash-1-3 (the variant Redis uses) under a 128-bit
 * key taken from getrandom() once per process, so clients cannot choose
 * channel names that all land in one bucket.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "dict.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MIN_BUCKETS 4

struct dict_entry {
    struct dict_entry *next;
    void *val;
    uint64_t hash;
    size_t klen;
    char key[]; /* klen bytes plus a NUL the API does not promise */
};

struct rc_dict {
    struct dict_entry **buckets; /* NULL until the first insert */
    size_t nbuckets;             /* 0 or a power of two */
    size_t size;
};

/* ---- Seeded hash ---- */

static uint64_t sip_k0, sip_k1;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static int seeded;

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: spreads whatever entropy the fallback found. */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static bool read_urandom(void *buf, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return false;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return got == n;
}

static void seed_init(void)
{
    uint64_t k[2];
    ssize_t r;

    do {
        r = getrandom(k, sizeof(k), 0);
    } while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(k) && !read_urandom(k, sizeof(k))) {
        /* No kernel randomness (seccomp, very old kernel, no /dev): weaker,
         * but still differs between processes and runs. */
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20));
        k[1] = mix64(k[0] ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts);
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
    __atomic_store_n(&seeded, 1, __ATOMIC_RELEASE);
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIPROUND()                                                                                 \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash with one compression and three finalisation rounds. */
static uint64_t siphash13(const void *data, size_t len, uint64_t k0, uint64_t k1)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56;
    size_t blocks = len / 8, tail = len % 8;

    /* Indexing rather than pointer arithmetic keeps (NULL, 0) well defined. */
    for (size_t i = 0; i < blocks; i++) {
        uint64_t m = load_le64(p + 8 * i);

        v3 ^= m;
        SIPROUND();
        v0 ^= m;
    }
    for (size_t i = 0; i < tail; i++)
        b |= (uint64_t)p[8 * blocks + i] << (8 * i);
    v3 ^= b;
    SIPROUND();
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND();
    SIPROUND();
    SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

static inline uint64_t hash64(const void *key, size_t klen)
{
    if (RC_UNLIKELY(!__atomic_load_n(&seeded, __ATOMIC_ACQUIRE)))
        pthread_once(&seed_once, seed_init);
    return siphash13(key, klen, sip_k0, sip_k1);
}

size_t rc_dict_hash(const void *key, size_t klen)
{
    return (size_t)hash64(key, klen);
}

/* ---- Table ---- */

struct rc_dict *rc_dict_new(void)
{
    return rc_xcalloc(1, sizeof(struct rc_dict));
}

static void free_entries(struct rc_dict *d)
{
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct dict_entry *e = d->buckets[i];

        while (e) {
            struct dict_entry *next = e->next;

            free(e);
            e = next;
        }
    }
}

void rc_dict_free(struct rc_dict *d)
{
    if (!d)
        return;
    free_entries(d);
    free(d->buckets);
    free(d);
}

static void resize(struct rc_dict *d, size_t nbuckets)
{
    struct dict_entry **nb = rc_xcalloc(nbuckets, sizeof(struct dict_entry *));
    size_t mask = nbuckets - 1;

    for (size_t i = 0; i < d->nbuckets; i++) {
        struct dict_entry *e = d->buckets[i];

        while (e) {
            struct dict_entry *next = e->next;
            size_t j = (size_t)e->hash & mask;

            e->next = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = nb;
    d->nbuckets = nbuckets;
}

static struct dict_entry *find(const struct rc_dict *d, const void *key, size_t klen, uint64_t h)
{
    struct dict_entry *e = d->buckets[(size_t)h & (d->nbuckets - 1)];

    for (; e; e = e->next) {
        if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            return e;
    }
    return NULL;
}

void *rc_dict_get(const struct rc_dict *d, const void *key, size_t klen)
{
    struct dict_entry *e;

    if (d->size == 0)
        return NULL;
    e = find(d, key, klen, hash64(key, klen));
    return e ? e->val : NULL;
}

int rc_dict_add(struct rc_dict *d, const void *key, size_t klen, void *val)
{
    uint64_t h = hash64(key, klen);
    struct dict_entry *e;
    size_t want, j;

    if (d->size > 0 && find(d, key, klen, h))
        return -EEXIST;

    /* Grow past load factor 1; shrink a table that emptied out to 1/8 load.
     * Never on delete, so iteration may delete what it was just given. */
    want = d->nbuckets ? d->nbuckets : MIN_BUCKETS;
    while (d->size + 1 > want)
        want *= 2;
    while (want > MIN_BUCKETS && (d->size + 1) * 8 <= want)
        want /= 2;
    if (want != d->nbuckets)
        resize(d, want);

    e = rc_xmalloc(sizeof(*e) + klen + 1);
    e->val = val;
    e->hash = h;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    j = (size_t)h & (d->nbuckets - 1);
    e->next = d->buckets[j];
    d->buckets[j] = e;
    d->size++;
    return 0;
}

void *rc_dict_del(struct rc_dict *d, const void *key, size_t klen)
{
    struct dict_entry **link, *e;
    uint64_t h;
    void *val;

    if (d->size == 0)
        return NULL;
    h = hash64(key, klen);
    link = &d->buckets[(size_t)h & (d->nbuckets - 1)];
    for (e = *link; e; link = &e->next, e = e->next) {
        if (e->hash == h && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            break;
    }
    if (!e)
        return NULL;
    *link = e->next;
    val = e->val;
    free(e);
    if (--d->size == 0) {
        /* The common one-or-two-subscription client goes back to a bare
         * header. An iteration in progress sees no buckets and stops. */
        free(d->buckets);
        d->buckets = NULL;
        d->nbuckets = 0;
    }
    return val;
}

void rc_dict_shrink(struct rc_dict *d)
{
    size_t want = d->nbuckets;

    while (want > MIN_BUCKETS && d->size * 8 <= want)
        want /= 2;
    if (want != d->nbuckets && d->size > 0)
        resize(d, want);
}

size_t rc_dict_size(const struct rc_dict *d)
{
    return d->size;
}

void rc_dict_iter_init(struct rc_dict_iter *it)
{
    it->bucket = 0;
    it->entry = NULL;
    it->next = NULL;
}

bool rc_dict_next(const struct rc_dict *d, struct rc_dict_iter *it, const char **key, size_t *klen,
                  void **val)
{
    struct dict_entry *e = it->next;

    /* it->bucket is the next bucket to scan; it->next the rest of the chain
     * we are in, saved before handing out the entry so it may be deleted. */
    while (!e) {
        if (it->bucket >= d->nbuckets) {
            it->entry = NULL;
            return false;
        }
        e = d->buckets[it->bucket++];
    }
    it->entry = e;
    it->next = e->next;
    if (key)
        *key = e->key;
    if (klen)
        *klen = e->klen;
    if (val)
        *val = e->val;
    return true;
}
