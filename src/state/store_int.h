/* Internals of the state store shared by its .c files (and white-box tests):
 * the store and worker layouts, and the operation log that lets a transaction
 * be re-run after the map is grown. Not for use outside src/state and tests. */
#ifndef RK_STATE_STORE_INT_H
#define RK_STATE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "state/keyhash.h"
#include "state/recent.h"
#include "state/store.h"

/* Returned by operations (never to callers) when LMDB reported MDB_MAP_FULL:
 * the store grows the map and re-runs the transaction. */
#define RK_ST_MAPFULL 1

#define RK_OPS_MAX 64          /* logged operations per transaction */
#define RK_OPARG_MAX 4096      /* bytes of logged operation arguments */
#define RK_REC_MAX (8 * 1024)  /* largest counter record */
#define RK_FORMAT_VERSION 1u   /* meta "format": bump on incompatible layout changes */

/* An operation inside a write transaction: reads its arguments from arg (a
 * copy kept in the worker's log), may be run again with the same arg after a
 * map growth, and must then produce the same effects and outputs. Returns 0,
 * RK_ST_MAPFULL or a negative RK_E* code. */
typedef int (*rk_op_fn)(rk_store_worker *w, void *arg);

struct rk_store {
    MDB_env *env;                 /* the environment; owned */
    MDB_dbi db_counters;          /* counter records */
    MDB_dbi db_lists;             /* dynamic list entries */
    MDB_dbi db_recent;            /* decided transactions */
    MDB_dbi db_meta;              /* format version, secret check */
    rk_store_config cfg;          /* copy of the config (dir points at dir below) */
    char dir[4096];               /* data directory path */
    rk_keyhash *kh;               /* installation secret; owned */
    size_t psize;                 /* LMDB page size */
    size_t map_size;              /* current map size; changed under maplock exclusive */

    pthread_mutex_t gate;         /* one write txn in this process at a time, held across growth + re-run */
    pthread_rwlock_t maplock;     /* every txn holds it shared; mdb_env_set_mapsize exclusive */

    pthread_mutex_t sync_mu;      /* guards the durability fields below */
    pthread_cond_t sync_wake;     /* wakes the sync thread */
    pthread_cond_t sync_done;     /* broadcast when synced_seq advances */
    uint64_t commit_seq;          /* commits so far (sequence of the newest) */
    uint64_t synced_seq;          /* every commit up to this one is on disk */
    int sync_err;                 /* last mdb_env_sync failure (0 = none); strict commits report it */
    bool stopping;                /* close requested: threads exit */
    bool syncer_on;               /* the sync thread was started */
    pthread_t syncer;             /* the sync thread */

    pthread_mutex_t sweep_run;    /* one sweeper pass at a time (thread or rk_store_sweep) */
    pthread_mutex_t sweep_mu;     /* guards sweep_wake waits */
    pthread_cond_t sweep_wake;    /* wakes the sweeper early (close) */
    bool sweeper_on;              /* the sweeper thread was started */
    pthread_t sweeper;            /* the sweeper thread */
    rk_store_worker *sweep_w;           /* the sweeper's own worker */

    atomic_uint_fast64_t n_commits;      /* stats: see rk_store_stats */
    atomic_uint_fast64_t n_aborts;       /* stats */
    atomic_uint_fast64_t n_syncs;        /* stats */
    atomic_uint_fast64_t n_growths;      /* stats */
    atomic_uint_fast64_t n_replays;      /* stats */
    atomic_uint_fast64_t n_sweeps;       /* stats */
    atomic_uint_fast64_t n_swept_counters; /* stats */
    atomic_uint_fast64_t n_swept_lists;  /* stats */
    atomic_uint_fast64_t n_swept_recent; /* stats */
    atomic_uint_fast64_t n_errors;       /* stats */
};

typedef struct rk_oplog_entry {
    rk_op_fn fn;   /* the operation */
    uint32_t off;  /* its argument's offset in rk_store_worker.oparg */
    uint32_t len;  /* and size */
} rk_oplog_entry;

struct rk_store_worker {
    rk_store *s;                  /* the store (not owned) */
    MDB_txn *txn;                 /* the open write txn, or NULL */
    bool locked;                  /* holds gate + maplock (shared) */
    bool nowait;                  /* commit does not wait for strict durability (sweeper) */
    bool dirty;                   /* an operation wrote in this txn (it gets a new commit sequence) */
    int64_t now_ms;               /* wall clock given to rk_store_begin */
    uint64_t last_seq;            /* commit sequence of this worker's last commit */

    rk_oplog_entry ops[RK_OPS_MAX];          /* operations run in this txn, for re-running */
    int nops;                                /* entries used */
    bool log_full;                           /* an op could not be logged: a MAP_FULL becomes an error */
    _Alignas(16) unsigned char oparg[RK_OPARG_MAX]; /* their arguments */
    size_t oparg_used;                       /* bytes used in oparg */

    rk_fbkey fb[RK_FBKEY_MAX];    /* feedback keys gathered for the next record */
    int nfb;                      /* entries used */
    rk_fbkey fbread[RK_FBKEY_MAX];/* keys returned by rk_recent_feedback */
    uint8_t *rec;                 /* scratch for building a record (RK_REC_MAX + RK_REPLY_MAX) */
    uint8_t *reply;               /* scratch for a replayed reply (RK_REPLY_MAX) */
};

/* Runs fn(w, copy of arg) inside w's transaction, logging it so a map growth
 * can re-run it (and everything before it) in a fresh transaction. Returns
 * fn's result, never RK_ST_MAPFULL. */
int rk_store_op(rk_store_worker *w, rk_op_fn fn, const void *arg, size_t argsize);

/* Maps an LMDB failure to RK_ST_MAPFULL (MDB_MAP_FULL) or RK_ESTORE, logging
 * the mdb_strerror text with what failed. */
int rk_store_mdb_fail(rk_store *s, int rc, const char *what);

/* Opens a read-only snapshot outside any write txn (holds maplock shared
 * until rk_store_read_end). RK_ESTORE. */
int rk_store_read_begin(rk_store *s, MDB_txn **txn);
void rk_store_read_end(rk_store *s, MDB_txn *txn);

/* Counter-record sweeping predicate (counters.c): whether the record in v has
 * no bucket left in the window ending at wall time now_ms. Undecodable
 * records count as idle. */
bool rk_counters_record_idle(const void *v, size_t len, int64_t now_ms);

/* Sweeper predicates for the other databases (recent.c, dlist.c). */
bool rk_recent_record_expired(const void *v, size_t len, int64_t now_ms, int64_t ttl_ms);
bool rk_dlist_entry_expired(const void *v, size_t len, int64_t now_ms);

#endif
