/* dict.h -- a hash table from binary-safe string keys to pointers.
 *
 * Used for the channel and pattern tables and for each client's own set of
 * subscriptions. Keys are copied in; the table never owns the values.
 * Hashing is seeded per process so a client cannot pick channel names that
 * all collide (hash flooding).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_DICT_H
#define RC_DICT_H

#include <stdbool.h>
#include <stddef.h>

struct rc_dict;

struct rc_dict_iter {
    size_t bucket;
    void *entry;
    void *next;
};

/* Returns a new empty table; aborts on out-of-memory. */
struct rc_dict *rc_dict_new(void);
/* Frees the table and its copied keys; values are not touched. NULL is a no-op. */
void rc_dict_free(struct rc_dict *d);

/* Returns the value stored under key, or NULL. */
void *rc_dict_get(const struct rc_dict *d, const void *key, size_t klen);
/* Stores val under a copy of key. Returns 0, or -EEXIST if the key is present
 * (the table is unchanged). The copied key stays at a stable address until the
 * entry is deleted; rc_dict_next() returns it. */
int rc_dict_add(struct rc_dict *d, const void *key, size_t klen, void *val);
/* Removes key; returns its value, or NULL when absent. */
void *rc_dict_del(struct rc_dict *d, const void *key, size_t klen);
size_t rc_dict_size(const struct rc_dict *d);
/* Gives back bucket memory after many deletes: resizes to fit when the load
 * is under 1/8. Not during an iteration of d (it moves entries). */
void rc_dict_shrink(struct rc_dict *d);

/* Iteration in unspecified order: init, then call next until it returns false.
 * Deleting the entry last returned is allowed; any other change ends the
 * iteration's guarantees. *key points at the table's stable copy. */
void rc_dict_iter_init(struct rc_dict_iter *it);
bool rc_dict_next(const struct rc_dict *d, struct rc_dict_iter *it, const char **key, size_t *klen,
                  void **val);

/* The seeded hash the table uses (exposed for tests). */
size_t rc_dict_hash(const void *key, size_t klen);

#endif
