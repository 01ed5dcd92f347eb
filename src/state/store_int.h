/* Internals of the state store shared by its .c files (and white-box tests):
 * the store and worker layouts, the operation log that lets a transaction be
 * re-run after the map is grown, and the redo log that lets a batch of
 * requests be rebuilt. Not for use outside src/state and tests. */
#ifndef RK_STATE_STORE_INT_H
#define RK_STATE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lib/thread.h"
#include "state/keyhash.h"
#include "state/recent.h"
#include "state/store.h"
#include "state/wcache.h"

/* Returned by operations (never to callers) when LMDB reported MDB_MAP_FULL:
 * the store grows the map and re-runs the transaction. */
#define RK_ST_MAPFULL 1

#define RK_OPS_MAX 64          /* logged operations per transaction */
#define RK_OPARG_MAX 4096      /* bytes of logged operation arguments */
#define RK_ASSIST_CHUNK 16     /* records an assisting request writes (holding gate throughout) */
#define RK_REC_MAX (8 * 1024)  /* largest decided-transaction record, less its reply */
#define RK_FORMAT_VERSION 2u   /* meta "format": bump on incompatible layout changes
                                  (2: grouped counter records, SipHash-128 keys) */
#define RK_REDO_CAP ((size_t)4 << 20)     /* redo log of a batching worker, bytes */
#define RK_BATCH_BYTES ((size_t)1 << 20)  /* a batch ends once its redo log passes this */

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
    MDB_dbi db_wal;               /* the log as stores before the log files kept it: replayed at open */
    rk_wcache *wc;                /* newest images of hot counter and decided records */
    bool wal_on;                  /* cached changes are logged and checkpointed (not a private store) */
    struct rk_wlog *wlog;         /* the log's files (wlog.h); NULL without wal_on */
    uint64_t wal_next;            /* sequence the next log entry gets (under gate) */
    atomic_uint_fast64_t wal_keep;/* log entries below this are in the databases (checkpoints) */
    rk_store_config cfg;          /* copy of the config (dir points at dir below) */
    char dir[4096];               /* data directory path */
    rk_keyhash *kh;               /* installation secret; owned */
    size_t psize;                 /* LMDB page size */
    size_t map_size;              /* current map size; changed under maplock exclusive */

    pthread_mutex_t gate;         /* one request (or the cache's other users) at a time */
    atomic_int gate_waiters;      /* request workers waiting for gate (background work yields to them) */
    pthread_rwlock_t maplock;     /* every txn holds it shared; mdb_env_set_mapsize exclusive */

    pthread_mutex_t sync_mu;      /* guards the durability fields below */
    pthread_cond_t sync_wake;     /* wakes the sync thread */
    pthread_cond_t sync_done;     /* broadcast when synced_seq advances */
    uint64_t commit_seq;          /* commits so far (sequence of the newest) */
    uint64_t synced_seq;          /* every commit up to this one is on disk */
    uint64_t env_seq;             /* the last commit that wrote LMDB pages other than checkpoints */
    atomic_int_fast64_t trim_ns;  /* when the log was last trimmed (monotonic; sync thread and rk_store_trim_log) */
    pthread_mutex_t flush_mu;     /* one flush (log and database fsyncs, trim) at a time */
    int sync_err;                 /* last mdb_env_sync failure (0 = none); strict commits report it */
    atomic_bool stopping;         /* close requested: threads exit (read without locks too) */
    bool syncer_on;               /* the sync thread was started */
    pthread_t syncer;             /* the sync thread */
    rk_thread_prio sync_prio;     /* periodic: it runs under SCHED_IDLE, boosted when overdue */
    atomic_int_fast64_t sync_seen_ns; /* periodic: when it last looked for work (monotonic) */

    pthread_mutex_t sweep_run;    /* one sweeper pass at a time (thread or rk_store_sweep) */
    pthread_mutex_t sweep_mu;     /* guards sweep_wake waits */
    pthread_cond_t sweep_wake;    /* wakes the sweeper early (close) */
    bool sweeper_on;              /* the sweeper thread was started */
    pthread_t sweeper;            /* the sweeper thread */
    rk_store_worker *sweep_w;           /* the sweeper's own worker */
    rk_store_worker *batch_w;     /* the worker holding an open batch (batch > 1), or NULL */
    size_t batch_growth;          /* bytes the last batch added to the used pages: the
                                     headroom the next one is given before it starts */

    pthread_mutex_t ckpt_run;     /* one checkpoint pass at a time (thread, sweep or close) */
    pthread_mutex_t lmdb_mu;      /* one writer of dirty images at a time: a checkpoint chunk
                                     (outside gate), a sweeper batch, an assisting request */
    uint8_t *ckpt_buf;            /* a checkpoint chunk's copies of keys and images */
    size_t ckpt_cap;              /* bytes allocated */
    rk_thread_prio ckpt_prio;     /* the checkpointer: SCHED_IDLE, normal while it holds gate */
    pthread_mutex_t ckpt_mu;      /* guards ckpt_wake waits */
    pthread_cond_t ckpt_wake;     /* wakes the checkpointer early (dirty records piling up, close) */
    bool ckpt_kick;               /* wake now: dirty records passed half the cache (under ckpt_mu) */
    bool ckpt_on;                 /* the checkpointer thread was started */
    pthread_t ckpt;               /* the checkpointer thread */

    pthread_mutex_t pf_mu;        /* guards the prefaulter's wake-up */
    pthread_cond_t pf_wake;       /* wakes it: the cache wants memory made resident, or close */
    bool pf_kick;                 /* there is memory to make resident (under pf_mu) */
    bool pf_on;                   /* the prefaulting thread was started */
    pthread_t pf_thread;          /* runs rk_wcache_prefault off the request path */

    atomic_uint_fast64_t n_checkpoints;  /* stats: checkpoint transactions */
    atomic_uint_fast64_t st_cached;      /* stats mirrored from the cache at each commit */
    atomic_uint_fast64_t st_dirty;
    atomic_uint_fast64_t st_pending[RK_WC_DBS];
    atomic_uint_fast64_t st_evictions;
    atomic_uint_fast64_t st_wal_next;    /* wal_next, for stats */
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

enum {
    RK_CUR_COUNTERS, /* the worker's cursor on the counters database */
    RK_CUR_RECENT,   /* and on the decided transactions */
    RK_CUR_N,
};

struct rk_store_worker {
    rk_store *s;                  /* the store (not owned) */
    MDB_txn *txn;                 /* the request's txn (rtxn or a write txn), or NULL */
    MDB_cursor *cur[RK_CUR_N];    /* cursors in txn, opened on first use */
    bool writing;                 /* txn is a write txn (LMDB frees its cursors with it) */
    bool read_first;              /* a live request worker: see "Read transactions" in store.c */
    MDB_txn *rtxn;                /* read_first: its read txn, reset between requests */
    bool rtxn_live;               /* rtxn is renewed (holds a snapshot) */
    MDB_cursor *rcur[RK_CUR_N];   /* cursors on rtxn, kept and renewed with it */
    bool lmdb_held;               /* holds s->lmdb_mu (a sweeper batch, an assist) */
    bool locked;                  /* holds gate + maplock (shared): from begin to the real commit */
    bool in_req;                  /* between rk_store_begin and its commit/abort */
    bool nowait;                  /* commit does not wait for strict durability (sweeper) */
    bool dirty;                   /* an operation wrote in this txn (it gets a new commit sequence) */
    bool lmdb_wrote;              /* ... and wrote LMDB itself, not only cached records */
    int64_t now_ms;               /* wall clock given to rk_store_begin */
    uint64_t last_seq;            /* commit sequence of this worker's last commit */

    rk_oplog_entry ops[RK_OPS_MAX];          /* operations of the current request, for re-running */
    int nops;                                /* entries used */
    bool log_full;                           /* an op could not be logged: a MAP_FULL becomes an error */
    _Alignas(16) unsigned char oparg[RK_OPARG_MAX]; /* their arguments */
    size_t oparg_used;                       /* bytes used in oparg */

    int batch_max;                /* requests per real commit (1: every commit is real) */
    int batch_n;                  /* requests completed in the open batch */
    size_t batch_used0;           /* used bytes of the map when the batch began */
    uint8_t *redo;                /* batch_max > 1: every put/del of the open batch, in order */
    size_t redo_done;             /* bytes of it written by the batch's completed requests */
    size_t redo_used;             /* and by the current request too */
    bool redo_overflow;           /* the current request's writes did not all fit */

    rk_fbkey fb[RK_FBKEY_MAX];    /* feedback keys gathered for the next record */
    int nfb;                      /* entries used */
    rk_fbkey fbread[RK_FBKEY_MAX];/* keys returned by rk_recent_feedback */
    uint8_t *rec;                 /* scratch for building a decided record (RK_REC_MAX + RK_REPLY_MAX) */
    uint8_t *grec;                /* scratch for building a counter record (RK_GREC_MAX) */
    uint8_t *reply;               /* scratch for a replayed reply (RK_REPLY_MAX) */

    uint8_t *wal;                 /* this request's log entry: the cached records it wrote */
    size_t wal_used, wal_cap;     /* bytes used and allocated (grows, never shrinks) */
    rk_wc_image ckpt_img[RK_ASSIST_CHUNK]; /* dirty images an assist wrote (marked at commit) */
    int ckpt_n;                   /* entries used */
};

/* Cached databases (indexes into the cache). */
enum {
    RK_WC_COUNTERS = RK_CUR_COUNTERS,
    RK_WC_RECENT = RK_CUR_RECENT,
};

/* ---- the write-ahead log and checkpoints (wal.c) ---- */

/* Adds one cached record's new image to w's log entry. RK_ENOMEM. */
int rk_wal_add(rk_store_worker *w, int db, const MDB_val *k, const MDB_val *v);

/* Appends w's log entry (if any) to the log at sequence s->wal_next, after
 * its transaction committed. 0 or an RK_E* code. */
int rk_wal_write(rk_store_worker *w);

/* At open, before any worker: writes what the log holds into the databases
 * (changes committed but not yet checkpointed when the process stopped) and
 * empties it. RK_ESTORE. */
int rk_wal_recover(rk_store *s);

/* The checkpointer thread's body (arg: the store). */
void *rk_wal_ckpt_main(void *arg);

/* A request's share of checkpointing, for when the checkpointer falls behind:
 * it runs under SCHED_IDLE, and a saturated machine starves it. Writes one
 * chunk of the oldest dirty records inside w's open request transaction, so
 * they are clean once it commits. The caller holds lmdb_mu. RK_ESTORE. */
int rk_wal_assist(rk_store_worker *w);

/* After a transaction that wrote the n dirty images img (a checkpoint chunk
 * or an assist) committed, with gate held: marks them written (see
 * rk_wcache_mark_written; seq is the log sequence when they were taken) and
 * publishes the oldest change still dirty as wal_keep. */
void rk_store_images_written(rk_store *s, const rk_wc_image *img, int n, uint64_t seq);

/* Runs fn(txn, arg) in a write transaction of its own, taken without gate
 * (holding lmdb_mu, the caller keeps other writers of cached records out),
 * and commits it; after MDB_MAP_FULL the map grows and fn runs again in a
 * fresh one. fn returns 0 or an LMDB code. 0, RK_ESTORE or RK_ENOMEM. */
int rk_store_write_unlocked(rk_store *s, int (*fn)(MDB_txn *txn, void *arg), void *arg);

/* Takes and releases gate as background work does (see store.c). */
void rk_store_gate_enter_background(rk_store *s);
void rk_store_gate_leave(rk_store *s);

/* Fsyncs the log and the databases, then deletes the log's segments that
 * checkpoints have made unnecessary. 0 or RK_ESTORE. */
int rk_store_trim_log(rk_store *s);

/* Doubles the map (disk blocks reserved first) while nothing else uses the
 * store: at open, before any worker or thread exists. 0 or RK_ESTORE. */
int rk_store_grow_unlocked(rk_store *s);

/* Called by background work (checkpointer, sweeper) between its write
 * transactions: waits, briefly and boundedly, while requests wait for the
 * write lock, so that they are not starved (a mutex released and retaken
 * at once by the same thread is usually retaken before a sleeper wakes). */
void rk_store_yield(rk_store *s);

/* Runs fn(w, copy of arg) inside w's transaction, logging it so a map growth
 * can re-run it (and everything before it) in a fresh transaction. Returns
 * fn's result, never RK_ST_MAPFULL. */
int rk_store_op(rk_store_worker *w, rk_op_fn fn, const void *arg, size_t argsize);

/* Maps an LMDB failure to RK_ST_MAPFULL (MDB_MAP_FULL) or RK_ESTORE, logging
 * the mdb_strerror text with what failed. */
int rk_store_mdb_fail(rk_store *s, int rc, const char *what);

/* mdb_put (flags 0) and mdb_del in w's transaction, for operations: besides
 * writing, they keep the batch's redo log. 0, RK_ST_MAPFULL or RK_ESTORE
 * (logged with what); rk_store_del returns RK_ENOTFOUND when there was no
 * such key. */
int rk_store_put(rk_store_worker *w, MDB_dbi dbi, MDB_val *k, MDB_val *v, const char *what);

/* A get and a put through the worker's cursor `which` (RK_CUR_*): a put of
 * the key the last get looked up finds its leaf page without descending the
 * B-tree again, which is most of what a get costs in a large store (each
 * level is a cache and TLB miss). rk_store_get returns 0 (v points into the
 * map until the next write), RK_ENOTFOUND or RK_ESTORE; rk_store_put_at as
 * rk_store_put. */
int rk_store_get(rk_store_worker *w, int which, MDB_val *k, MDB_val *v, const char *what);
int rk_store_put_at(rk_store_worker *w, int which, MDB_val *k, MDB_val *v, const char *what);
int rk_store_del(rk_store_worker *w, MDB_dbi dbi, MDB_val *k, const char *what);

/* Opens a read-only snapshot outside any write txn (holds maplock shared
 * until rk_store_read_end). RK_ESTORE. */
int rk_store_read_begin(rk_store *s, MDB_txn **txn);
void rk_store_read_end(rk_store *s, MDB_txn *txn);

enum {
    RK_SWEEP_KEEP,    /* nothing to drop */
    RK_SWEEP_REWRITE, /* write back the smaller record built in out */
    RK_SWEEP_DELETE,  /* drop the whole record */
};

/* Counter-record sweeping (counters.c): drops from the group record in v the
 * counter states with no bucket left in the window ending at wall time
 * now_ms (undecodable ones too). Returns an RK_SWEEP_* action; for REWRITE
 * the new record is in out (room for RK_GREC_MAX bytes), *out_len bytes.
 * *dropped gets the number of states dropped. */
int rk_counters_record_sweep(const void *v, size_t len, int64_t now_ms, void *out,
                             size_t *out_len, uint64_t *dropped);

/* Sweeper predicates for the other databases (recent.c, dlist.c). */
bool rk_recent_record_expired(const void *v, size_t len, int64_t now_ms, int64_t ttl_ms);
bool rk_dlist_entry_expired(const void *v, size_t len, int64_t now_ms);

#endif
