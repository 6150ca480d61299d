/* accum.h -- the accumulation policy: when a subscriber's output may wait for more.
 *
 * The kernel charges per send, not per byte, so a subscriber that will get
 * more output soon is cheaper served by one larger send a little later than
 * by several small ones now. This module decides, for every connection on
 * the dirty list at the start of a loop iteration, "send now" or "hold", for
 * every backend that batches (uring and epoll). It is a pure function of the
 * connection's recent history, the server's recent CPU use and a clock
 * passed in, so it is tested on synthetic histories (tests/unit/test_accum.c).
 *
 * Modes, from the settings (docs/tuning.md):
 *   tick-us N > 0          a fixed window: hold each subscriber's output until
 *                          N us after the first of it was queued;
 *   tick-us 0, accum-budget-us B > 0 (the default)
 *                          adaptive: hold only while more output for it is
 *                          expected soon, never longer than B;
 *   both 0                 never hold: send on every iteration.
 * In every mode, tick-bytes of output pending over all dirty connections
 * sends everything at once, only subscribers' output is ever held (replies
 * to publishers and command clients go out on the iteration that made them),
 * and nothing is held while the server shuts down.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_ACCUM_H
#define RC_ACCUM_H

#include <stdbool.h>
#include <stdint.h>

/* CPU use is sampled at most this often (one clock_gettime of the thread's CPU time). */
#define RC_ACCUM_SAMPLE_US 10000
/* The loop's load is a moving average of its CPU share (per mille of one CPU)
 * over about the last four samples (40 ms). It becomes "busy" when the load reaches
 * RC_ACCUM_BUSY_PERMILLE and stays busy until the load falls below
 * RC_ACCUM_IDLE_PERMILLE: holding output lowers the CPU it costs, and without
 * the gap between the two a loaded server would stop holding as soon as
 * holding worked, then start again (measured at 100 channels x 10
 * subscribers: single samples swung between 22 % and 80 %). */
#define RC_ACCUM_BUSY_PERMILLE 600
#define RC_ACCUM_IDLE_PERMILLE 400
/* Gaps between a connection's outputs are clamped to this many budgets before
 * averaging, so that one long silence is forgotten within a few ticks ... */
#define RC_ACCUM_GAP_CAP 32
/* ... and a busy server holds only connections whose average gap is at most
 * this many budgets (a subscriber that hears once a second is not held). */
#define RC_ACCUM_HORIZON 16

/* One connection's history (embedded in struct rc_io_conn). Times are
 * microseconds on the monotonic clock; 0 means "never". */
struct rc_accum_conn {
    uint64_t first_us; /* the oldest output not handed to the kernel yet was queued */
    uint64_t last_us;  /* the last iteration that brought it output */
    uint32_t gap_us;   /* moving average of the gaps between such iterations, 0 = unknown */
    uint32_t tick;     /* the iteration that last_us belongs to */
    bool held;         /* its pending output has been held at least once */
};

struct rc_accum_cfg {
    uint64_t tick_us;   /* fixed window, 0 = adaptive */
    uint64_t budget_us; /* adaptive: longest hold, 0 = never hold */
};

/* The server-wide state: the iteration clock and the CPU sample. */
struct rc_accum {
    uint32_t tick;          /* loop iterations so far */
    uint64_t now_us;        /* when the current iteration's events were dispatched */
    uint64_t sample_us;     /* wall clock of the last CPU sample */
    uint64_t sample_cpu;    /* the thread's CPU time then, us */
    uint32_t busy_permille; /* CPU share over the last sample period */
    uint32_t load_permille; /* moving average of those samples */
    bool busy;              /* load reached BUSY and has not fallen below IDLE since */
    uint64_t planned_us;    /* when the loop meant to look at held output again */
};

/* Output for a connection arrived at now (call once per iteration that
 * brought it some). budget_us scales the clamp on the gaps. */
void rc_accum_note(struct rc_accum_conn *a, uint64_t budget_us, uint64_t now);

/* True while the loop is busy (see RC_ACCUM_BUSY_PERMILLE). Takes a new
 * sample when at least RC_ACCUM_SAMPLE_US passed since the previous one:
 * cpu_us is the loop thread's CPU time at now. */
bool rc_accum_busy(struct rc_accum *g, uint64_t now, uint64_t cpu_us);

/* The decision for one holdable connection with output pending at now:
 * returns true to hold, and then *until is when to decide again (never later
 * than the end of its budget or window). busy: rc_accum_busy(). */
bool rc_accum_hold(const struct rc_accum_cfg *cfg, const struct rc_accum_conn *a, bool busy,
                   uint64_t now, uint64_t *until);

struct rc_io;
struct rc_io_conn;

/* Hands the dirty list to a backend: every connection that may send now is
 * taken off the list and passed to send(); the ones held stay on it, and
 * *wait_ns (negative: no limit) is lowered to when the first of them must be
 * looked at again (0 when send() put a connection back on the list). */
void rc_accum_flush(struct rc_io *io, void (*send)(struct rc_io *, struct rc_io_conn *),
                    int64_t *wait_ns);

#endif
