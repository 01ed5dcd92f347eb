/* Reference-counted snapshots and the cell that publishes the current one.
 *
 * Invariants: a snapshot is immutable once published except for its hit
 * counters, which are relaxed atomics. The cell owns one reference to the
 * current snapshot; every worker owns one to the snapshot it last used. The
 * generation number is written under the cell's mutex after the pointer, and
 * read without it: a worker that sees a new generation takes the mutex once to
 * fetch the new pointer and bump its count, so the mutex is touched once per
 * reload per worker, never per request. Freeing happens in whichever thread
 * drops the last reference (a worker, after a reload, typically). */
#include "engine/snapshot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lib/err.h"

struct rk_snapshot {
    atomic_uint_fast32_t refs;    /* holders: the cell and the workers */
    uint64_t generation;          /* set once by rk_snapshot_cell_publish */
    rk_ruleset *rs;               /* owned */
    int nrules;                   /* rk_ruleset_nrules(rs), cached */
    atomic_uint_fast64_t *hits;   /* per rule, file order; nrules entries */
};

struct rk_snapshot_cell {
    pthread_mutex_t lock;       /* guards cur and its reference count hand-over */
    rk_snapshot *cur;           /* the published snapshot; the cell holds one reference */
    atomic_uint_fast64_t gen;   /* cur->generation, readable without the lock */
};

int rk_snapshot_new(rk_ruleset *rs, rk_snapshot **out)
{
    rk_snapshot *s = calloc(1, sizeof *s);
    int n = rk_ruleset_nrules(rs);
    atomic_uint_fast64_t *hits = calloc(n > 0 ? (size_t)n : 1, sizeof *hits);
    if (!s || !hits) {
        free(s);
        free(hits);
        rk_ruleset_free(rs);
        return RK_ENOMEM;
    }
    atomic_init(&s->refs, 1);
    for (int i = 0; i < n; i++)
        atomic_init(&hits[i], 0);
    s->rs = rs;
    s->nrules = n;
    s->hits = hits;
    *out = s;
    return 0;
}

void rk_snapshot_retain(rk_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void rk_snapshot_release(rk_snapshot *s)
{
    if (!s)
        return;
    /* acq_rel: the freeing thread must see every write made by the others
     * before they let go. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    rk_ruleset_free(s->rs);
    free(s->hits);
    free(s);
}

const rk_ruleset *rk_snapshot_ruleset(const rk_snapshot *s)
{
    return s->rs;
}

const char *rk_snapshot_label(const rk_snapshot *s)
{
    return rk_ruleset_label(s->rs);
}

uint64_t rk_snapshot_generation(const rk_snapshot *s)
{
    return s->generation;
}

void rk_snapshot_count_hits(rk_snapshot *s, const rk_decision *d)
{
    for (int i = 0; i < d->nreasons; i++)
        if (d->reasons[i] < s->nrules)
            atomic_fetch_add_explicit(&s->hits[d->reasons[i]], 1, memory_order_relaxed);
    for (int i = 0; i < d->nshadow; i++)
        if (d->shadow[i] < s->nrules)
            atomic_fetch_add_explicit(&s->hits[d->shadow[i]], 1, memory_order_relaxed);
}

uint64_t rk_snapshot_hits(const rk_snapshot *s, int i)
{
    if (i < 0 || i >= s->nrules)
        return 0;
    return atomic_load_explicit(&s->hits[i], memory_order_relaxed);
}

int rk_snapshot_cell_new(rk_snapshot *first, rk_snapshot_cell **out)
{
    rk_snapshot_cell *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    first->generation = 1;
    c->cur = first;
    atomic_init(&c->gen, 1);
    *out = c;
    return 0;
}

void rk_snapshot_cell_free(rk_snapshot_cell *c)
{
    if (!c)
        return;
    rk_snapshot_release(c->cur);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void rk_snapshot_cell_publish(rk_snapshot_cell *c, rk_snapshot *s)
{
    pthread_mutex_lock(&c->lock);
    rk_snapshot *old = c->cur;
    s->generation = old->generation + 1;
    c->cur = s;
    atomic_store_explicit(&c->gen, s->generation, memory_order_release);
    pthread_mutex_unlock(&c->lock);
    /* Outside the lock: this may free the old rule set, which takes a while. */
    rk_snapshot_release(old);
}

rk_snapshot *rk_snapshot_cell_acquire(rk_snapshot_cell *c)
{
    pthread_mutex_lock(&c->lock);
    rk_snapshot *s = c->cur;
    rk_snapshot_retain(s);
    pthread_mutex_unlock(&c->lock);
    return s;
}

rk_snapshot *rk_snapshot_cell_refresh(rk_snapshot_cell *c, rk_snapshot *held)
{
    if (held && atomic_load_explicit(&c->gen, memory_order_acquire) == held->generation)
        return held;
    rk_snapshot *s = rk_snapshot_cell_acquire(c);
    rk_snapshot_release(held);
    return s;
}
