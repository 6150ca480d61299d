/* accum.c -- the accumulation policy: hold a subscriber's output while more is expected soon.
 *
 * Why here: the io layer is where "what may each connection send now" is
 * decided for every backend, and the dirty list is the one place where all
 * of this iteration's output meets; the server's connection layer only says
 * which connections may be held at all (RC_IO_HOLDABLE: subscribers, never
 * publishers or command clients). Both batching backends call
 * rc_accum_flush() instead of emptying the dirty list themselves.
 *
 * The adaptive rule. Output for a subscriber is held when one of two things
 * says that more output for it is coming within the budget:
 *  (a) its own stream: the iterations that brought it output arrive every
 *      gap_us on average, and the next two such iterations are due before
 *      its oldest pending output reaches the budget (a fixed-rate feed of a
 *      few thousand messages a second and more; a pipelined burst). It is
 *      looked at again when the next one is overdue -- a burst that stops is
 *      sent at once, not at the end of the budget;
 *  (b) the server's load: the loop thread is busy (its CPU share, averaged
 *      over the last few samples, reached RC_ACCUM_BUSY_PERMILLE and has
 *      not fallen below RC_ACCUM_IDLE_PERMILLE since), so every send
 *      saved is throughput gained, and the subscriber does get output
 *      regularly (average gap at most RC_ACCUM_HORIZON budgets). Under (b)
 *      its output waits until the end of the budget. This is what batches
 *      100 channels x 10 subscribers at full rate, where each subscriber
 *      hears only every millisecond or two but the server is saturated.
 * A subscriber's first output (no history) and output at a light load (a
 * message every millisecond to a few subscribers: neither rule) go out on
 * the iteration that queued them. The CPU sample is the only cost: one
 * clock_gettime of the thread's CPU time per RC_ACCUM_SAMPLE_US while
 * subscribers have output, counted as a system call of kind "other".
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "accum.h"

#include <time.h>

#include "io.h"

void rc_accum_note(struct rc_accum_conn *a, uint64_t budget_us, uint64_t now)
{
    uint64_t cap = budget_us ? budget_us * RC_ACCUM_GAP_CAP : 1000000;

    if (!now)
        return;
    if (!a->first_us)
        a->first_us = now;
    if (a->last_us && now > a->last_us) {
        uint64_t gap = RC_MIN(now - a->last_us, cap);
        /* A moving average over about four iterations that carried output. */
        a->gap_us = (uint32_t)(a->gap_us ? (3 * (uint64_t)a->gap_us + gap) / 4 : gap);
        if (!a->gap_us)
            a->gap_us = 1;
    }
    a->last_us = now;
}

bool rc_accum_busy(struct rc_accum *g, uint64_t now, uint64_t cpu_us)
{
    if (!g->sample_us || now < g->sample_us || cpu_us < g->sample_cpu) {
        /* A baseline (or a clock that went back): no verdict from it. */
        g->sample_us = now;
        g->sample_cpu = cpu_us;
        g->busy_permille = 0;
    } else if (now - g->sample_us >= RC_ACCUM_SAMPLE_US) {
        uint64_t period = now - g->sample_us, span = 4 * (uint64_t)RC_ACCUM_SAMPLE_US;
        uint32_t sample = (uint32_t)RC_MIN((cpu_us - g->sample_cpu) * 1000 / period, 1000);
        /* The average weighs each sample by the time it covers: a regular
         * sample counts a quarter, one that spans a long quiet spell (no
         * subscriber had output, so nothing sampled) replaces the past. */
        if (period >= span)
            g->load_permille = sample;
        else
            g->load_permille =
                (uint32_t)(((uint64_t)g->load_permille * (span - period) + sample * period) / span);
        g->busy_permille = sample;
        g->sample_us = now;
        g->sample_cpu = cpu_us;
        if (!g->busy && g->load_permille >= RC_ACCUM_BUSY_PERMILLE)
            g->busy = true;
        else if (g->busy && g->load_permille < RC_ACCUM_IDLE_PERMILLE)
            g->busy = false;
    }
    return g->busy;
}

bool rc_accum_hold(const struct rc_accum_cfg *cfg, const struct rc_accum_conn *a, bool busy,
                   uint64_t now, uint64_t *until)
{
    uint64_t end, next;

    if (cfg->tick_us) {
        end = a->first_us + cfg->tick_us;
        *until = end;
        return now < end;
    }
    if (!cfg->budget_us || !a->gap_us || !a->first_us)
        return false;
    end = a->first_us + cfg->budget_us;
    if (now >= end)
        return false;
    /* (a) Two more of its iterations fit in the budget: wait for the next. */
    next = a->last_us + 2 * (uint64_t)a->gap_us;
    if (now < next && next <= end) {
        *until = next;
        return true;
    }
    /* (b) The server is saturated and this subscriber hears regularly. */
    if (busy && a->gap_us <= cfg->budget_us * RC_ACCUM_HORIZON) {
        *until = end;
        return true;
    }
    return false;
}

/* The loop thread's CPU time in microseconds (one system call). */
static uint64_t thread_cpu_us(struct rc_io *io)
{
    struct timespec ts;

    io->stats.sys[RC_SYS_OTHER]++;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* True when tick-bytes or more are pending over the whole dirty list. */
static bool over_bytes(const struct rc_io *io)
{
    uint64_t pending = 0, limit = io->cfg.tick_bytes;

    if (!limit)
        return false;
    for (const struct rc_io_conn *c = io->dirty_head; c; c = c->dnext) {
        pending += rc_queue_pending(&c->out);
        if (pending >= limit)
            return true;
    }
    return false;
}

static void account_sent(struct rc_io *io, struct rc_io_conn *c, uint64_t now)
{
    if (c->acc.held && c->acc.first_us && now > c->acc.first_us) {
        uint64_t held = now - c->acc.first_us;
        io->stats.held_sends++;
        io->stats.held_us += held;
        io->stats.held_max_us = RC_MAX(io->stats.held_max_us, held);
    }
    c->acc.held = false;
}

void rc_accum_flush(struct rc_io *io, void (*send)(struct rc_io *, struct rc_io_conn *),
                    int64_t *wait_ns)
{
    const struct rc_accum_cfg cfg = {.tick_us = io->cfg.tick_us, .budget_us = io->cfg.budget_us};
    bool on = cfg.tick_us || cfg.budget_us;
    bool may_hold = on && !io->stopping && io->dirty_head && !over_bytes(io);
    bool busy = false, sampled = false;
    uint64_t now = on ? rc_now_us() : 0, first_until = 0;
    uint32_t n = io->ndirty, nheld = 0;
    struct rc_io_conn *c;

    /* How late the loop is for what it held last time: a hold can only end
     * this late after its budget (INFO fanout held_late_us_max). */
    if (io->acc.planned_us && now > io->acc.planned_us)
        io->stats.late_max_us = RC_MAX(io->stats.late_max_us, now - io->acc.planned_us);
    io->acc.planned_us = 0;
    /* n pops: what is held goes back on the tail and is not looked at twice. */
    while (n-- && (c = rc_io_pop_dirty(io))) {
        uint64_t until = 0;

        if (may_hold && (c->flags & RC_IO_HOLDABLE) && !rc_io_should_close(c) &&
            rc_queue_pending(&c->out)) {
            if (!c->acc.first_us)
                c->acc.first_us = now; /* pending without a push: left by a send */
            if (!cfg.tick_us && !sampled) {
                sampled = true;
                if (!io->acc.sample_us || now - io->acc.sample_us >= RC_ACCUM_SAMPLE_US)
                    busy = rc_accum_busy(&io->acc, now, thread_cpu_us(io));
                else
                    busy = io->acc.busy;
            }
            if (rc_accum_hold(&cfg, &c->acc, busy, now, &until)) {
                c->acc.held = true;
                rc_io_mark_dirty(io, c);
                nheld++;
                if (!first_until || until < first_until)
                    first_until = until;
                continue;
            }
        }
        account_sent(io, c, now);
        /* Reset before send(): a backend may free c on the way (teardown). */
        c->acc.first_us = 0;
        send(io, c);
    }
    if (nheld) {
        int64_t left = (int64_t)(first_until > now ? first_until - now : 0) * 1000;
        io->stats.held_ticks++;
        io->acc.planned_us = first_until;
        if (*wait_ns < 0 || left < *wait_ns)
            *wait_ns = left;
    }
    if (io->ndirty > nheld)
        *wait_ns = 0;
}
