/* Velocity counters: compiling definitions, and the per-request update and
 * read of every counter of a set in the worker's write transaction.
 *
 * A compiled rk_counters is immutable; it holds each definition with its
 * identity hash and window geometry, and the distinct key-field tuples
 * ("groups"). All counters of a group share one LMDB record per entity
 * (crecord.h), so a request hashes each entity once and does one get and at
 * most one put per group, however many counters the group has: with the
 * shipped rule set, 5 records instead of 12. A value hashed for one purpose
 * (the `account` key, say) is reused for another (the `distinct: account`
 * value) within the request.
 *
 * A group record is read straight from the map, each counter state copied
 * into the worker's aligned scratch in the group's definition order and
 * updated there, and the record written back only when some state changed:
 * a read-only request (every `when` false, or only feedback-fed counters)
 * costs one get. Rewriting carries over, untouched, the states of counters
 * the set does not define (a redefined counter's old state, or the other
 * rule set's during a reload), so putting a definition back finds its state
 * again; the sweeper drops each state once idle, like the per-counter
 * records of format 1.
 *
 * Count and sum states are rings of int64 per bucket (window.h); sums
 * saturate at the int64 limits rather than wrap. Distinct states are in
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
    uint64_t id;        /* identity hash: finds its state in a group record */
    rk_window win;      /* bucket geometry of its window */
    int group;          /* index of its key-field tuple in rk_counters.groups */
    int member;         /* its position among the group's members */
} cdef;

typedef struct cgroup {
    int nby;                          /* key fields */
    int slot[RK_COUNTER_BY_MAX];      /* their txn slots */
    uint64_t keyset;                  /* key-set id: the record key's suffix */
    int n;                            /* counters keyed by this tuple */
    uint8_t member[RK_COUNTERS_MAX];  /* their indexes in rk_counters.d, in definition order */
} cgroup;

struct rk_counters {
    int n;                          /* definitions */
    int ngroups;                    /* distinct key-field tuples */
    cdef d[RK_COUNTERS_MAX];        /* definitions in the caller's order */
    cgroup groups[RK_COUNTERS_MAX]; /* key-field tuples */
};

_Static_assert(RK_COUNTERS_MAX <= RK_GREC_ENTRIES_MAX, "a group record holds every counter");
_Static_assert(RK_COUNTERS_MAX <= 255, "member indexes are bytes");

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
        n += (size_t)snprintf(buf + n, sizeof buf - n, "|%lld|%s|%s|%d|%llx",
                              (long long)d->window_ms, agg_names[d->agg],
                              d->agg == RK_AGG_COUNT ? "" : d->field_name, d->feedback,
                              (unsigned long long)d->filter_id);
    if (n > sizeof buf)
        n = sizeof buf;
    return rk_hash64(buf, n);
}

/* The key-set id: the `by` field names, in order. Names rather than slots,
 * because slots move between rule sets and the records must not. */
static uint64_t keyset_id(const rk_counter_def *d)
{
    char buf[16 + RK_COUNTER_BY_MAX * (RK_NAME_MAX + 1)];
    size_t n = (size_t)snprintf(buf, sizeof buf, "rk-keyset-v2|");
    for (int i = 0; i < d->nby && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s,", d->by_name[i]);
    return rk_hash64(buf, n < sizeof buf ? n : sizeof buf);
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
        cgroup *grp = &c->groups[g];
        if (g == c->ngroups) {
            grp->nby = d->nby;
            memcpy(grp->slot, d->by_slot, sizeof(int) * (size_t)d->nby);
            grp->keyset = keyset_id(d);
            c->ngroups++;
        }
        cd->group = g;
        cd->member = grp->n;
        grp->member[grp->n++] = (uint8_t)i;
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

/* ---- one counter state --------------------------------------------------- */

enum { MODE_READ, MODE_ADD, MODE_TAKEBACK };

/* What one request (or label) does to one counter of a group. */
typedef struct cop {
    int mode;      /* MODE_* */
    int64_t delta; /* count/sum contribution */
    uint64_t vh;   /* distinct: the value's hash */
} cop;

/* Adds delta at bucket b to a ring state in rec (*len 0 = new). MODE_TAKEBACK
 * removes an earlier contribution: it never creates a state or moves the
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

/* Whether a stored state has the shape this definition expects. */
static bool state_fits(const void *rec, size_t len, const cdef *cd)
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

/* Whether a state (possibly unaligned) has no bucket left in the window
 * ending at wall time now_ms. Undecodable states count as idle. */
static bool state_idle(const uint8_t *p, size_t len, int64_t now_ms)
{
    rk_crec_hdr h;
    if (len < sizeof h)
        return true;
    memcpy(&h, p, sizeof h);
    if (h.version != RK_CREC_VERSION || h.width <= 0 || h.nslots == 0 ||
        h.nslots > RK_WINDOW_SLOTS_MAX)
        return true;
    rk_window win = {h.width, h.nslots};
    return !rk_window_in_ring(&win, rk_window_bucket(&win, now_ms), h.newest);
}

/* ---- group records ------------------------------------------------------- */

/* A state inside a stored group record (p points into the map: unaligned). */
typedef struct sref {
    uint64_t id;      /* counter identity */
    const uint8_t *p; /* its body */
    size_t len;       /* body bytes */
    size_t span;      /* entry header + body + padding */
} sref;

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Indexes the states of a stored record. Returns how many, or -1 when the
 * record is not a well-formed group record. */
static int parse_group(const void *v, size_t len, sref *out)
{
    const uint8_t *p = v;
    rk_grec_hdr h;
    if (len < sizeof h)
        return -1;
    memcpy(&h, p, sizeof h);
    if (h.version != RK_GREC_VERSION || h.n > RK_GREC_ENTRIES_MAX)
        return -1;
    size_t at = sizeof h;
    for (int i = 0; i < h.n; i++) {
        rk_grec_entry e;
        if (len - at < sizeof e)
            return -1;
        memcpy(&e, p + at, sizeof e);
        if (e.len > RK_CREC_MAX || len - at - sizeof e < pad8(e.len))
            return -1;
        out[i] = (sref){e.id, p + at + sizeof e, e.len, sizeof e + pad8(e.len)};
        at += out[i].span;
    }
    return at == len ? h.n : -1;
}

/* The key of the record holding group g's counters for the entity whose
 * keyed digest is ekey: the digest, then the group's key-set number. */
static void record_key(uint8_t out[RK_CREC_KEY_LEN], const uint8_t ekey[RK_HASH_LEN],
                       const cgroup *g)
{
    memcpy(out, ekey, RK_HASH_LEN);
    memcpy(out + RK_HASH_LEN, &g->keyset, sizeof g->keyset);
}

/* Reads the record under rkey (record_key of group g), applies ops[m] to the
 * group's m-th counter in the worker's scratch, sets values[m] to its value,
 * and writes the record back if any state changed, keeping only the states
 * of g's counters. */
static int group_update(rk_store_worker *w, const rk_counters *c, const cgroup *g,
                        const uint8_t rkey[RK_CREC_KEY_LEN], int64_t ts, const cop *ops,
                        int64_t *values)
{
    MDB_val k = {RK_CREC_KEY_LEN, (void *)rkey}, v = {0, NULL};
    int rc = rk_store_get(w, RK_CUR_COUNTERS, &k, &v, "reading a counter record");
    if (rc == RK_ENOTFOUND)
        v.mv_size = 0;
    else if (rc != 0)
        return rc;
    sref old[RK_GREC_ENTRIES_MAX];
    int nold = v.mv_size ? parse_group(v.mv_data, v.mv_size, old) : 0;
    if (nold < 0) {
        /* cannot happen short of corruption: start the entity afresh rather
         * than misread it */
        rk_log_warn("state: discarding an undecodable counter record");
        nold = 0;
    }

    uint8_t *rec = w->grec;
    size_t used = sizeof(rk_grec_hdr);
    int nout = 0;
    bool changed = false, taken[RK_GREC_ENTRIES_MAX] = {false};
    for (int m = 0; m < g->n; m++) {
        const cdef *cd = &c->d[g->member[m]];
        uint8_t *body = rec + used + sizeof(rk_grec_entry);
        size_t len = 0;
        for (int j = 0; j < nold; j++) {
            if (old[j].id != cd->id)
                continue;
            taken[j] = true;
            if (cd->def.agg == RK_AGG_DISTINCT) {
                memcpy(body, old[j].p, old[j].len);
                len = old[j].len;
            } else {
                len = rk_ring_unpack(old[j].p, old[j].len, body); /* 0: undecodable */
            }
            if (!state_fits(body, len, cd)) { /* as above: the identity fixes the shape */
                rk_log_warn("state: counter '%s': discarding an undecodable state",
                            cd->def.name);
                len = 0;
            }
            break;
        }
        int64_t b = rk_window_bucket(&cd->win, ts);
        changed |= cd->def.agg == RK_AGG_DISTINCT
                       ? rk_distinct_apply(body, &len, &cd->win, b, ops[m].mode == MODE_ADD,
                                           ops[m].vh, &values[m])
                       : ring_apply(body, &len, &cd->win, b, ops[m].mode, ops[m].delta,
                                    &values[m]);
        if (len == 0)
            continue; /* never counted anything: nothing to keep */
        if (cd->def.agg != RK_AGG_DISTINCT)
            len = rk_ring_pack(body, len); /* stored sparse when that is shorter */
        rk_grec_entry e = {cd->id, (uint32_t)len, 0};
        memcpy(rec + used, &e, sizeof e);
        memset(body + len, 0, pad8(len) - len);
        used += sizeof e + pad8(len);
        nout++;
    }
    if (!changed)
        return 0;
    /* States of counters this set does not define (another rule set's, or an
     * older definition's) are carried over untouched, so a reload that puts a
     * definition back finds its state; the sweeper drops them once idle. Only
     * when the record is full do they give way. */
    for (int j = 0; j < nold; j++) {
        if (taken[j] || nout == RK_GREC_ENTRIES_MAX || old[j].span > RK_GREC_MAX - used)
            continue;
        memcpy(rec + used, old[j].p - sizeof(rk_grec_entry), old[j].span);
        used += old[j].span;
        nout++;
    }
    rk_grec_hdr h = {.version = RK_GREC_VERSION, .n = (uint8_t)nout};
    memcpy(rec, &h, sizeof h);
    v = (MDB_val){used, rec};
    return rk_store_put_at(w, RK_CUR_COUNTERS, &k, &v, "writing a counter record");
}

/* ---- the request path ---------------------------------------------------- */

#define DIGEST_CACHE 16 /* distinct fields hashed per request before caching stops */

/* Keyed digests of single field values computed so far in one request: a
 * field that is a key and a distinct value (account) is hashed once. */
typedef struct digest_cache {
    int n;                              /* entries used */
    int slot[DIGEST_CACHE];             /* txn slot */
    bool ok[DIGEST_CACHE];              /* the value was present */
    uint8_t h[DIGEST_CACHE][RK_HASH_LEN]; /* its digest */
} digest_cache;

/* The digest of txn slot `slot` into out. False when the value is missing. */
static bool slot_digest(rk_store_worker *w, digest_cache *dc, const rk_txn *txn, int slot,
                        uint8_t out[RK_HASH_LEN])
{
    for (int i = 0; i < dc->n; i++) {
        if (dc->slot[i] == slot) {
            memcpy(out, dc->h[i], RK_HASH_LEN);
            return dc->ok[i];
        }
    }
    bool ok = rk_keyhash_value(w->s->kh, &txn->v[slot], out) == 0;
    if (dc->n < DIGEST_CACHE) {
        dc->slot[dc->n] = slot;
        dc->ok[dc->n] = ok;
        memcpy(dc->h[dc->n++], out, RK_HASH_LEN);
    }
    return ok;
}

/* The entity key of group g for this request. False when a field is missing. */
static bool group_key(rk_store_worker *w, digest_cache *dc, const rk_txn *txn, const cgroup *g,
                      uint8_t out[RK_HASH_LEN])
{
    if (g->nby == 1)
        return slot_digest(w, dc, txn, g->slot[0], out);
    const rk_value *vs[RK_COUNTER_BY_MAX];
    for (int i = 0; i < g->nby; i++)
        vs[i] = &txn->v[g->slot[i]];
    return rk_keyhash_values(w->s->kh, vs, g->nby, out) == 0;
}

/* What the request contributes to counter cd: *delta for count/sum, *vh for
 * distinct. False when the aggregate field is absent (nothing to count). */
static bool contribution(rk_store_worker *w, digest_cache *dc, const cdef *cd, const rk_txn *txn,
                         int64_t *delta, uint64_t *vh)
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
    if (!slot_digest(w, dc, txn, cd->def.field_slot, h))
        return false;
    *vh = rk_hash_prefix64(h);
    return true;
}

typedef struct apply_arg {
    const rk_counters *c; /* the set */
    const rk_txn *txn;    /* the request */
    int64_t ts;           /* its event time */
    const bool *when;     /* filters, or NULL */
    rk_value *out;        /* one value per counter */
} apply_arg;

/* Remembers the key of a feedback-fed counter this request would feed, for
 * the decided-transaction record. */
static void remember_fbkey(rk_store_worker *w, const cdef *cd, const uint8_t key[RK_HASH_LEN],
                           int64_t delta, uint64_t vh)
{
    if (w->nfb >= RK_FBKEY_MAX)
        return;
    rk_fbkey *k = &w->fb[w->nfb++];
    memset(k, 0, sizeof *k);
    k->tag = cd->id;
    memcpy(k->key, key, RK_HASH_LEN);
    if (cd->def.agg == RK_AGG_DISTINCT) {
        k->vhash = vh;
        k->flags = RK_FBKEY_HAS_VHASH;
    } else if (cd->def.agg == RK_AGG_SUM) {
        k->num = delta;
    }
}

static int apply_op(rk_store_worker *w, void *arg)
{
    apply_arg *a = arg;
    const rk_counters *c = a->c;
    digest_cache dc;
    dc.n = 0;
    /* every group's key first, then its records' memory in stages, so the
     * cache misses of the records overlap (rk_wcache_prefetch): measured
     * 10.3-11.9 -> 9.2-9.6 us per request in bench_rules */
    uint8_t keys[RK_COUNTERS_MAX][RK_CREC_KEY_LEN];
    bool have[RK_COUNTERS_MAX];
    for (int gi = 0; gi < c->ngroups; gi++) {
        uint8_t ekey[RK_HASH_LEN];
        have[gi] = group_key(w, &dc, a->txn, &c->groups[gi], ekey);
        if (!have[gi])
            continue;
        record_key(keys[gi], ekey, &c->groups[gi]);
        rk_wcache_prefetch(w->s->wc, RK_WC_COUNTERS, keys[gi], RK_CREC_KEY_LEN, 0);
    }
    for (int stage = 1; stage <= 2; stage++)
        for (int gi = 0; gi < c->ngroups; gi++)
            if (have[gi])
                rk_wcache_prefetch(w->s->wc, RK_WC_COUNTERS, keys[gi], RK_CREC_KEY_LEN, stage);
    for (int gi = 0; gi < c->ngroups; gi++) {
        const cgroup *g = &c->groups[gi];
        const uint8_t *key = keys[gi];
        if (!have[gi]) { /* a key field is missing: its counters too */
            for (int m = 0; m < g->n; m++)
                a->out[g->member[m]] = rk_value_missing();
            continue;
        }
        cop ops[RK_COUNTERS_MAX];
        int64_t values[RK_COUNTERS_MAX];
        for (int m = 0; m < g->n; m++) {
            int i = g->member[m];
            const cdef *cd = &c->d[i];
            int64_t delta = 0;
            uint64_t vh = 0;
            bool has = (a->when ? a->when[i] : true) &&
                       contribution(w, &dc, cd, a->txn, &delta, &vh);
            if (has && cd->def.feedback != RK_LABEL_NONE)
                remember_fbkey(w, cd, key, delta, vh);
            bool add = has && cd->def.feedback == RK_LABEL_NONE;
            ops[m] = (cop){add ? MODE_ADD : MODE_READ, delta, vh};
        }
        int rc = group_update(w, c, g, key, a->ts, ops, values);
        if (rc != 0)
            return rc;
        for (int m = 0; m < g->n; m++)
            a->out[g->member[m]] = rk_value_int(values[m]);
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

/* Applies one operation to counter cd of entity key (its group's other
 * counters are only carried over). */
static int update_one(rk_store_worker *w, const rk_counters *c, const cdef *cd,
                      const uint8_t key[RK_HASH_LEN], int64_t ts, cop op)
{
    const cgroup *g = &c->groups[cd->group];
    cop ops[RK_COUNTERS_MAX];
    int64_t values[RK_COUNTERS_MAX];
    for (int m = 0; m < g->n; m++)
        ops[m] = (cop){MODE_READ, 0, 0};
    ops[cd->member] = op;
    uint8_t rkey[RK_CREC_KEY_LEN];
    record_key(rkey, key, g);
    return group_update(w, c, g, rkey, ts, ops, values);
}

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
                int64_t delta = cd->def.agg == RK_AGG_SUM ? key->num : 1;
                int rc = 0;
                if (cd->def.feedback == fb->label) {
                    if (cd->def.agg == RK_AGG_DISTINCT && !(key->flags & RK_FBKEY_HAS_VHASH))
                        continue;
                    rc = update_one(w, a->c, cd, key->key, fb->ts,
                                    (cop){MODE_ADD, delta, key->vhash});
                    applied++;
                } else if (cd->def.feedback == fb->prev_label && cd->def.agg != RK_AGG_DISTINCT) {
                    /* the label changed: take the old label's contribution back */
                    int64_t back = delta == INT64_MIN ? INT64_MAX : -delta;
                    rc = update_one(w, a->c, cd, key->key, fb->ts, (cop){MODE_TAKEBACK, back, 0});
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

int rk_counters_record_sweep(const void *v, size_t len, int64_t now_ms, void *out,
                             size_t *out_len, uint64_t *dropped)
{
    sref st[RK_GREC_ENTRIES_MAX];
    int n = parse_group(v, len, st);
    if (n < 0) { /* undecodable: nothing can read it */
        *dropped = 1;
        return RK_SWEEP_DELETE;
    }
    uint8_t *o = out;
    size_t used = sizeof(rk_grec_hdr);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (state_idle(st[i].p, st[i].len, now_ms))
            continue;
        memcpy(o + used, st[i].p - sizeof(rk_grec_entry), st[i].span);
        used += st[i].span;
        kept++;
    }
    *dropped = (uint64_t)(n - kept);
    if (kept == n)
        return RK_SWEEP_KEEP;
    if (kept == 0)
        return RK_SWEEP_DELETE;
    rk_grec_hdr h = {.version = RK_GREC_VERSION, .n = (uint8_t)kept};
    memcpy(o, &h, sizeof h);
    *out_len = used;
    return RK_SWEEP_REWRITE;
}
