/* The sweeper: deletes what no request will read again.
 *
 *   counters  counter states whose newest bucket has left their window (each
 *             state says its own bucket width and ring size, so states of
 *             counters no longer defined, or defined differently, go too): a
 *             group record loses its idle states and is deleted with its last;
 *   lists     entries past their expiry;
 *   recent    decided transactions older than recent_ttl_ms.
 *
 * A pass walks each database in key order in small write transactions: each
 * examines at most SCAN_MAX records and changes (rewrites or deletes) at most
 * sweep_batch, then commits and lets requests run before the next one resumes
 * after the last key examined. Requests wait at most one batch (a few hundred
 * microseconds to a few milliseconds). One pass runs at a time, on the store's
 * own worker. It starts with a full checkpoint, so the records it judges are
 * their newest images; a record changed in the cache since then is kept. */
#include <string.h>

#include "lib/err.h"
#include "state/store_int.h"

#define SCAN_MAX 2048  /* records examined per write transaction */
#define SWEEP_KEY_MAX 128

enum { DB_COUNTERS, DB_LISTS, DB_RECENT, DB_N };

typedef struct batch_out {
    uint8_t next[SWEEP_KEY_MAX]; /* where the next batch starts */
    size_t nlen;                 /* its length */
    bool done;                   /* the database has been walked to its end */
    uint64_t changed;            /* records rewritten or deleted in this batch */
    uint64_t deleted;            /* entries dropped: list entries, decided records, counter states */
} batch_out;

typedef struct batch_arg {
    int db;                         /* DB_* */
    int64_t now_ms;                 /* sweep time */
    uint8_t start[SWEEP_KEY_MAX];   /* first key to examine */
    size_t slen;                    /* its length; 0 = from the beginning */
    batch_out *out;                 /* results */
} batch_arg;

/* What to do with one record: an RK_SWEEP_* action, and in *dropped how many
 * entries that drops (for a REWRITE, the new record is in w->grec, *nlen). */
static int judge(rk_store_worker *w, int db, const MDB_val *v, int64_t now, size_t *nlen,
                 uint64_t *dropped)
{
    bool dead;
    switch (db) {
    case DB_COUNTERS:
        return rk_counters_record_sweep(v->mv_data, v->mv_size, now, w->grec, nlen, dropped);
    case DB_LISTS:
        dead = rk_dlist_entry_expired(v->mv_data, v->mv_size, now);
        break;
    default:
        dead = rk_recent_record_expired(v->mv_data, v->mv_size, now, w->s->cfg.recent_ttl_ms);
        break;
    }
    *dropped = dead;
    return dead ? RK_SWEEP_DELETE : RK_SWEEP_KEEP;
}

static int batch_op(rk_store_worker *w, void *arg)
{
    batch_arg *a = arg;
    rk_store *s = w->s;
    MDB_dbi dbi = a->db == DB_COUNTERS ? s->db_counters
                  : a->db == DB_LISTS  ? s->db_lists
                                       : s->db_recent;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, dbi, &cur);
    if (rc != 0)
        return rk_store_mdb_fail(s, rc, "sweeper cursor");
    batch_out *o = a->out;
    o->changed = 0;
    o->deleted = 0;
    o->done = false;
    o->nlen = 0;
    MDB_val k = {a->slen, a->start}, v;
    rc = mdb_cursor_get(cur, &k, &v, a->slen ? MDB_SET_RANGE : MDB_FIRST);
    for (int seen = 0; rc == 0; seen++) {
        if (seen == SCAN_MAX || o->changed == (uint64_t)s->cfg.sweep_batch) {
            /* stop here; the next batch starts at this key */
            o->nlen = k.mv_size <= SWEEP_KEY_MAX ? k.mv_size : 0;
            memcpy(o->next, k.mv_data, o->nlen);
            break;
        }
        size_t nlen = 0;
        uint64_t dropped = 0;
        int act = judge(w, a->db, &v, a->now_ms, &nlen, &dropped);
        /* a cached record changed since the checkpoint is newer than this one */
        int wdb = a->db == DB_COUNTERS ? RK_WC_COUNTERS : RK_WC_RECENT;
        if (act != RK_SWEEP_KEEP && a->db != DB_LISTS &&
            !rk_wcache_forget_clean(s->wc, wdb, k.mv_data, k.mv_size))
            act = RK_SWEEP_KEEP;
        if (act == RK_SWEEP_DELETE) {
            rc = mdb_cursor_del(cur, 0);
        } else if (act == RK_SWEEP_REWRITE) {
            /* the key must not point into the page the put rearranges */
            uint8_t kcopy[SWEEP_KEY_MAX];
            MDB_val kc = {k.mv_size, kcopy}, nv = {nlen, w->grec};
            if (k.mv_size > sizeof kcopy) {
                rc = MDB_BAD_VALSIZE; /* counter keys are 24 bytes: cannot happen */
            } else {
                memcpy(kcopy, k.mv_data, k.mv_size);
                rc = mdb_cursor_put(cur, &kc, &nv, MDB_CURRENT);
            }
        }
        if (rc != 0)
            break;
        if (act != RK_SWEEP_KEEP) {
            o->changed++;
            o->deleted += dropped;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        o->done = true;
        return 0;
    }
    return rc ? rk_store_mdb_fail(s, rc, "sweeping") : 0;
}

int rk_store_sweep(rk_store *s, int64_t now_ms, rk_sweep_result *out)
{
    rk_sweep_result res = {0};
    uint64_t *per_db[DB_N] = {&res.counters, &res.lists, &res.recent};
    atomic_uint_fast64_t *stat[DB_N] = {&s->n_swept_counters, &s->n_swept_lists,
                                        &s->n_swept_recent};
    int rc = rk_store_flush(s); /* a batching worker's open batch (same thread) first */
    if (rc == 0) /* judge records by their newest images */
        rc = rk_store_checkpoint(s);
    pthread_mutex_lock(&s->sweep_run);
    for (int db = 0; db < DB_N && rc == 0; db++) {
        batch_arg a = {.db = db, .now_ms = now_ms};
        batch_out o;
        do {
            a.out = &o;
            if ((rc = rk_store_begin(s->sweep_w, now_ms)) != 0)
                break;
            rc = rk_store_op(s->sweep_w, batch_op, &a, sizeof a);
            if (rc != 0) {
                rk_store_abort(s->sweep_w);
                break;
            }
            if ((rc = rk_store_commit(s->sweep_w)) != 0)
                break;
            res.batches++;
            rk_store_yield(s);
            *per_db[db] += o.deleted;
            atomic_fetch_add(stat[db], o.deleted);
            if (o.done || atomic_load_explicit(&s->stopping, memory_order_relaxed))
                break; /* finished, or the store is closing: resume next pass */
            if (o.nlen == 0) /* a key too long to resume from: cannot happen */
                break;
            memcpy(a.start, o.next, o.nlen);
            a.slen = o.nlen;
        } while (!o.done);
    }
    if (rc == 0)
        atomic_fetch_add(&s->n_sweeps, 1);
    pthread_mutex_unlock(&s->sweep_run);
    if (out)
        *out = res;
    return rc;
}
