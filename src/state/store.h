/* The state store: one LMDB environment in a data directory holding velocity
 * counters, dynamic lists, recently decided transactions and metadata.
 *
 * Threads. One rk_store per process, shared by every thread. Each thread that
 * reads or writes state owns one rk_store_worker (its scratch space, allocated up
 * front). A request runs as one write transaction on its worker:
 *
 *     rk_store_begin(w, now_ms)
 *     rk_recent_check(w, id)          -> 0: a retry; answer the stored reply, commit
 *     rk_counters_apply(w, set, ...)  -> counter values for the rules
 *     rk_dlist_has(w, ...)            -> dynamic list membership
 *     ... the caller's rules ...
 *     rk_recent_record(w, id, ...)    -> decision kept for retries and feedback
 *     rk_store_commit(w)              -> durable per the configured mode
 *
 * Write transactions are serialised (LMDB has one writer), so concurrent
 * requests on one account never lose an update. If the map fills up, the store
 * aborts, grows the map and re-runs the transaction's operations so far, with
 * the same results, without the caller noticing: every pointer handed to a
 * state call inside a transaction must therefore stay valid until commit or
 * abort returns.
 *
 * After any failed call inside a transaction, call rk_store_abort.
 *
 * Write-back cache. Counter and decided-transaction records are read and
 * written through an in-memory cache of their newest images: a request's
 * changes go to the cache and, as one write-ahead log entry, into the log's
 * segment files in the data directory, appended when the request commits,
 * so the request writes no LMDB page at all. A checkpointer thread writes
 * changed records to their databases in small transactions every
 * checkpoint_ms; the sync thread deletes log segments whose changes are all
 * in the databases after an fsync of them (every 10 s); opening a store
 * replays whatever the log still holds. A private
 * (batching) store keeps its changes in the cache only (no log, no
 * checkpointer): they reach LMDB only when the cache is full (written in
 * place) or through rk_store_checkpoint.
 *
 * Private stores (backtests) may batch: with rk_store_config.batch = N > 1,
 * rk_store_commit really commits only every N-th request and otherwise leaves
 * the transaction open for the next rk_store_begin on the same worker, which
 * sees everything the batch did. rk_store_abort still undoes only its own
 * request. A batching store is for one worker on one thread: other workers
 * wait until the batch is committed, which happens at the N-th commit, at
 * rk_store_flush, rk_store_sweep, rk_store_worker_free or rk_store_close,
 * all of which must be called from that thread. */
#ifndef RK_STATE_STORE_H
#define RK_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rk_store rk_store;
typedef struct rk_store_worker rk_store_worker;

typedef enum rk_durability {
    RK_DUR_PERIODIC, /* commit without fsync; a thread fsyncs every sync_interval_ms */
    RK_DUR_STRICT,   /* group commit: rk_store_commit returns once an fsync covers it */
} rk_durability;

typedef struct rk_store_config {
    const char *dir;            /* data directory; created (0700) when missing */
    int durability;             /* an rk_durability; default RK_DUR_PERIODIC */
    int64_t sync_interval_ms;   /* periodic mode flush interval; default 1000 */
    size_t map_size;            /* initial LMDB map size in bytes; default 64 MiB */
    size_t map_max;             /* growth stops here (then RK_ESTORE); 0 = 1 TiB */
    int grow_headroom_pct;      /* grow before a txn when less than this % of the map is free; default 10, 0 = only on MDB_MAP_FULL */
    int64_t dedupe_ttl_ms;      /* a decided id is replayed within this; default 24 h */
    int64_t recent_ttl_ms;      /* decided records kept (for feedback) this long; default = dedupe_ttl_ms, never less */
    int64_t sweep_interval_ms;  /* background sweeper period; default 60000; 0 = no thread (call rk_store_sweep) */
    int sweep_batch;            /* deletions per sweeper write txn; default 256 */
    int max_readers;            /* LMDB reader slots (stats, backups); default 126 */
    bool writemap;              /* MDB_WRITEMAP in periodic durability: commits write into the map
                                   instead of pwrite(2)ing copies; kill -9 safe all the same (see
                                   docs/operations.md); default true. Strict durability never uses it */
    size_t cache_records;       /* records kept in the write-back cache (see below); 0 = none, every
                                   record written in place; default RK_CACHE_AUTO: RK_CACHE_DEFAULT
                                   in periodic durability, none in strict */
    int64_t checkpoint_ms;      /* the checkpointer writes cached changes to their databases and
                                   trims the write-ahead log this often; default 1000 */
    int batch;                  /* private stores (backtest): rk_store_commit really commits every `batch`
                                   requests (and rk_store_flush / close); 0 or 1 = every request (default).
                                   Periodic durability only; no sync thread, no final fsync */
} rk_store_config;

#define RK_CACHE_AUTO ((size_t)-1)        /* cache_records: chosen by durability */
#define RK_CACHE_DEFAULT ((size_t)256 << 10) /* periodic durability's cache, records */

/* Fills c with the defaults above (dir = NULL). */
void rk_store_config_default(rk_store_config *c);

/* Durability names as written in riskd.yaml: "periodic", "strict".
 * rk_durability_from_name returns -1 when unknown. */
const char *rk_durability_name(int d);
int rk_durability_from_name(const char *name);

/* Opens (creating if needed) the store in c->dir and starts its sync thread
 * and, if configured, its sweeper. Returns 0 and sets *out, or RK_EINVAL (bad
 * config; secret file with loose permissions or wrong size), RK_ECORRUPT (the
 * secret does not match the store, or an unknown format version), RK_EIO,
 * RK_ESTORE (LMDB error, logged), RK_ENOMEM. */
int rk_store_open(const rk_store_config *c, rk_store **out);

/* Commits an open batch, stops the threads, checkpoints and flushes to disk
 * and closes. A private (batching) store is temporary: its cached changes
 * are dropped, not written (call rk_store_checkpoint first to keep them).
 * No worker may be inside a request. s may be NULL. */
void rk_store_close(rk_store *s);

/* Commits the open batch of a batching store (batch > 1), if any; call it
 * from the thread that runs the batching worker, between requests. 0 (also
 * when nothing is open), RK_EINVAL (called inside a request), RK_ESTORE. */
int rk_store_flush(rk_store *s);

/* Writes cached changes to their databases, as the checkpointer thread does
 * every checkpoint_ms: every change made before the call (later ones wait
 * for the next pass, so a pass ends under constant load); then fsyncs and
 * trims the write-ahead log. Not from inside a request. 0 or RK_ESTORE. */
int rk_store_checkpoint(rk_store *s);

/* fsyncs everything committed so far. RK_ESTORE on failure. */
int rk_store_sync(rk_store *s);

/* A per-thread handle with pre-allocated scratch. RK_ENOMEM. */
int rk_store_worker_new(rk_store *s, rk_store_worker **out);
/* w may be NULL; must not be inside a transaction. */
void rk_store_worker_free(rk_store_worker *w);

/* Starts a write transaction. now_ms is the wall clock used for TTLs (retry
 * window, list expiry); pass rk_clock_wall_ms() outside tests. RK_EINVAL if a
 * transaction is already open on w, RK_ESTORE. */
int rk_store_begin(rk_store_worker *w, int64_t now_ms);

/* Commits. In strict mode, returns only after an fsync covering this commit
 * (and every earlier one) has completed, so a reply sent afterwards describes
 * durable state; call it (not abort) after a replay too, so the replayed
 * decision is durable before it is answered. In a batching store, the
 * request joins the open batch instead, except every batch-th one (or one
 * whose batch grew too large to rebuild), which commits them all.
 * RK_ESTORE (the transaction is gone either way). */
int rk_store_commit(rk_store_worker *w);

/* Abandons the request; nothing it did is kept (earlier requests of an open
 * batch are). Safe without one. */
void rk_store_abort(rk_store_worker *w);

/* The wall-clock time given to rk_store_begin. */
int64_t rk_store_worker_now(const rk_store_worker *w);

typedef struct rk_store_stats {
    int durability;             /* an rk_durability */
    uint64_t page_size;         /* LMDB page size */
    uint64_t file_bytes;        /* size of data.mdb on disk */
    uint64_t map_bytes;         /* current map size */
    uint64_t used_bytes;        /* pages in use (high-water mark) times page size */
    uint64_t entries_counters;  /* records in each database (counters and recent include
                                   records still only in the cache) */
    uint64_t entries_lists;
    uint64_t entries_recent;
    uint64_t entries_meta;
    uint64_t commits;           /* write transactions committed */
    uint64_t aborts;            /* write transactions abandoned */
    uint64_t syncs;             /* fsyncs completed */
    uint64_t durable_commits;   /* commits known to be on disk (strict: every answered one) */
    uint64_t map_growths;       /* times the map was enlarged */
    uint64_t txn_replays;       /* transactions re-run after MDB_MAP_FULL */
    uint64_t sweeps;            /* sweeper passes completed */
    uint64_t swept_counters;    /* idle counter records deleted */
    uint64_t swept_lists;       /* expired list entries deleted */
    uint64_t swept_recent;      /* decided records past their retention deleted */
    uint64_t store_errors;      /* LMDB errors (each also logged) */
    uint64_t cache_records;     /* records in the write-back cache */
    uint64_t cache_dirty;       /* of which not yet checkpointed */
    uint64_t cache_evictions;   /* clean records dropped from the cache for room */
    uint64_t wal_entries;       /* write-ahead log entries not yet all checkpointed */
    uint64_t wal_bytes;         /* bytes in the log's files (deleted 10 s at a time) */
    uint64_t checkpoints;       /* checkpoint transactions committed */
} rk_store_stats;

/* Whether a file name in a data directory is one of the write-ahead log's
 * segments (which a copy of the directory must take along). */
bool rk_store_is_log_file(const char *name);

/* Snapshot of the counters above. RK_ESTORE. */
int rk_store_stats_get(rk_store *s, rk_store_stats *out);

/* Writes a consistent, compacted copy of the store into dir (created 0700;
 * must not already hold a store or a secret): dir/data.mdb via
 * mdb_env_copy2(MDB_CP_COMPACT) and dir/secret (0600). Runs while requests
 * continue; a map growth waits for it. Restore = open the copy as the data
 * directory. RK_EEXISTS, RK_EIO, RK_ESTORE. */
int rk_store_backup(rk_store *s, const char *dir);

typedef struct rk_sweep_result {
    uint64_t counters; /* idle counter records deleted */
    uint64_t lists;    /* expired list entries deleted */
    uint64_t recent;   /* decided records past retention deleted */
    uint64_t batches;  /* write transactions used */
} rk_sweep_result;

/* One full sweeper pass at wall time now_ms: deletes counter records whose
 * newest bucket has left their window, list entries past their TTL and decided
 * records past recent_ttl_ms, at most sweep_batch deletions per write
 * transaction so requests interleave. out may be NULL. RK_ESTORE. */
int rk_store_sweep(rk_store *s, int64_t now_ms, rk_sweep_result *out);

#endif
