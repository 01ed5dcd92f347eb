/* The sweeper: deletes what no request will read again.
 *
 *   counters  records whose newest bucket has left their window (the record
 *             says its own bucket width and ring size, so records of counters
 *             no longer defined, or defined differently, are swept too);
 *   lists     entries past their expiry;
 *   recent    decided transactions older than recent_ttl_ms.
 *
 * A pass walks each database in key order in small write transactions: each
 * examines at most SCAN_MAX records and deletes at most sweep_batch, then
 * commits and lets requests run before the next one resumes after the last key
 * examined. Requests wait at most one batch (a few hundred microseconds to a
 * few milliseconds). One pass runs at a time, on the store's own worker. */
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
    uint64_t deleted;            /* deletions in this batch */
} batch_out;

typedef struct batch_arg {
    int db;                         /* DB_* */
    int64_t now_ms;                 /* sweep time */
    uint8_t start[SWEEP_KEY_MAX];   /* first key to examine */
    size_t slen;                    /* its length; 0 = from the beginning */
    batch_out *out;                 /* results */
} batch_arg;

static bool is_dead(rk_store *s, int db, const MDB_val *v, int64_t now)
{
    switch (db) {
    case DB_COUNTERS:
        return rk_counters_record_idle(v->mv_data, v->mv_size, now);
    case DB_LISTS:
        return rk_dlist_entry_expired(v->mv_data, v->mv_size, now);
    default:
        return rk_recent_record_expired(v->mv_data, v->mv_size, now, s->cfg.recent_ttl_ms);
    }
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
    o->deleted = 0;
    o->done = false;
    o->nlen = 0;
    MDB_val k = {a->slen, a->start}, v;
    rc = mdb_cursor_get(cur, &k, &v, a->slen ? MDB_SET_RANGE : MDB_FIRST);
    for (int seen = 0; rc == 0; seen++) {
        if (seen == SCAN_MAX || o->deleted == (uint64_t)s->cfg.sweep_batch) {
            /* stop here; the next batch starts at this key */
            o->nlen = k.mv_size <= SWEEP_KEY_MAX ? k.mv_size : 0;
            memcpy(o->next, k.mv_data, o->nlen);
            break;
        }
        if (is_dead(s, a->db, &v, a->now_ms)) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            o->deleted++;
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
    int rc = 0;
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
            *per_db[db] += o.deleted;
            atomic_fetch_add(stat[db], o.deleted);
            if (o.done || __atomic_load_n(&s->stopping, __ATOMIC_RELAXED))
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
