/* The LMDB environment: opening, write transactions, durability, map growth,
 * statistics and backups.
 *
 * Locking. Three locks, always taken in this order:
 *   gate     (mutex)  held by the worker that has the write transaction open,
 *                     from rk_store_begin to commit/abort. LMDB would serialise
 *                     writers anyway; holding our own lock as well means that
 *                     when the map must grow, no other writer can slip in
 *                     between aborting the transaction and re-running it, so
 *                     the re-run sees exactly the state the first attempt saw.
 *   maplock  (rwlock, writer-preferring) held shared by every transaction,
 *                     read or write, and by the sync thread while it fsyncs;
 *                     held exclusively only by mdb_env_set_mapsize, which LMDB
 *                     allows only when no transaction is active in the process.
 *   sync_mu  (mutex)  guards the commit and sync sequence numbers.
 * Nobody takes maplock shared twice (a waiting grower would deadlock it).
 *
 * Durability. The environment is always opened MDB_NOSYNC: a commit writes
 * its pages and meta page into the OS page cache and returns. Every commit
 * takes the next commit sequence number; the sync thread fsyncs
 * (mdb_env_sync(force)) and then declares every sequence number taken before
 * that fsync started durable. In periodic mode it does so every
 * sync_interval_ms; in strict mode as soon as a commit is waiting, and each
 * committer waits until its number is durable, so commits that arrive while
 * one fsync runs share the next (group commit). Because a committed
 * transaction is in the page cache before its commit returns, a killed
 * process (kill -9) loses nothing in either mode; docs/operations.md states
 * what a power loss can do.
 *
 * Map growth. A transaction that hits MDB_MAP_FULL is aborted, the map is
 * doubled (up to map_max) and the transaction's logged operations are run
 * again in a fresh one (see rk_store_op); the caller only sees its outputs
 * written twice with the same values. Before each transaction the map is also
 * grown pre-emptively when less than grow_headroom_pct of it is free, so the
 * re-run path is rare. */
#include "state/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "state/store_int.h"

#define GROW_ATTEMPTS 16        /* doublings tried for one transaction before giving up */
#define SYNC_RETRY_MS 10        /* pause after a failed fsync before trying again */

static const char META_FORMAT[] = "format";
static const char META_SECRET_CHECK[] = "secret_check";
static const char SECRET_CHECK_INPUT[] = "riskd secret check v1";

void rk_store_config_default(rk_store_config *c)
{
    memset(c, 0, sizeof *c);
    c->durability = RK_DUR_PERIODIC;
    c->sync_interval_ms = 1000;
    c->map_size = (size_t)64 << 20;
    c->map_max = 0;
    c->grow_headroom_pct = 10;
    c->dedupe_ttl_ms = 24LL * 3600 * 1000;
    c->recent_ttl_ms = c->dedupe_ttl_ms;
    c->sweep_interval_ms = 60 * 1000;
    c->sweep_batch = 256;
    c->max_readers = 126;
}

const char *rk_durability_name(int d)
{
    return d == RK_DUR_STRICT ? "strict" : d == RK_DUR_PERIODIC ? "periodic" : "?";
}

int rk_durability_from_name(const char *name)
{
    if (strcmp(name, "periodic") == 0)
        return RK_DUR_PERIODIC;
    if (strcmp(name, "strict") == 0)
        return RK_DUR_STRICT;
    return -1;
}

int rk_store_mdb_fail(rk_store *s, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return RK_ST_MAPFULL;
    atomic_fetch_add(&s->n_errors, 1);
    rk_log_error("state: %s: %s", what, mdb_strerror(rc));
    return RK_ESTORE;
}

/* ---- map size ------------------------------------------------------------ */

/* Re-reads the map size LMDB is using (after open, growth or adoption). */
static void refresh_map_size(rk_store *s)
{
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0)
        s->map_size = info.me_mapsize;
}

/* With maplock held exclusively: doubles the map (grow) or adopts a size
 * another process set (adopt = MDB_MAP_RESIZED). */
static int resize_locked(rk_store *s, bool adopt, size_t seen)
{
    if (adopt) {
        int rc = mdb_env_set_mapsize(s->env, 0);
        if (rc != 0)
            return rk_store_mdb_fail(s, rc, "adopting the map size");
        refresh_map_size(s);
        return 0;
    }
    if (s->map_size != seen) /* someone grew it while we waited for the lock */
        return 0;
    size_t max = s->cfg.map_max;
    if (s->map_size >= max) {
        atomic_fetch_add(&s->n_errors, 1);
        rk_log_error("state: the map is full at map_max (%zu bytes); raise map_max", max);
        return RK_ESTORE;
    }
    size_t want = s->map_size > max / 2 ? max : s->map_size * 2;
    int rc = mdb_env_set_mapsize(s->env, want);
    if (rc != 0)
        return rk_store_mdb_fail(s, rc, "growing the map");
    refresh_map_size(s);
    atomic_fetch_add(&s->n_growths, 1);
    rk_log_info("state: map grown to %zu bytes", s->map_size);
    return 0;
}

/* Called with maplock held shared and no transaction of ours open: trades the
 * shared hold for an exclusive one, resizes, and takes it shared again. */
static int resize(rk_store *s, bool adopt)
{
    size_t seen = s->map_size;
    pthread_rwlock_unlock(&s->maplock);
    pthread_rwlock_wrlock(&s->maplock);
    int rc = resize_locked(s, adopt, seen);
    pthread_rwlock_unlock(&s->maplock);
    pthread_rwlock_rdlock(&s->maplock);
    return rc;
}

/* Grows before a transaction when free space is below the headroom. */
static int maybe_grow(rk_store *s)
{
    if (s->cfg.grow_headroom_pct <= 0)
        return 0;
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    size_t used = ((size_t)info.me_last_pgno + 1) * s->psize;
    size_t head = s->map_size / 100 * (size_t)s->cfg.grow_headroom_pct;
    if (used + head <= s->map_size || s->map_size >= s->cfg.map_max)
        return 0;
    return resize(s, false);
}

/* Begins a write txn (gate and maplock already held), adopting a map size
 * changed by another process. */
static int begin_txn(rk_store_worker *w)
{
    rk_store *s = w->s;
    for (int i = 0; i < 3; i++) {
        int rc = mdb_txn_begin(s->env, NULL, 0, &w->txn);
        if (rc == 0)
            return 0;
        w->txn = NULL;
        if (rc != MDB_MAP_RESIZED)
            return rk_store_mdb_fail(s, rc, "beginning a write transaction");
        if ((rc = resize(s, true)) != 0)
            return rc;
    }
    return RK_ESTORE;
}

int rk_store_read_begin(rk_store *s, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&s->maplock);
    for (int i = 0; i < 3; i++) {
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (rc == 0)
            return 0;
        if (rc != MDB_MAP_RESIZED || resize(s, true) != 0) {
            pthread_rwlock_unlock(&s->maplock);
            return rk_store_mdb_fail(s, rc, "beginning a read transaction");
        }
    }
    pthread_rwlock_unlock(&s->maplock);
    return RK_ESTORE;
}

void rk_store_read_end(rk_store *s, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->maplock);
}

/* ---- the sync thread ----------------------------------------------------- */

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* fsyncs and advances synced_seq to what was committed before the fsync. */
static void sync_round(rk_store *s)
{
    uint64_t target = s->commit_seq;
    pthread_mutex_unlock(&s->sync_mu);
    pthread_rwlock_rdlock(&s->maplock);
    int rc = mdb_env_sync(s->env, 1);
    pthread_rwlock_unlock(&s->maplock);
    pthread_mutex_lock(&s->sync_mu);
    if (rc == 0) {
        if (target > s->synced_seq)
            s->synced_seq = target;
        s->sync_err = 0;
        atomic_fetch_add(&s->n_syncs, 1);
    } else {
        s->sync_err = rc;
        atomic_fetch_add(&s->n_errors, 1);
        rk_log_error("state: fsync of the store failed: %s", mdb_strerror(rc));
    }
    pthread_cond_broadcast(&s->sync_done);
}

static void *sync_main(void *arg)
{
    rk_store *s = arg;
    bool strict = s->cfg.durability == RK_DUR_STRICT;
    pthread_mutex_lock(&s->sync_mu);
    while (!s->stopping) {
        struct timespec dl;
        if (strict && s->sync_err == 0) {
            while (!s->stopping && s->commit_seq == s->synced_seq)
                pthread_cond_wait(&s->sync_wake, &s->sync_mu);
        } else {
            deadline_after(&dl, strict ? SYNC_RETRY_MS : s->cfg.sync_interval_ms);
            while (!s->stopping &&
                   pthread_cond_timedwait(&s->sync_wake, &s->sync_mu, &dl) != ETIMEDOUT)
                ;
        }
        if (s->stopping)
            break;
        if (s->commit_seq != s->synced_seq)
            sync_round(s);
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

int rk_store_sync(rk_store *s)
{
    pthread_mutex_lock(&s->sync_mu);
    sync_round(s);
    int rc = s->sync_err ? RK_ESTORE : 0;
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

/* ---- the sweeper thread (the pass itself is in sweep.c) ------------------ */

static void *sweep_main(void *arg)
{
    rk_store *s = arg;
    pthread_mutex_lock(&s->sweep_mu);
    while (!s->stopping) {
        struct timespec dl;
        deadline_after(&dl, s->cfg.sweep_interval_ms);
        while (!s->stopping &&
               pthread_cond_timedwait(&s->sweep_wake, &s->sweep_mu, &dl) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->sweep_mu);
        (void)rk_store_sweep(s, rk_clock_wall_ms(), NULL);
        pthread_mutex_lock(&s->sweep_mu);
    }
    pthread_mutex_unlock(&s->sweep_mu);
    return NULL;
}

/* ---- open / close -------------------------------------------------------- */

static int check_config(rk_store_config *c)
{
    if (!c->dir || !*c->dir || strlen(c->dir) >= 4000) {
        rk_log_error("state: no data directory configured");
        return RK_EINVAL;
    }
    if (c->durability != RK_DUR_PERIODIC && c->durability != RK_DUR_STRICT) {
        rk_log_error("state: unknown durability mode %d", c->durability);
        return RK_EINVAL;
    }
    if (c->sync_interval_ms <= 0 || c->dedupe_ttl_ms <= 0 || c->sweep_interval_ms < 0 ||
        c->sweep_batch <= 0 || c->max_readers <= 0 || c->grow_headroom_pct < 0 ||
        c->grow_headroom_pct > 50) {
        rk_log_error("state: invalid store configuration (intervals, TTLs, batch, readers)");
        return RK_EINVAL;
    }
    size_t page = 4096;
    if (c->map_size < 16 * page)
        c->map_size = 16 * page;
    c->map_size = (c->map_size + page - 1) / page * page;
    if (c->map_max == 0)
        c->map_max = (size_t)1 << 40;
    if (c->map_max < c->map_size)
        c->map_max = c->map_size;
    if (c->recent_ttl_ms < c->dedupe_ttl_ms)
        c->recent_ttl_ms = c->dedupe_ttl_ms;
    return 0;
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0)
        return 0;
    struct stat st;
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    rk_log_error("state: cannot create data directory %s: %s", dir, strerror(errno));
    return RK_EIO;
}

/* Checks (or, on a new store, writes) the format version and the digest that
 * proves the secret file belongs to this store. */
static int check_meta(rk_store *s, MDB_txn *txn)
{
    MDB_val k = {sizeof META_FORMAT - 1, (void *)META_FORMAT}, v;
    uint32_t fmt = RK_FORMAT_VERSION;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        v = (MDB_val){sizeof fmt, &fmt};
        if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
            return rk_store_mdb_fail(s, rc, "writing the format version");
    } else if (rc != 0) {
        return rk_store_mdb_fail(s, rc, "reading the format version");
    } else {
        uint32_t have = 0;
        if (v.mv_size == sizeof have)
            memcpy(&have, v.mv_data, sizeof have);
        if (have != RK_FORMAT_VERSION) {
            rk_log_error("state: %s holds store format %u; this riskd reads format %u",
                         s->dir, have, RK_FORMAT_VERSION);
            return RK_ECORRUPT;
        }
    }
    uint8_t check[RK_HASH_LEN];
    rk_keyhash_bytes(s->kh, SECRET_CHECK_INPUT, sizeof SECRET_CHECK_INPUT - 1, check);
    k = (MDB_val){sizeof META_SECRET_CHECK - 1, (void *)META_SECRET_CHECK};
    rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        v = (MDB_val){sizeof check, check};
        if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
            return rk_store_mdb_fail(s, rc, "writing the secret check");
    } else if (rc != 0) {
        return rk_store_mdb_fail(s, rc, "reading the secret check");
    } else if (v.mv_size != sizeof check || memcmp(v.mv_data, check, sizeof check) != 0) {
        rk_log_error("state: %s/%s does not belong to the store in %s (restored without its "
                     "secret?); refusing to start", s->dir, RK_SECRET_FILE, s->dir);
        return RK_ECORRUPT;
    }
    return 0;
}

static int open_dbs(rk_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    }
    if (rc != 0)
        return rk_store_mdb_fail(s, rc, "opening the store");
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"counters", &s->db_counters},
               {"lists", &s->db_lists},
               {"recent", &s->db_recent},
               {"meta", &s->db_meta}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)) != 0) {
            mdb_txn_abort(txn);
            return rk_store_mdb_fail(s, rc, "opening a database");
        }
    }
    if ((rc = check_meta(s, txn)) != 0) {
        mdb_txn_abort(txn);
        return rc < 0 ? rc : RK_ESTORE;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return rk_store_mdb_fail(s, rc, "creating the databases");
    return mdb_env_sync(s->env, 1) == 0 ? 0 : RK_ESTORE;
}

static int init_sync(rk_store *s)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* writer-preferring: a waiting map growth is not starved by a steady
     * stream of transactions taking the lock shared */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_mutex_init(&s->gate, NULL) | pthread_rwlock_init(&s->maplock, &ra) |
             pthread_mutex_init(&s->sync_mu, NULL) | pthread_cond_init(&s->sync_wake, &ca) |
             pthread_cond_init(&s->sync_done, &ca) | pthread_mutex_init(&s->sweep_run, NULL) |
             pthread_mutex_init(&s->sweep_mu, NULL) | pthread_cond_init(&s->sweep_wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_rwlockattr_destroy(&ra);
    return rc ? RK_ENOMEM : 0;
}

int rk_store_open(const rk_store_config *c, rk_store **out)
{
    rk_store *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ENOMEM;
    s->cfg = *c;
    int rc = init_sync(s);
    if (rc != 0) {
        free(s);
        return rc;
    }
    rc = check_config(&s->cfg);
    if (rc == 0) {
        snprintf(s->dir, sizeof s->dir, "%s", c->dir);
        s->cfg.dir = s->dir;
        rc = make_dir(s->dir);
    }
    if (rc == 0)
        rc = rk_keyhash_open(s->dir, &s->kh);
    if (rc == 0) {
        int mrc = mdb_env_create(&s->env);
        if (mrc == 0)
            mrc = mdb_env_set_maxdbs(s->env, 8);
        if (mrc == 0)
            mrc = mdb_env_set_maxreaders(s->env, (unsigned)s->cfg.max_readers);
        if (mrc == 0)
            mrc = mdb_env_set_mapsize(s->env, s->cfg.map_size);
        if (mrc == 0)
            mrc = mdb_env_open(s->env, s->dir,
                               MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD |
                                   (s->cfg.writemap ? MDB_WRITEMAP : 0),
                               0600);
        if (mrc != 0)
            rc = rk_store_mdb_fail(s, mrc, "opening the LMDB environment");
    }
    if (rc == 0) {
        MDB_stat st;
        mdb_env_stat(s->env, &st);
        s->psize = st.ms_psize;
        refresh_map_size(s);
        rc = open_dbs(s);
    }
    if (rc == 0)
        rc = rk_store_worker_new(s, &s->sweep_w);
    if (rc == 0) {
        s->sweep_w->nowait = true;
        if (pthread_create(&s->syncer, NULL, sync_main, s) != 0)
            rc = RK_ENOMEM;
        else
            s->syncer_on = true;
    }
    if (rc == 0 && s->cfg.sweep_interval_ms > 0) {
        if (pthread_create(&s->sweeper, NULL, sweep_main, s) != 0)
            rc = RK_ENOMEM;
        else
            s->sweeper_on = true;
    }
    if (rc != 0) {
        rk_store_close(s);
        return rc;
    }
    rk_log_info("state: store open in %s (%s durability, map %zu bytes%s)", s->dir,
                rk_durability_name(s->cfg.durability), s->map_size,
                s->cfg.writemap ? ", writemap" : "");
    *out = s;
    return 0;
}

void rk_store_close(rk_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->sync_mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->sync_wake);
    pthread_mutex_unlock(&s->sync_mu);
    pthread_mutex_lock(&s->sweep_mu);
    pthread_cond_broadcast(&s->sweep_wake);
    pthread_mutex_unlock(&s->sweep_mu);
    if (s->syncer_on)
        pthread_join(s->syncer, NULL);
    if (s->sweeper_on)
        pthread_join(s->sweeper, NULL);
    rk_store_worker_free(s->sweep_w);
    if (s->env) {
        if (mdb_env_sync(s->env, 1) != 0)
            rk_log_error("state: final fsync failed");
        mdb_env_close(s->env);
    }
    rk_keyhash_free(s->kh);
    pthread_mutex_destroy(&s->gate);
    pthread_rwlock_destroy(&s->maplock);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_wake);
    pthread_cond_destroy(&s->sync_done);
    pthread_mutex_destroy(&s->sweep_run);
    pthread_mutex_destroy(&s->sweep_mu);
    pthread_cond_destroy(&s->sweep_wake);
    free(s);
}

/* ---- workers and write transactions -------------------------------------- */

int rk_store_worker_new(rk_store *s, rk_store_worker **out)
{
    rk_store_worker *w = calloc(1, sizeof *w);
    if (!w)
        return RK_ENOMEM;
    w->s = s;
    w->rec = malloc(RK_REC_MAX + RK_REPLY_MAX);
    w->reply = malloc(RK_REPLY_MAX);
    if (!w->rec || !w->reply) {
        rk_store_worker_free(w);
        return RK_ENOMEM;
    }
    *out = w;
    return 0;
}

void rk_store_worker_free(rk_store_worker *w)
{
    if (!w)
        return;
    if (w->locked)
        rk_store_abort(w);
    free(w->rec);
    free(w->reply);
    free(w);
}

int64_t rk_store_worker_now(const rk_store_worker *w)
{
    return w->now_ms;
}

static void unlock_worker(rk_store_worker *w)
{
    if (w->locked) {
        pthread_rwlock_unlock(&w->s->maplock);
        pthread_mutex_unlock(&w->s->gate);
        w->locked = false;
    }
}

int rk_store_begin(rk_store_worker *w, int64_t now_ms)
{
    if (w->locked)
        return RK_EINVAL;
    rk_store *s = w->s;
    pthread_mutex_lock(&s->gate);
    pthread_rwlock_rdlock(&s->maplock);
    w->locked = true;
    w->now_ms = now_ms;
    w->nops = 0;
    w->oparg_used = 0;
    w->log_full = false;
    w->nfb = 0;
    w->dirty = false;
    int rc = maybe_grow(s);
    if (rc == 0)
        rc = begin_txn(w);
    if (rc != 0) {
        unlock_worker(w);
        return rc < 0 ? rc : RK_ESTORE;
    }
    return 0;
}

void rk_store_abort(rk_store_worker *w)
{
    if (!w->locked)
        return;
    if (w->txn) {
        mdb_txn_abort(w->txn);
        w->txn = NULL;
    }
    atomic_fetch_add(&w->s->n_aborts, 1);
    unlock_worker(w);
}

static bool hard_failure(int rc)
{
    return rc == RK_ESTORE || rc == RK_ENOMEM || rc == RK_ECORRUPT;
}

/* After MDB_MAP_FULL (w->txn aborted or already gone): grows the map and runs
 * the logged operations again in a new transaction. Returns 0 with *last set
 * to the last operation's result (soft results such as RK_ENOTFOUND recur
 * exactly as the first time), or a hard error with the transaction gone. */
static int regrow_and_rerun(rk_store_worker *w, int *last)
{
    rk_store *s = w->s;
    if (w->log_full) {
        rk_log_error("state: map full in a transaction too large to re-run");
        return RK_ESTORE;
    }
    for (int attempt = 0; attempt < GROW_ATTEMPTS; attempt++) {
        if (w->txn) {
            mdb_txn_abort(w->txn);
            w->txn = NULL;
        }
        int rc = resize(s, false);
        if (rc == 0)
            rc = begin_txn(w);
        if (rc != 0)
            return rc < 0 ? rc : RK_ESTORE;
        atomic_fetch_add(&s->n_replays, 1);
        w->nfb = 0;
        rc = 0;
        for (int i = 0; i < w->nops; i++) {
            rc = w->ops[i].fn(w, w->oparg + w->ops[i].off);
            if (rc == RK_ST_MAPFULL || hard_failure(rc))
                break;
        }
        if (hard_failure(rc))
            return rc;
        if (rc != RK_ST_MAPFULL) {
            *last = rc;
            return 0;
        }
    }
    rk_log_error("state: map still full after %d growths", GROW_ATTEMPTS);
    return RK_ESTORE;
}

int rk_store_op(rk_store_worker *w, rk_op_fn fn, const void *arg, size_t argsize)
{
    if (!w->txn)
        return RK_EINVAL;
    void *a = (void *)arg;
    size_t off = (w->oparg_used + 15) & ~(size_t)15;
    if (w->nops < RK_OPS_MAX && off + argsize <= sizeof w->oparg) {
        a = w->oparg + off;
        memcpy(a, arg, argsize);
        w->ops[w->nops++] = (rk_oplog_entry){fn, (uint32_t)off, (uint32_t)argsize};
        w->oparg_used = off + argsize;
    } else {
        w->log_full = true;
    }
    w->dirty = true;
    int rc = fn(w, a);
    if (rc == RK_ST_MAPFULL) {
        int hard = regrow_and_rerun(w, &rc);
        if (hard != 0)
            rc = hard;
    }
    return rc;
}

/* Strict mode: waits until an fsync covers seq. */
static int wait_durable(rk_store *s, uint64_t seq)
{
    int rc = 0;
    pthread_mutex_lock(&s->sync_mu);
    pthread_cond_signal(&s->sync_wake);
    while (s->synced_seq < seq && !s->stopping) {
        pthread_cond_wait(&s->sync_done, &s->sync_mu);
        if (s->synced_seq < seq && s->sync_err != 0) {
            rc = RK_ESTORE; /* the fsync failed: we cannot say this is durable */
            break;
        }
    }
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

int rk_store_commit(rk_store_worker *w)
{
    if (!w->locked)
        return RK_EINVAL;
    rk_store *s = w->s;
    int rc = 0;
    for (;;) {
        if (!w->txn) {
            rc = RK_ESTORE;
            break;
        }
        int mrc = mdb_txn_commit(w->txn);
        w->txn = NULL; /* freed by LMDB on success and failure alike */
        if (mrc == 0)
            break;
        rc = rk_store_mdb_fail(s, mrc, "committing");
        if (rc != RK_ST_MAPFULL)
            break;
        int last;
        if ((rc = regrow_and_rerun(w, &last)) != 0)
            break;
    }
    if (rc != 0) {
        atomic_fetch_add(&s->n_aborts, 1);
        unlock_worker(w);
        return rc < 0 ? rc : RK_ESTORE;
    }
    pthread_mutex_lock(&s->sync_mu);
    uint64_t seq = w->dirty ? ++s->commit_seq : s->commit_seq;
    pthread_mutex_unlock(&s->sync_mu);
    w->last_seq = seq;
    atomic_fetch_add(&s->n_commits, 1);
    unlock_worker(w);
    if (s->cfg.durability == RK_DUR_STRICT && !w->nowait)
        return wait_durable(s, seq);
    return 0;
}

/* ---- stats and backup ---------------------------------------------------- */

int rk_store_stats_get(rk_store *s, rk_store_stats *out)
{
    MDB_txn *txn;
    int rc = rk_store_read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rk_store_stats st;
    memset(&st, 0, sizeof st);
    MDB_stat ms;
    MDB_dbi dbs[4] = {s->db_counters, s->db_lists, s->db_recent, s->db_meta};
    uint64_t *dst[4] = {&st.entries_counters, &st.entries_lists, &st.entries_recent,
                        &st.entries_meta};
    for (int i = 0; i < 4; i++) {
        if (mdb_stat(txn, dbs[i], &ms) == 0)
            *dst[i] = ms.ms_entries;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    st.map_bytes = info.me_mapsize;
    st.page_size = s->psize;
    st.used_bytes = ((uint64_t)info.me_last_pgno + 1) * s->psize;
    rk_store_read_end(s, txn);

    char path[4200];
    struct stat fst;
    snprintf(path, sizeof path, "%s/data.mdb", s->dir);
    if (stat(path, &fst) == 0)
        st.file_bytes = (uint64_t)fst.st_size;
    st.durability = s->cfg.durability;
    st.commits = atomic_load(&s->n_commits);
    st.aborts = atomic_load(&s->n_aborts);
    st.syncs = atomic_load(&s->n_syncs);
    st.map_growths = atomic_load(&s->n_growths);
    st.txn_replays = atomic_load(&s->n_replays);
    st.sweeps = atomic_load(&s->n_sweeps);
    st.swept_counters = atomic_load(&s->n_swept_counters);
    st.swept_lists = atomic_load(&s->n_swept_lists);
    st.swept_recent = atomic_load(&s->n_swept_recent);
    st.store_errors = atomic_load(&s->n_errors);
    pthread_mutex_lock(&s->sync_mu);
    st.durable_commits = s->synced_seq;
    pthread_mutex_unlock(&s->sync_mu);
    *out = st;
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rk_store_backup(rk_store *s, const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rk_log_error("state: backup: cannot create %s: %s", dir, strerror(errno));
        return RK_EIO;
    }
    char data[4200];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (access(data, F_OK) == 0) {
        rk_log_error("state: backup: %s already holds a store", dir);
        return RK_EEXISTS;
    }
    int rc = rk_keyhash_write(s->kh, dir);
    if (rc != 0) {
        if (rc == RK_EEXISTS)
            rk_log_error("state: backup: %s already holds a secret", dir);
        return rc;
    }
    int64_t t0 = rk_clock_ns();
    pthread_rwlock_rdlock(&s->maplock);
    int mrc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->maplock);
    if (mrc != 0)
        return rk_store_mdb_fail(s, mrc, "backup copy");
    /* mdb_env_copy2 creates the file 0644 less the umask and does not fsync */
    if (chmod(data, 0600) != 0 || fsync_path(data, O_RDONLY) != 0 ||
        fsync_path(dir, O_RDONLY | O_DIRECTORY) != 0) {
        rk_log_error("state: backup: cannot secure %s: %s", data, strerror(errno));
        return RK_EIO;
    }
    rk_log_info("state: backup written to %s in %" PRId64 " ms", dir,
                (rk_clock_ns() - t0) / 1000000);
    return 0;
}
