/* Velocity counters: compiling definitions, and the per-request update and
 * read of every counter of a set in the worker's write transaction.
 *
 * A compiled rk_counters is immutable; it holds each definition with its
 * identity hash and window geometry, and the distinct key-field tuples
 * ("groups"), so one request hashes each entity once however many counters
 * are keyed by it. Records are read from LMDB, copied into the worker's
 * aligned scratch, updated there, and written back only when they changed:
 * a read-only counter (its `when` false, or fed by feedback) costs one get.
 *
 * Count and sum records are rings of int64 per bucket (window.h); sums
 * saturate at the int64 limits rather than wrap. Distinct records are in
 * distinct.c. Counters fed by feedback are only read on the request path;
 * their keys are handed to the decided-transaction record (recent.c), and
 * rk_counters_feedback counts them when a label arrives. */
#include "state/counters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "state/crecord.h"
#include "state/store_int.h"

typedef struct cdef {
    rk_counter_def def; /* the definition as given */
    uint64_t id;        /* identity hash, the key suffix */
    rk_window win;      /* bucket geometry of its window */
    int group;          /* index of its key-field tuple in rk_counters.groups */
} cdef;

typedef struct cgroup {
    int nby;                        /* key fields */
    int slot[RK_COUNTER_BY_MAX];    /* their txn slots */
} cgroup;

struct rk_counters {
    int n;                          /* definitions */
    int ngroups;                    /* distinct key-field tuples */
    cdef d[RK_COUNTERS_MAX];        /* definitions in the caller's order */
    cgroup groups[RK_COUNTERS_MAX]; /* key-field tuples */
};

static const char *const agg_names[] = {"count", "sum", "distinct"};

/* The identity: everything that changes what a stored record means. The
 * leading version string changes whenever the record layout does. */
static uint64_t def_identity(const rk_counter_def *d)
{
    char buf[1024];
    size_t n = (size_t)snprintf(buf, sizeof buf, "rk-counter-v1|%s|", d->name);
    for (int i = 0; i < d->nby && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s,", d->by_name[i]);
    if (n < sizeof buf)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "|%lld|%s|%s|%d",
                              (long long)d->window_ms, agg_names[d->agg],
                              d->agg == RK_AGG_COUNT ? "" : d->field_name, d->feedback);
    if (n > sizeof buf)
        n = sizeof buf;
    return rk_hash64(buf, n);
}

static int bad(rk_diag *diag, int rc, const char *name, const char *what)
{
    rk_diag_set(diag, NULL, 0, 0, "counter '%s': %s", name, what);
    return rc;
}

static int check_def(const rk_counter_def *d, rk_diag *diag)
{
    if (!d->name[0] || memchr(d->name, 0, RK_NAME_MAX) == NULL)
        return bad(diag, RK_EINVAL, "", "missing or overlong name");
    if (d->nby < 1 || d->nby > RK_COUNTER_BY_MAX)
        return bad(diag, RK_EINVAL, d->name, "`by` needs 1 to 4 fields");
    for (int i = 0; i < d->nby; i++)
        if (d->by_slot[i] < 0 || d->by_slot[i] >= RK_MAX_SLOTS || !d->by_name[i][0])
            return bad(diag, RK_EINVAL, d->name, "bad `by` field");
    rk_window w;
    if (rk_window_geom(d->window_ms, &w) != 0)
        return bad(diag, RK_ERANGE, d->name, "window must be between 30s and 90d");
    if (d->agg < RK_AGG_COUNT || d->agg > RK_AGG_DISTINCT)
        return bad(diag, RK_EINVAL, d->name, "unknown aggregate");
    if (d->agg != RK_AGG_COUNT &&
        (d->field_slot < 0 || d->field_slot >= RK_MAX_SLOTS || !d->field_name[0]))
        return bad(diag, RK_EINVAL, d->name, "sum and distinct need a field");
    if (d->feedback < RK_LABEL_NONE || d->feedback > RK_LABEL_LEGIT)
        return bad(diag, RK_EINVAL, d->name, "feedback must be fraud or legit");
    return 0;
}

int rk_counters_new(const rk_counter_def *defs, int n, rk_counters **out, rk_diag *diag)
{
    if (n < 0 || n > RK_COUNTERS_MAX) {
        rk_diag_set(diag, NULL, 0, 0, "too many counters (at most %d)", RK_COUNTERS_MAX);
        return RK_ETOOBIG;
    }
    rk_counters *c = calloc(1, sizeof *c);
    if (!c)
        return RK_ENOMEM;
    for (int i = 0; i < n; i++) {
        const rk_counter_def *d = &defs[i];
        int rc = check_def(d, diag);
        for (int j = 0; rc == 0 && j < i; j++)
            if (strcmp(defs[j].name, d->name) == 0)
                rc = bad(diag, RK_EEXISTS, d->name, "defined twice");
        if (rc != 0) {
            free(c);
            return rc;
        }
        cdef *cd = &c->d[i];
        cd->def = *d;
        if (d->agg == RK_AGG_COUNT) {
            cd->def.field_slot = -1;
            cd->def.field_name[0] = 0;
        }
        cd->id = def_identity(&cd->def);
        rk_window_geom(d->window_ms, &cd->win);
        int g = 0;
        while (g < c->ngroups &&
               !(c->groups[g].nby == d->nby &&
                 memcmp(c->groups[g].slot, d->by_slot, sizeof(int) * (size_t)d->nby) == 0))
            g++;
        if (g == c->ngroups) {
            c->groups[g].nby = d->nby;
            memcpy(c->groups[g].slot, d->by_slot, sizeof(int) * (size_t)d->nby);
            c->ngroups++;
        }
        cd->group = g;
    }
    c->n = n;
    *out = c;
    return 0;
}

void rk_counters_free(rk_counters *c)
{
    free(c);
}

int rk_counters_count(const rk_counters *c)
{
    return c->n;
}

const rk_counter_def *rk_counters_def(const rk_counters *c, int i)
{
    return i >= 0 && i < c->n ? &c->d[i].def : NULL;
}

uint64_t rk_counters_id(const rk_counters *c, int i)
{
    return i >= 0 && i < c->n ? c->d[i].id : 0;
}

/* ---- one record ---------------------------------------------------------- */

enum { MODE_READ, MODE_ADD, MODE_TAKEBACK };

/* Adds delta at bucket b to a ring record in rec (*len 0 = new). MODE_TAKEBACK
 * removes an earlier contribution: it never creates a record or moves the
 * window, it only subtracts from a bucket still held. */
static bool ring_apply(void *rec, size_t *len, const rk_window *win, int64_t b, int mode,
                       int64_t delta, int64_t *value)
{
    rk_crec_hdr *h = rec;
    int64_t *slots = (int64_t *)((uint8_t *)rec + sizeof *h);
    bool changed = false;
    bool add = mode != MODE_READ;
    if (*len == 0) {
        if (mode != MODE_ADD) {
            *value = 0;
            return false;
        }
        memset(rec, 0, sizeof *h + (size_t)win->nslots * sizeof *slots);
        h->version = RK_CREC_VERSION;
        h->kind = RK_CREC_RING;
        h->nslots = (uint8_t)win->nslots;
        h->width = win->width;
        h->newest = b;
        *len = sizeof *h + (size_t)win->nslots * sizeof *slots;
    }
    if (add && rk_window_in_ring(win, h->newest, b) &&
        !(mode == MODE_TAKEBACK && b > h->newest)) {
        if (b > h->newest) {
            rk_window_advance_i64(win, slots, h->newest, b);
            h->newest = b;
        }
        int s = rk_window_slot(win, b);
        slots[s] = rk_sat_add(slots[s], delta);
        changed = true;
    }
    *value = rk_window_sum_i64(win, slots, h->newest, b);
    return changed;
}

/* Whether a stored record has the shape this definition expects. */
static bool record_fits(const void *rec, size_t len, const cdef *cd)
{
    if (len < sizeof(rk_crec_hdr))
        return false;
    const rk_crec_hdr *h = rec;
    if (h->version != RK_CREC_VERSION || h->nslots != cd->win.nslots ||
        h->width != cd->win.width)
        return false;
    if (cd->def.agg == RK_AGG_DISTINCT) {
        if (h->kind == RK_CREC_EXACT)
            return h->nexact <= RK_DISTINCT_EXACT_MAX &&
                   len == sizeof *h + h->nexact * sizeof(rk_exact_entry);
        return h->kind == RK_CREC_HLL && len == sizeof *h + (size_t)h->nslots * RK_HLL_BYTES;
    }
    return h->kind == RK_CREC_RING && len == sizeof *h + (size_t)h->nslots * sizeof(int64_t);
}

/* Reads, updates (when add) and writes back one counter record.
 * delta: count/sum contribution; vh: distinct value hash. */
static int update_record(rk_store_worker *w, const cdef *cd, const uint8_t ekey[RK_HASH_LEN],
                         int64_t ts, int mode, int64_t delta, uint64_t vh, int64_t *value)
{
    rk_store *s = w->s;
    uint8_t kbuf[RK_CREC_KEY_LEN];
    memcpy(kbuf, ekey, RK_HASH_LEN);
    memcpy(kbuf + RK_HASH_LEN, &cd->id, sizeof cd->id);
    MDB_val k = {sizeof kbuf, kbuf}, v;
    size_t len = 0;
    int rc = mdb_get(w->txn, s->db_counters, &k, &v);
    if (rc == 0) {
        if (v.mv_size <= RK_REC_MAX) {
            memcpy(w->rec, v.mv_data, v.mv_size);
            len = v.mv_size;
        }
        if (!record_fits(w->rec, len, cd)) {
            /* cannot happen short of corruption (the identity fixes the shape):
             * start the record afresh rather than misread it */
            rk_log_warn("state: counter '%s': discarding an undecodable record", cd->def.name);
            len = 0;
        }
    } else if (rc != MDB_NOTFOUND) {
        return rk_store_mdb_fail(s, rc, "reading a counter");
    }
    int64_t b = rk_window_bucket(&cd->win, ts);
    bool changed = cd->def.agg == RK_AGG_DISTINCT
                       ? rk_distinct_apply(w->rec, &len, &cd->win, b, mode == MODE_ADD, vh, value)
                       : ring_apply(w->rec, &len, &cd->win, b, mode, delta, value);
    if (!changed)
        return 0;
    v = (MDB_val){len, w->rec};
    if ((rc = mdb_put(w->txn, s->db_counters, &k, &v, 0)) != 0)
        return rk_store_mdb_fail(s, rc, "writing a counter");
    return 0;
}

/* ---- the request path ---------------------------------------------------- */

typedef struct apply_arg {
    const rk_counters *c; /* the set */
    const rk_txn *txn;    /* the request */
    int64_t ts;           /* its event time */
    const bool *when;     /* filters, or NULL */
    rk_value *out;        /* one value per counter */
} apply_arg;

/* What the request contributes to counter cd: *delta for count/sum, *vh for
 * distinct. False when the aggregate field is absent (nothing to count). */
static bool contribution(rk_store_worker *w, const cdef *cd, const rk_txn *txn, int64_t *delta,
                         uint64_t *vh)
{
    *delta = 1;
    *vh = 0;
    if (cd->def.agg == RK_AGG_COUNT)
        return true;
    const rk_value *f = &txn->v[cd->def.field_slot];
    if (cd->def.agg == RK_AGG_SUM) {
        if (f->type != RK_T_INT)
            return false;
        *delta = f->i;
        return true;
    }
    uint8_t h[RK_HASH_LEN];
    if (rk_keyhash_value(w->s->kh, f, h) != 0)
        return false;
    *vh = rk_hash_prefix64(h);
    return true;
}

static int apply_op(rk_store_worker *w, void *arg)
{
    apply_arg *a = arg;
    const rk_counters *c = a->c;
    uint8_t gkey[RK_COUNTERS_MAX][RK_HASH_LEN];
    bool gok[RK_COUNTERS_MAX];
    for (int g = 0; g < c->ngroups; g++) {
        const rk_value *vs[RK_COUNTER_BY_MAX];
        for (int i = 0; i < c->groups[g].nby; i++)
            vs[i] = &a->txn->v[c->groups[g].slot[i]];
        gok[g] = rk_keyhash_values(w->s->kh, vs, c->groups[g].nby, gkey[g]) == 0;
    }
    for (int i = 0; i < c->n; i++) {
        const cdef *cd = &c->d[i];
        if (!gok[cd->group]) { /* a key field is missing: the counter is too */
            a->out[i] = rk_value_missing();
            continue;
        }
        bool when = a->when ? a->when[i] : true;
        int64_t delta = 0;
        uint64_t vh = 0;
        bool has = when && contribution(w, cd, a->txn, &delta, &vh);
        bool add = has && cd->def.feedback == RK_LABEL_NONE;
        if (has && cd->def.feedback != RK_LABEL_NONE && w->nfb < RK_FBKEY_MAX) {
            rk_fbkey *k = &w->fb[w->nfb++];
            memset(k, 0, sizeof *k);
            k->tag = cd->id;
            memcpy(k->key, gkey[cd->group], RK_HASH_LEN);
            if (cd->def.agg == RK_AGG_DISTINCT) {
                k->vhash = vh;
                k->flags = RK_FBKEY_HAS_VHASH;
            } else if (cd->def.agg == RK_AGG_SUM) {
                k->num = delta;
            }
        }
        int64_t value;
        int rc = update_record(w, cd, gkey[cd->group], a->ts, add ? MODE_ADD : MODE_READ, delta,
                               vh, &value);
        if (rc != 0)
            return rc;
        a->out[i] = rk_value_int(value);
    }
    return 0;
}

int rk_counters_apply(rk_store_worker *w, const rk_counters *c, const rk_txn *txn, int64_t ts,
                      const bool *when, rk_value *out)
{
    apply_arg a = {c, txn, ts, when, out};
    return rk_store_op(w, apply_op, &a, sizeof a);
}

/* ---- feedback ------------------------------------------------------------ */

typedef struct feedback_arg {
    const rk_counters *c;       /* the set */
    const rk_feedback_info *fb; /* what rk_recent_feedback returned */
    int *napplied;              /* out, may be NULL */
} feedback_arg;

static int feedback_op(rk_store_worker *w, void *arg)
{
    feedback_arg *a = arg;
    const rk_feedback_info *fb = a->fb;
    int applied = 0;
    if (fb->label != fb->prev_label) {
        for (int k = 0; k < fb->nkeys; k++) {
            const rk_fbkey *key = &fb->keys[k];
            for (int i = 0; i < a->c->n; i++) {
                const cdef *cd = &a->c->d[i];
                if (cd->id != key->tag)
                    continue;
                int64_t delta = cd->def.agg == RK_AGG_SUM ? key->num : 1, value;
                int rc = 0;
                if (cd->def.feedback == fb->label) {
                    if (cd->def.agg == RK_AGG_DISTINCT && !(key->flags & RK_FBKEY_HAS_VHASH))
                        continue;
                    rc = update_record(w, cd, key->key, fb->ts, MODE_ADD, delta, key->vhash,
                                       &value);
                    applied++;
                } else if (cd->def.feedback == fb->prev_label && cd->def.agg != RK_AGG_DISTINCT) {
                    /* the label changed: take the old label's contribution back */
                    rc = update_record(w, cd, key->key, fb->ts, MODE_TAKEBACK,
                                       delta == INT64_MIN ? INT64_MAX : -delta, 0, &value);
                    applied++;
                }
                if (rc != 0)
                    return rc;
            }
        }
    }
    if (a->napplied)
        *a->napplied = applied;
    return 0;
}

int rk_counters_feedback(rk_store_worker *w, const rk_counters *c, const rk_feedback_info *fb,
                         int *napplied)
{
    if (!fb || (fb->label != RK_LABEL_FRAUD && fb->label != RK_LABEL_LEGIT))
        return RK_EINVAL;
    feedback_arg a = {c, fb, napplied};
    return rk_store_op(w, feedback_op, &a, sizeof a);
}

/* ---- sweeping ------------------------------------------------------------ */

bool rk_counters_record_idle(const void *v, size_t len, int64_t now_ms)
{
    rk_crec_hdr h;
    if (len < sizeof h)
        return true;
    memcpy(&h, v, sizeof h);
    if (h.version != RK_CREC_VERSION || h.width <= 0 || h.nslots == 0 ||
        h.nslots > RK_WINDOW_SLOTS_MAX)
        return true;
    rk_window win = {h.width, h.nslots};
    return !rk_window_in_ring(&win, rk_window_bucket(&win, now_ms), h.newest);
}
