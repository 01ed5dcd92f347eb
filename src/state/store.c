/* The LMDB environment: opening, write transactions, durability, map growth,
 * statistics and backups.
 *
 * Locking. Four locks, always taken in this order (any may be skipped):
 *   lmdb_mu  (mutex)  held by whoever writes dirty cached records to LMDB: a
 *                     checkpoint chunk (wal.c), an assisting request (which
 *                     only tries for it, holding gate), and a sweeper batch
 *                     (so that it never waits for LMDB's writer lock while
 *                     holding gate).
 *   gate     (mutex)  held by a request from rk_store_begin to commit/abort:
 *                     requests run one at a time, and the cache (wcache.c)
 *                     has one user at a time. A request spins briefly for it
 *                     before sleeping; background work polls for it and
 *                     never sleeps on it (gate_enter, rk_store_gate_enter_background).
 *                     Held across a map growth and the re-run that follows,
 *                     so no other request slips in between.
 *   maplock  (rwlock, writer-preferring) held shared by every transaction,
 *                     read or write, and by the sync thread while it fsyncs;
 *                     held exclusively only by mdb_env_set_mapsize, which LMDB
 *                     allows only when no transaction is active in the process.
 *   LMDB's own writer lock, inside mdb_txn_begin: a request that upgrades to
 *                     a write txn may wait there for a checkpoint chunk,
 *                     which never needs gate while it holds it.
 * sync_mu (mutex) guards the commit and sync sequence numbers. flush_mu
 * (mutex) serialises the fsyncs and log trims of sync_round; it is taken with
 * neither gate nor sync_mu held, before maplock. Nobody takes maplock shared
 * twice (a waiting grower would deadlock it), and nobody resizes while it
 * holds a transaction (resize waits for every shared holder).
 *
 * Read transactions. A live request (a worker of a store with the cache and
 * its log) reads LMDB through a read transaction, renewed at rk_store_begin,
 * and changes only the cache: its commit writes no page, and a checkpoint
 * chunk can write LMDB at the same time without gate (wal.c). Only a request
 * that writes LMDB itself opens a write transaction next to it (writable()).
 * Background workers, batching workers and the workers of a store without a
 * cache (strict durability's default), whose every request writes LMDB, use
 * write transactions from the start.
 *
 * Durability. The environment is always opened MDB_NOSYNC: a commit writes
 * its pages and meta page into the OS page cache and returns. Every commit
 * takes the next commit sequence number; the sync thread fsyncs the
 * write-ahead log's files, and the databases too when a commit wrote them
 * other than through the log (sync_round), and then declares every sequence
 * number taken before that fsync started durable. In periodic mode it does so every
 * sync_interval_ms; in strict mode as soon as a commit is waiting, and each
 * committer waits until its number is durable, so commits that arrive while
 * one fsync runs share the next (group commit). Because a committed
 * transaction is in the page cache before its commit returns, a killed
 * process (kill -9) loses nothing in either mode; docs/operations.md states
 * what a power loss can do.
 *
 * Write-back cache. rk_store_get and rk_store_put_at (counter and decided
 * records) go through the cache (wcache.c) under gate; a request's changes
 * also become one write-ahead log entry appended just after its transaction
 * ends (wlog.c), and the checkpointer thread moves them into their databases
 * (wal.c). Every path that abandons a transaction (abort, a re-run after map
 * growth, a failed commit or log append) undoes the request's cache changes
 * with it, so the cache never holds what was not committed and logged.
 *
 * Map growth. A transaction that hits MDB_MAP_FULL is aborted, the map is
 * doubled (up to map_max) and the transaction's logged operations are run
 * again in a fresh one (see rk_store_op); the caller only sees its outputs
 * written twice with the same values. Before each transaction the map is also
 * grown pre-emptively when less than grow_headroom_pct of it is free, so the
 * re-run path is rare.
 *
 * Batches (private stores: backtests). With batch > 1, a worker's
 * rk_store_commit really commits only every batch-th request: between
 * requests the LMDB transaction stays open and the worker keeps gate and
 * maplock, so the next request sees everything the batch wrote (a retry of an
 * id decided earlier in the batch is found). Each put and delete of the batch
 * is also appended to the worker's redo log, which is what makes the batch
 * safe to build on: when the map fills, or one request of the batch is
 * aborted, the LMDB transaction is abandoned and a fresh one replays the redo
 * log of the batch's completed requests (then, after a map growth, re-runs
 * the current request's operations), so nothing that was answered is lost
 * and the aborted request leaves no trace. A batch also ends early once its
 * redo log passes RK_BATCH_BYTES (1 MiB, some 150 requests of the shipped
 * rule set): with MDB_WRITEMAP a commit costs little, and a longer batch only
 * copies pages into ever more fresh, cache-cold pages of the map (LMDB cannot
 * reuse a page freed inside the transaction that freed it), which measured
 * slower per request than batches of 64 to 256. Before a batch starts the
 * map is grown if its free space is less than twice what the previous batch
 * used. Batching workers are single-threaded by contract: the open batch
 * belongs to the thread that opened it, which must also call rk_store_flush
 * (or close). */
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
#include "lib/files.h"
#include "lib/log.h"
#include "lib/thread.h"
#include "state/crecord.h"
#include "state/store_int.h"
#include "state/wlog.h"

#define GROW_ATTEMPTS 16        /* doublings tried for one transaction before giving up */
#define SYNC_RETRY_MS 10        /* pause after a failed fsync before trying again */
#define GATE_SPIN_NS 50000     /* how long a request spins for gate before it sleeps */
#define GATE_POLL_NS 20000     /* background work's interval between tries for gate */
#define LOG_TRIM_MS 10000      /* how often the databases are fsync'ed so that the log can be trimmed */

static int worker_create(rk_store *s, int batch_max, rk_store_worker **out);
static int commit_now(rk_store_worker *w);

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
    c->writemap = true;
    c->cache_records = RK_CACHE_AUTO;
    c->checkpoint_ms = 1000;
    c->batch = 1;
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

/* With MDB_WRITEMAP, LMDB sizes data.mdb to the whole map as a sparse file
 * and writes pages through the mapping: on a full disk, the first write into
 * a hole would kill the process with SIGBUS instead of failing a transaction.
 * Reserving the file's blocks up to size before the map reaches it turns that
 * into a failed growth (RK_ESTORE: the request is answered degraded). File
 * systems that cannot reserve keep the sparse file. */
static int reserve_blocks(rk_store *s, size_t size)
{
    mdb_filehandle_t fd;
    if (!s->cfg.writemap || mdb_env_get_fd(s->env, &fd) != 0)
        return 0;
    if (fallocate(fd, 0, 0, (off_t)size) == 0 || errno == EOPNOTSUPP || errno == ENOSYS)
        return 0;
    atomic_fetch_add(&s->n_errors, 1);
    rk_log_error("state: cannot reserve %zu bytes of disk for the map in %s: %s", size, s->dir,
                 strerror(errno));
    return RK_ESTORE;
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
    int rc = reserve_blocks(s, want);
    if (rc != 0)
        return rc;
    rc = mdb_env_set_mapsize(s->env, want);
    if (rc != 0)
        return rk_store_mdb_fail(s, rc, "growing the map");
    refresh_map_size(s);
    atomic_fetch_add(&s->n_growths, 1);
    rk_log_info("state: map grown to %zu bytes", s->map_size);
    return 0;
}

int rk_store_grow_unlocked(rk_store *s)
{
    return resize_locked(s, false, s->map_size);
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
    if (head < 2 * s->batch_growth)
        head = 2 * s->batch_growth;
    if (used + head <= s->map_size || s->map_size >= s->cfg.map_max)
        return 0;
    return resize(s, false);
}

/* Begins a write txn (maplock held shared, no txn of ours open), adopting a
 * map size changed by another process. */
static int begin_write(rk_store *s, MDB_txn **txn)
{
    for (int i = 0; i < 3; i++) {
        int rc = mdb_txn_begin(s->env, NULL, 0, txn);
        if (rc == 0)
            return 0;
        *txn = NULL;
        if (rc != MDB_MAP_RESIZED)
            return rk_store_mdb_fail(s, rc, "beginning a write transaction");
        if ((rc = resize(s, true)) != 0)
            return rc;
    }
    return RK_ESTORE;
}

/* Begins w's write txn (gate and maplock already held). */
static int begin_txn(rk_store_worker *w)
{
    w->cur[RK_CUR_COUNTERS] = w->cur[RK_CUR_RECENT] = NULL; /* went with the last txn */
    int rc = begin_write(w->s, &w->txn);
    w->writing = rc == 0;
    return rc;
}

/* Renews w's read txn, or begins it the first time (gate and maplock held). */
static int begin_read(rk_store_worker *w)
{
    rk_store *s = w->s;
    w->cur[RK_CUR_COUNTERS] = w->cur[RK_CUR_RECENT] = NULL; /* to be renewed */
    for (int i = 0; i < 3; i++) {
        int rc = w->rtxn ? mdb_txn_renew(w->rtxn)
                         : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &w->rtxn);
        if (rc == 0) {
            w->rtxn_live = true;
            w->txn = w->rtxn;
            w->writing = false;
            return 0;
        }
        if (rc != MDB_MAP_RESIZED) /* (a failed renew leaves the handle reset) */
            return rk_store_mdb_fail(s, rc, "beginning a read transaction");
        if ((rc = resize(s, true)) != 0)
            return rc;
    }
    return RK_ESTORE;
}

/* Ends w's transactions: aborts a write txn, resets the read txn (its
 * handle and cursors stay for the next request). */
static void drop_txn(rk_store_worker *w)
{
    if (w->txn && w->writing)
        mdb_txn_abort(w->txn);
    w->txn = NULL;
    w->writing = false;
    if (w->rtxn_live) {
        mdb_txn_reset(w->rtxn);
        w->rtxn_live = false;
    }
}

/* A request that is about to write LMDB itself (a dynamic list, feedback's
 * list entry, a record the full cache cannot take, an assist) takes a write
 * txn next to its read txn, which stays open until the request ends so that
 * what was read through it stays valid. The two snapshots differ only by
 * checkpoints committed in between, which wrote dirty records: those are
 * cached, and the request reads them from the cache, never from LMDB. The
 * write txn may wait for a checkpoint chunk to commit (LMDB's writer lock).
 * No pre-emptive growth here (LMDB cannot resize under an open read txn):
 * MDB_MAP_FULL restarts the request in a write txn after growing. */
static int writable(rk_store_worker *w)
{
    if (w->writing)
        return 0;
    MDB_txn *t;
    int rc = mdb_txn_begin(w->s->env, NULL, 0, &t);
    if (rc == MDB_MAP_RESIZED)
        return RK_ST_MAPFULL; /* the restart adopts the new size */
    if (rc != 0)
        return rk_store_mdb_fail(w->s, rc, "beginning a write transaction");
    w->txn = t;
    w->writing = true;
    w->cur[RK_CUR_COUNTERS] = w->cur[RK_CUR_RECENT] = NULL;
    return 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* A request takes gate. When it is held (the checkpointer's chunk, mostly),
 * the request is counted in gate_waiters, which makes background work end
 * its chunk early, and spins for up to GATE_SPIN_NS before sleeping: the
 * hand-over through a futex wake cost a request 25-30 us on this VM, longer
 * than the rest of the wait (measured at 5,000 req/s: one request in ten
 * found gate held, ~45 us on average). */
static void gate_enter(rk_store *s)
{
    if (pthread_mutex_trylock(&s->gate) == 0)
        return;
    atomic_fetch_add(&s->gate_waiters, 1);
    int64_t until = rk_clock_ns() + GATE_SPIN_NS;
    bool got = false;
    while (!got && rk_clock_ns() < until) {
        for (int i = 0; i < 32; i++)
            cpu_relax();
        got = pthread_mutex_trylock(&s->gate) == 0;
    }
    if (!got)
        pthread_mutex_lock(&s->gate);
    atomic_fetch_sub(&s->gate_waiters, 1);
}

/* Background work (checkpointer, sweeper) takes gate by polling for it,
 * never by sleeping on the mutex: with a sleeper, every request's unlock is a
 * futex wake, and under back-to-back requests (the sleeper rarely wins the
 * race back) that wake cost each request ~3 us, a quarter of the in-process
 * pipeline's time (bench_rules). Requests leave gaps between their
 * transactions; a poll every GATE_POLL_NS lands in one soon enough, and a
 * store so busy that it does not is what request assists are for (wal.c). */
void rk_store_gate_enter_background(rk_store *s)
{
    while (pthread_mutex_trylock(&s->gate) != 0) {
        struct timespec ts = {0, GATE_POLL_NS};
        nanosleep(&ts, NULL);
    }
}

void rk_store_gate_leave(rk_store *s)
{
    pthread_mutex_unlock(&s->gate);
}

void rk_store_yield(rk_store *s)
{
    /* up to ~1 ms, so background work still progresses under constant load */
    for (int i = 0; i < 50 && atomic_load(&s->gate_waiters) > 0; i++) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
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

int rk_store_write_unlocked(rk_store *s, int (*fn)(MDB_txn *txn, void *arg), void *arg)
{
    int rc = 0;
    pthread_rwlock_rdlock(&s->maplock);
    for (int attempt = 0; attempt < GROW_ATTEMPTS; attempt++) {
        MDB_txn *txn;
        if ((rc = maybe_grow(s)) != 0 || (rc = begin_write(s, &txn)) != 0)
            break;
        int mrc = fn(txn, arg);
        if (mrc == 0)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (mrc == 0)
            break;
        rc = rk_store_mdb_fail(s, mrc, "writing checkpointed records");
        if (rc != RK_ST_MAPFULL)
            break;
        /* our txn is gone, so a request waiting for LMDB's writer lock while
         * it holds maplock shared can finish before resize needs it */
        if ((rc = resize(s, false)) != 0)
            break;
        atomic_fetch_add(&s->n_replays, 1);
    }
    pthread_rwlock_unlock(&s->maplock);
    return rc == RK_ST_MAPFULL ? RK_ESTORE : rc;
}

/* ---- the sync thread ----------------------------------------------------- */

/* Makes durable what was committed before it began, and advances
 * synced_seq to that: the log's new bytes, and the databases when a commit
 * wrote them other than through the log (dynamic lists, records in place,
 * every write of a store without a log). With trim, the databases are
 * fsync'ed in any case and then the log's segments below what the
 * checkpoints had published before that fsync are deleted. Called with
 * sync_mu held, which it releases while it waits for the disk. */
static void sync_round(rk_store *s, bool trim)
{
    uint64_t target = s->commit_seq;
    bool env = !s->wlog || s->env_seq > s->synced_seq || trim;
    pthread_mutex_unlock(&s->sync_mu);
    pthread_mutex_lock(&s->flush_mu);
    int rc = 0;
    if (s->wlog && rk_wlog_sync(s->wlog) != 0)
        rc = EIO;
    if (rc == 0 && env) {
        uint64_t keep = atomic_load(&s->wal_keep);
        pthread_rwlock_rdlock(&s->maplock);
        rc = mdb_env_sync(s->env, 1);
        pthread_rwlock_unlock(&s->maplock);
        if (rc == 0 && trim && s->wlog) {
            rk_wlog_trim(s->wlog, keep);
            atomic_store(&s->trim_ns, rk_clock_ns());
        }
    }
    if (s->wlog)
        rk_wlog_prepare(s->wlog);
    pthread_mutex_unlock(&s->flush_mu);
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

/* Whether the sync thread's next round should trim the log. */
static bool trim_due(const rk_store *s)
{
    return s->wlog && rk_clock_ns() - atomic_load(&s->trim_ns) >= (int64_t)LOG_TRIM_MS * 1000000;
}

static void *sync_main(void *arg)
{
    rk_store *s = arg;
    bool strict = s->cfg.durability == RK_DUR_STRICT;
    /* Periodic flushes are background work (lib/thread.h); a strict
     * commit waits for this thread, which must then run at once. */
    if (strict)
        rk_thread_name("rk-sync");
    else
        rk_thread_prio_idle(&s->sync_prio, "rk-sync", false);
    pthread_mutex_lock(&s->sync_mu);
    while (!s->stopping) {
        struct timespec dl;
        if (strict && s->sync_err == 0) {
            while (!s->stopping && s->commit_seq == s->synced_seq)
                pthread_cond_wait(&s->sync_wake, &s->sync_mu);
        } else {
            rk_clock_deadline(&dl, strict ? SYNC_RETRY_MS : s->cfg.sync_interval_ms);
            while (!s->stopping &&
                   pthread_cond_timedwait(&s->sync_wake, &s->sync_mu, &dl) != ETIMEDOUT)
                ;
        }
        if (s->stopping)
            break;
        bool trim = trim_due(s);
        if (s->commit_seq != s->synced_seq || trim)
            sync_round(s, trim);
        if (!strict) {
            atomic_store(&s->sync_seen_ns, rk_clock_ns());
            rk_thread_prio_settle(&s->sync_prio);
        }
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

/* From a committing request: a periodic flush thread that has not come round
 * for two intervals is starved (a saturated machine runs no SCHED_IDLE
 * thread) and goes back to the normal policy until its next flush. */
static void nudge_syncer(rk_store *s)
{
    if (!s->syncer_on || s->cfg.durability == RK_DUR_STRICT)
        return;
    int64_t late = rk_clock_ns() - atomic_load_explicit(&s->sync_seen_ns, memory_order_relaxed);
    if (late > 2 * (int64_t)s->cfg.sync_interval_ms * 1000000)
        rk_thread_prio_boost(&s->sync_prio);
}

static int sync_now(rk_store *s, bool trim)
{
    pthread_mutex_lock(&s->sync_mu);
    sync_round(s, trim);
    int rc = s->sync_err ? RK_ESTORE : 0;
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

int rk_store_sync(rk_store *s)
{
    return sync_now(s, false);
}

int rk_store_trim_log(rk_store *s)
{
    return s->wlog ? sync_now(s, true) : 0;
}

/* ---- the sweeper thread (the pass itself is in sweep.c) ------------------ */

static void *sweep_main(void *arg)
{
    rk_store *s = arg;
    pthread_mutex_lock(&s->sweep_mu);
    while (!s->stopping) {
        struct timespec dl;
        rk_clock_deadline(&dl, s->cfg.sweep_interval_ms);
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

/* Keeps spare value slabs resident before a request needs one (wcache.h,
 * "Memory made resident ahead of use"): at open, and again each time a
 * request took one. The work is page clearing in the kernel and takes no
 * lock. */
static void *prefault_main(void *arg)
{
    rk_store *s = arg;
    rk_thread_idle("rk-prefault");
    pthread_mutex_lock(&s->pf_mu);
    while (!s->stopping) {
        if (!s->pf_kick) {
            pthread_cond_wait(&s->pf_wake, &s->pf_mu);
            continue;
        }
        s->pf_kick = false;
        bool more = true;
        while (more && !s->stopping) {
            pthread_mutex_unlock(&s->pf_mu);
            more = rk_wcache_prefault(s->wc);
            pthread_mutex_lock(&s->pf_mu);
        }
    }
    pthread_mutex_unlock(&s->pf_mu);
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
        c->checkpoint_ms <= 0 ||
        c->sweep_batch <= 0 || c->max_readers <= 0 || c->grow_headroom_pct < 0 ||
        c->grow_headroom_pct > 50) {
        rk_log_error("state: invalid store configuration (intervals, TTLs, batch, readers)");
        return RK_EINVAL;
    }
    if (c->batch < 0 || (c->batch > 1 && c->durability == RK_DUR_STRICT)) {
        rk_log_error("state: batch must be 0 or more, and 0 or 1 with strict durability "
                     "(a batched request is not committed when it is answered)");
        return RK_EINVAL;
    }
    size_t page = 4096;
    if (c->map_size < 16 * page)
        c->map_size = 16 * page;
    c->map_size = (c->map_size + page - 1) / page * page;
    /* strict mode fsyncs every group of commits: through msync (writemap)
     * that measured half the groups per second of fdatasync, while the
     * pwrite a commit saves is small beside the fsync it waits for */
    if (c->durability == RK_DUR_STRICT)
        c->writemap = false;
    /* strict mode writes records in place by default: with the cache, every
     * change reaches the disk twice (log, then checkpoint) and the group
     * fsyncs grew long enough to take 64 clients' p99 from 12 ms to 60 ms */
    if (c->cache_records == RK_CACHE_AUTO)
        c->cache_records = c->durability == RK_DUR_STRICT ? 0 : RK_CACHE_DEFAULT;
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
               {"meta", &s->db_meta},
               {"wal", &s->db_wal}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        unsigned flags = MDB_CREATE | (dbs[i].dbi == &s->db_wal ? MDB_INTEGERKEY : 0);
        if ((rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi)) != 0) {
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
             pthread_mutex_init(&s->flush_mu, NULL) |
             pthread_mutex_init(&s->sync_mu, NULL) | pthread_cond_init(&s->sync_wake, &ca) |
             pthread_cond_init(&s->sync_done, &ca) | pthread_mutex_init(&s->sweep_run, NULL) |
             pthread_mutex_init(&s->sweep_mu, NULL) | pthread_cond_init(&s->sweep_wake, &ca) |
             pthread_mutex_init(&s->ckpt_run, NULL) | pthread_mutex_init(&s->ckpt_mu, NULL) |
             pthread_mutex_init(&s->lmdb_mu, NULL) |
             pthread_cond_init(&s->ckpt_wake, &ca) | pthread_mutex_init(&s->pf_mu, NULL) |
             pthread_cond_init(&s->pf_wake, &ca);
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
        rc = reserve_blocks(s, s->map_size);
    }
    if (rc == 0)
        rc = open_dbs(s);
    s->wal_on = s->cfg.batch <= 1 && s->cfg.cache_records > 0;
    if (rc == 0)
        rc = rk_wlog_open(s->dir, &s->wlog);
    if (rc == 0)
        rc = rk_wal_recover(s);
    atomic_store(&s->trim_ns, rk_clock_ns());
    if (rc == 0)
        rc = rk_wcache_new(s->cfg.cache_records, s->wal_on, &s->wc); /* live: resident */
    if (rc == 0)
        rc = worker_create(s, 1, &s->sweep_w);
    if (rc == 0)
        s->sweep_w->nowait = true;
    /* A batching store is private and temporary, and its open batch belongs
     * to one thread: no flush thread, and no sweeper (rk_store_sweep from
     * that thread still works). */
    if (rc == 0 && s->cfg.batch <= 1) {
        atomic_store(&s->sync_seen_ns, rk_clock_ns());
        if (pthread_create(&s->syncer, NULL, sync_main, s) != 0)
            rc = RK_ENOMEM;
        else
            s->syncer_on = true;
    }
    if (rc == 0 && s->wal_on) {
        if (pthread_create(&s->ckpt, NULL, rk_wal_ckpt_main, s) != 0)
            rc = RK_ENOMEM;
        else
            s->ckpt_on = true;
    }
    if (rc == 0 && s->cfg.cache_records > 0) {
        s->pf_kick = true; /* the first spare slabs */
        if (pthread_create(&s->pf_thread, NULL, prefault_main, s) != 0)
            rc = RK_ENOMEM;
        else
            s->pf_on = true;
    }
    if (rc == 0 && s->cfg.sweep_interval_ms > 0 && s->cfg.batch <= 1) {
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
                s->cfg.batch > 1 ? ", private, batched" : s->cfg.writemap ? ", writemap" : "");
    *out = s;
    return 0;
}

void rk_store_close(rk_store *s)
{
    if (!s)
        return;
    if (s->batch_w && rk_store_flush(s) != 0)
        rk_log_error("state: the last batch could not be committed");
    pthread_mutex_lock(&s->sync_mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->sync_wake);
    pthread_mutex_unlock(&s->sync_mu);
    pthread_mutex_lock(&s->sweep_mu);
    pthread_cond_broadcast(&s->sweep_wake);
    pthread_mutex_unlock(&s->sweep_mu);
    pthread_mutex_lock(&s->ckpt_mu);
    pthread_cond_broadcast(&s->ckpt_wake);
    pthread_mutex_unlock(&s->ckpt_mu);
    pthread_mutex_lock(&s->pf_mu);
    pthread_cond_broadcast(&s->pf_wake);
    pthread_mutex_unlock(&s->pf_mu);
    if (s->pf_on)
        pthread_join(s->pf_thread, NULL);
    if (s->syncer_on)
        pthread_join(s->syncer, NULL);
    if (s->sweeper_on)
        pthread_join(s->sweeper, NULL);
    if (s->ckpt_on)
        pthread_join(s->ckpt, NULL);
    /* a clean close leaves no log (a private store's cache just goes) */
    bool drop = false;
    if (s->wlog && s->sweep_w && s->wc) {
        drop = rk_store_checkpoint(s) == 0 && atomic_load(&s->st_dirty) == 0;
        if (!drop)
            rk_log_error("state: the final checkpoint failed; the log replays at next open");
    }
    rk_store_worker_free(s->sweep_w);
    free(s->ckpt_buf);
    rk_wcache_free(s->wc);
    if (s->env) {
        if (s->cfg.batch <= 1 && mdb_env_sync(s->env, 1) != 0) {
            rk_log_error("state: final fsync failed");
            drop = false;
        }
        mdb_env_close(s->env);
    }
    rk_wlog_close(s->wlog, drop);
    rk_keyhash_free(s->kh);
    pthread_mutex_destroy(&s->gate);
    pthread_mutex_destroy(&s->flush_mu);
    pthread_rwlock_destroy(&s->maplock);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_wake);
    pthread_cond_destroy(&s->sync_done);
    pthread_mutex_destroy(&s->sweep_run);
    pthread_mutex_destroy(&s->sweep_mu);
    pthread_cond_destroy(&s->sweep_wake);
    pthread_mutex_destroy(&s->ckpt_run);
    pthread_mutex_destroy(&s->lmdb_mu);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_cond_destroy(&s->ckpt_wake);
    pthread_mutex_destroy(&s->pf_mu);
    pthread_cond_destroy(&s->pf_wake);
    free(s);
}

/* ---- workers and write transactions -------------------------------------- */

/* A worker committing every batch_max-th request (1: every one). */
static int worker_create(rk_store *s, int batch_max, rk_store_worker **out)
{
    rk_store_worker *w = calloc(1, sizeof *w);
    if (!w)
        return RK_ENOMEM;
    w->s = s;
    w->batch_max = batch_max;
    w->rec = malloc(RK_REC_MAX + RK_REPLY_MAX);
    w->grec = malloc(RK_GREC_MAX);
    w->reply = malloc(RK_REPLY_MAX);
    if (batch_max > 1)
        w->redo = malloc(RK_REDO_CAP);
    if (!w->rec || !w->grec || !w->reply || (batch_max > 1 && !w->redo)) {
        rk_store_worker_free(w);
        return RK_ENOMEM;
    }
    *out = w;
    return 0;
}

int rk_store_worker_new(rk_store *s, rk_store_worker **out)
{
    int rc = worker_create(s, s->cfg.batch > 1 ? s->cfg.batch : 1, out);
    if (rc == 0) /* without the cache and its log, every request writes LMDB */
        (*out)->read_first = s->wal_on;
    return rc;
}

void rk_store_worker_free(rk_store_worker *w)
{
    if (!w)
        return;
    if (w->in_req)
        rk_store_abort(w);
    if (w->locked && commit_now(w) != 0) /* an open batch: keep what it answered */
        rk_log_error("state: the last batch could not be committed");
    for (int i = 0; i < RK_CUR_N; i++)
        if (w->rcur[i])
            mdb_cursor_close(w->rcur[i]);
    if (w->rtxn)
        mdb_txn_abort(w->rtxn);
    free(w->rec);
    free(w->grec);
    free(w->reply);
    free(w->redo);
    free(w->wal);
    free(w);
}

int64_t rk_store_worker_now(const rk_store_worker *w)
{
    return w->now_ms;
}

static void unlock_worker(rk_store_worker *w)
{
    if (w->locked) {
        drop_txn(w); /* the read txn, after a write txn's commit */
        pthread_rwlock_unlock(&w->s->maplock);
        pthread_mutex_unlock(&w->s->gate);
        w->locked = false;
    }
}

/* Ends w's hold on the store after its transaction is gone: the batch, if
 * any, is over. */
static void release(rk_store_worker *w)
{
    w->in_req = false;
    w->batch_n = 0;
    w->redo_done = w->redo_used = 0;
    if (w->s->batch_w == w)
        w->s->batch_w = NULL;
    unlock_worker(w);
    if (w->lmdb_held) {
        pthread_mutex_unlock(&w->s->lmdb_mu);
        w->lmdb_held = false;
    }
}

int rk_store_begin(rk_store_worker *w, int64_t now_ms)
{
    if (w->in_req)
        return RK_EINVAL;
    w->now_ms = now_ms;
    w->nops = 0;
    w->oparg_used = 0;
    w->log_full = false;
    w->nfb = 0;
    w->redo_overflow = false;
    w->wal_used = 0;
    w->ckpt_n = 0;
    if (w->locked) { /* an open batch: this request joins it */
        rk_wcache_begin(w->s->wc);
        w->in_req = true;
        return 0;
    }
    rk_store *s = w->s;
    if (!w->nowait) { /* a request */
        gate_enter(s);
    } else { /* background work that writes LMDB under gate (the sweeper) */
        pthread_mutex_lock(&s->lmdb_mu);
        w->lmdb_held = true;
        rk_store_gate_enter_background(s);
    }
    pthread_rwlock_rdlock(&s->maplock);
    w->locked = true;
    w->dirty = false;
    w->lmdb_wrote = false;
    w->batch_n = 0;
    w->redo_done = w->redo_used = 0;
    int rc;
    if (w->read_first) {
        rc = begin_read(w);
    } else {
        rc = maybe_grow(s);
        if (rc == 0)
            rc = begin_txn(w);
    }
    if (rc != 0) {
        release(w);
        return rc < 0 ? rc : RK_ESTORE;
    }
    if (w->batch_max > 1) {
        MDB_envinfo info;
        w->batch_used0 = mdb_env_info(s->env, &info) == 0
                             ? ((size_t)info.me_last_pgno + 1) * s->psize
                             : 0;
    }
    rk_wcache_begin(s->wc);
    w->in_req = true;
    return 0;
}

static bool hard_failure(int rc)
{
    return rc == RK_ESTORE || rc == RK_ENOMEM || rc == RK_ECORRUPT;
}

/* ---- the redo log of a batch --------------------------------------------- */

enum { REDO_PUT = 1, REDO_DEL = 2 };

typedef struct redo_hdr {
    uint32_t dbi;  /* database */
    uint16_t op;   /* REDO_PUT or REDO_DEL */
    uint16_t klen; /* key bytes that follow */
    uint32_t vlen; /* then value bytes (puts) */
} redo_hdr;

static void redo_append(rk_store_worker *w, int op, MDB_dbi dbi, const MDB_val *k,
                        const MDB_val *v)
{
    size_t vlen = v ? v->mv_size : 0;
    size_t need = sizeof(redo_hdr) + k->mv_size + vlen;
    if (w->redo_overflow || k->mv_size > UINT16_MAX || need > RK_REDO_CAP - w->redo_used) {
        w->redo_overflow = true; /* this request commits the batch; see rk_store_commit */
        return;
    }
    redo_hdr h = {(uint32_t)dbi, (uint16_t)op, (uint16_t)k->mv_size, (uint32_t)vlen};
    uint8_t *p = w->redo + w->redo_used;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, k->mv_data, k->mv_size);
    if (vlen)
        memcpy(p + sizeof h + k->mv_size, v->mv_data, vlen);
    w->redo_used += need;
}

/* Writes again, in w's (fresh) transaction, what the batch's completed
 * requests wrote. 0, RK_ST_MAPFULL or RK_ESTORE. */
static int redo_replay(rk_store_worker *w)
{
    for (size_t at = 0; at < w->redo_done;) {
        redo_hdr h;
        memcpy(&h, w->redo + at, sizeof h);
        MDB_val k = {h.klen, w->redo + at + sizeof h};
        MDB_val v = {h.vlen, w->redo + at + sizeof h + h.klen};
        int rc = h.op == REDO_PUT ? mdb_put(w->txn, h.dbi, &k, &v, 0)
                                  : mdb_del(w->txn, h.dbi, &k, NULL);
        if (rc != 0 && !(rc == MDB_NOTFOUND && h.op == REDO_DEL))
            return rk_store_mdb_fail(w->s, rc, "rebuilding a batch");
        at += sizeof h + h.klen + h.vlen;
    }
    return 0;
}

/* The worker's cursor `which` in its transaction, opened on first use. */
static int cursor(rk_store_worker *w, int which, MDB_cursor **out)
{
    if (!w->cur[which]) {
        MDB_dbi dbi = which == RK_CUR_COUNTERS ? w->s->db_counters : w->s->db_recent;
        int rc;
        if (w->writing)
            rc = mdb_cursor_open(w->txn, dbi, &w->cur[which]);
        else if (w->rcur[which]) /* a read txn's cursor outlives it: renewed */
            rc = mdb_cursor_renew(w->txn, w->cur[which] = w->rcur[which]);
        else if ((rc = mdb_cursor_open(w->txn, dbi, &w->rcur[which])) == 0)
            w->cur[which] = w->rcur[which];
        if (rc != 0) {
            w->cur[which] = NULL;
            return rk_store_mdb_fail(w->s, rc, "opening a cursor");
        }
    }
    *out = w->cur[which];
    return 0;
}

/* The cache is tried first; a miss reads LMDB and caches a clean copy. When
 * the cache has no clean record to give up, the key is served from LMDB
 * directly (write-through), which is always consistent: it is not cached. */
int rk_store_get(rk_store_worker *w, int which, MDB_val *k, MDB_val *v, const char *what)
{
    const uint8_t *cv;
    size_t clen;
    if (rk_wcache_get(w->s->wc, which, k->mv_data, k->mv_size, &cv, &clen) == 0) {
        *v = (MDB_val){clen, (void *)cv};
        return 0;
    }
    MDB_cursor *c;
    int rc = cursor(w, which, &c);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(c, k, v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return RK_ENOTFOUND;
    if (rc != 0)
        return rk_store_mdb_fail(w->s, rc, what);
    if (rk_wcache_load(w->s->wc, which, k->mv_data, k->mv_size, v->mv_data, v->mv_size, &cv) == 0)
        v->mv_data = (void *)cv;
    return 0;
}

/* A change to a cached record goes to the cache and the request's log
 * entry (see wal.c); without room in the cache, to LMDB in place. */
int rk_store_put_at(rk_store_worker *w, int which, MDB_val *k, MDB_val *v, const char *what)
{
    rk_store *s = w->s;
    int rc = rk_wcache_put(s->wc, which, k->mv_data, k->mv_size, v->mv_data, v->mv_size,
                           s->wal_next);
    if (rc == 0)
        return s->wal_on ? rk_wal_add(w, which, k, v) : 0;
    if (rc != RK_EFULL)
        return rc;
    MDB_cursor *c;
    if ((rc = writable(w)) != 0 || (rc = cursor(w, which, &c)) != 0)
        return rc;
    if ((rc = mdb_cursor_put(c, k, v, 0)) != 0)
        return rk_store_mdb_fail(s, rc, what);
    w->lmdb_wrote = true;
    if (w->redo)
        redo_append(w, REDO_PUT, mdb_cursor_dbi(c), k, v);
    return 0;
}

int rk_store_put(rk_store_worker *w, MDB_dbi dbi, MDB_val *k, MDB_val *v, const char *what)
{
    int rc = writable(w);
    if (rc != 0)
        return rc;
    rc = mdb_put(w->txn, dbi, k, v, 0);
    if (rc != 0)
        return rk_store_mdb_fail(w->s, rc, what);
    w->lmdb_wrote = true;
    if (w->redo)
        redo_append(w, REDO_PUT, dbi, k, v);
    return 0;
}

int rk_store_del(rk_store_worker *w, MDB_dbi dbi, MDB_val *k, const char *what)
{
    int rc = writable(w);
    if (rc != 0)
        return rc;
    rc = mdb_del(w->txn, dbi, k, NULL);
    if (rc == MDB_NOTFOUND)
        return RK_ENOTFOUND;
    if (rc != 0)
        return rk_store_mdb_fail(w->s, rc, what);
    w->lmdb_wrote = true;
    if (w->redo)
        redo_append(w, REDO_DEL, dbi, k, NULL);
    return 0;
}

/* Forgets what the current request did outside LMDB: its cache changes, its
 * log entry, a checkpoint's list of records to mark clean. */
static void undo_request(rk_store_worker *w)
{
    rk_wcache_undo(w->s->wc);
    w->wal_used = 0;
    w->ckpt_n = 0;
}

/* ---- restarting a transaction -------------------------------------------- */

/* Abandons w's LMDB transaction (if it is still there) and starts a fresh
 * one holding what the open batch's completed requests wrote (nothing
 * without a batch). With grow, or when the rebuild fills the map, the map is
 * grown first. With rerun, the current request's logged operations then run
 * again and *last gets the last one's result (soft results such as
 * RK_ENOTFOUND recur exactly as the first time). Returns 0 or a hard error
 * with the transaction gone. */
static int restart(rk_store_worker *w, bool grow, bool rerun, int *last)
{
    rk_store *s = w->s;
    if (rerun && w->log_full) {
        rk_log_error("state: map full in a transaction too large to re-run");
        return RK_ESTORE;
    }
    undo_request(w); /* the request's cached changes go with its transaction */
    w->lmdb_wrote = false;
    for (int attempt = 0; attempt < GROW_ATTEMPTS; attempt++) {
        drop_txn(w);
        int rc = grow ? resize(s, false) : 0;
        if (rc == 0)
            rc = begin_txn(w);
        if (rc != 0)
            return rc < 0 ? rc : RK_ESTORE;
        if (grow)
            atomic_fetch_add(&s->n_replays, 1);
        grow = true; /* any further attempt is because the map filled */
        rc = w->redo ? redo_replay(w) : 0;
        if (rc == RK_ST_MAPFULL)
            continue;
        if (rc != 0)
            return rc;
        w->redo_used = w->redo_done;
        w->redo_overflow = false;
        if (!rerun)
            return 0;
        w->nfb = 0;
        for (int i = 0; i < w->nops; i++) {
            rc = w->ops[i].fn(w, w->oparg + w->ops[i].off);
            if (rc == RK_ST_MAPFULL || hard_failure(rc))
                break;
        }
        if (rc == RK_ST_MAPFULL) /* start the next attempt from the same cache */
            undo_request(w);
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

void rk_store_abort(rk_store_worker *w)
{
    if (!w->in_req)
        return;
    w->in_req = false;
    atomic_fetch_add(&w->s->n_aborts, 1);
    undo_request(w);
    if (w->batch_n > 0) {
        /* keep the batch's earlier requests: rebuild them without this one */
        if (restart(w, false, false, NULL) == 0) {
            w->nops = 0;
            return;
        }
        rk_log_error("state: lost the %d uncommitted requests of a batch", w->batch_n);
    }
    drop_txn(w);
    release(w);
}

int rk_store_op(rk_store_worker *w, rk_op_fn fn, const void *arg, size_t argsize)
{
    if (!w->in_req || !w->txn)
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
        int hard = restart(w, true, true, &rc);
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

static void mirror_stats(rk_store *s);

/* The cache's side of a successful commit (gate still held): the request's
 * changes stay, a checkpoint's records are clean, the log moves on, and the
 * figures stats reads are refreshed. */
static void after_commit(rk_store_worker *w)
{
    rk_store *s = w->s;
    rk_wcache_keep(s->wc);
    if (w->wal_used > 0)
        s->wal_next++;
    w->wal_used = 0;
    if (w->ckpt_n > 0)
        rk_store_images_written(s, w->ckpt_img, w->ckpt_n, s->wal_next);
    else
        mirror_stats(s);
    w->ckpt_n = 0;
    nudge_syncer(s);
}

void rk_store_images_written(rk_store *s, const rk_wc_image *img, int n, uint64_t seq)
{
    rk_wcache_mark_written(s->wc, img, n, seq);
    /* every log entry below the oldest change still dirty is in the databases */
    uint64_t keep = rk_wcache_needed_seq(s->wc, 0, s->wal_next);
    if (s->wal_on && keep > atomic_load_explicit(&s->wal_keep, memory_order_relaxed))
        atomic_store(&s->wal_keep, keep);
    mirror_stats(s);
}

/* Copies the cache's figures where rk_store_stats_get reads them without
 * the write lock, wakes the checkpointer when changes pile up faster than
 * its interval drains them, and the prefaulter when a spare slab was taken. */
static void mirror_stats(rk_store *s)
{
    rk_wcache_stats wst;
    rk_wcache_stats_get(s->wc, &wst);
    /* relaxed: figures for stats, read one by one; a sequentially consistent
     * store is a locked instruction, five of them on every commit */
    atomic_store_explicit(&s->st_cached, wst.records, memory_order_relaxed);
    atomic_store_explicit(&s->st_dirty, wst.dirty, memory_order_relaxed);
    for (int d = 0; d < RK_WC_DBS; d++)
        atomic_store_explicit(&s->st_pending[d], wst.pending_new[d], memory_order_relaxed);
    atomic_store_explicit(&s->st_evictions, wst.evictions, memory_order_relaxed);
    atomic_store_explicit(&s->st_wal_next, s->wal_next, memory_order_relaxed);
    if (s->ckpt_on && wst.dirty > s->cfg.cache_records / 2) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_kick = true;
        pthread_cond_signal(&s->ckpt_wake);
        pthread_mutex_unlock(&s->ckpt_mu);
    }
    if (s->pf_on && rk_wcache_prefault_wanted(s->wc)) {
        pthread_mutex_lock(&s->pf_mu);
        s->pf_kick = true;
        pthread_cond_signal(&s->pf_wake);
        pthread_mutex_unlock(&s->pf_mu);
    }
}

/* Commits w's LMDB transaction: the current request (if any) and the batch
 * before it. After MDB_MAP_FULL the map grows and the transaction is rebuilt
 * (the batch from its redo log, the current request from its op log). */
static int commit_now(rk_store_worker *w)
{
    rk_store *s = w->s;
    int rc = 0;
    w->in_req = false;
    for (;;) {
        if (!w->txn) {
            rc = RK_ESTORE;
            break;
        }
        if (!w->writing) /* a read txn: nothing to commit */
            break;
        int mrc = mdb_txn_commit(w->txn);
        w->txn = NULL; /* freed by LMDB on success and failure alike */
        w->writing = false;
        if (mrc == 0)
            break;
        rc = rk_store_mdb_fail(s, mrc, "committing");
        if (rc != RK_ST_MAPFULL)
            break;
        int last;
        if ((rc = restart(w, true, true, &last)) != 0)
            break;
    }
    /* Logged only once LMDB took the rest: a request whose log entry
     * cannot be written fails with its cached changes undone (with a log,
     * a request that writes LMDB directly is rare: lists, a full cache). */
    if (rc == 0)
        rc = rk_wal_write(w);
    if (rc != 0) {
        drop_txn(w);
        undo_request(w);
        atomic_fetch_add(&s->n_aborts, 1);
        release(w);
        return rc < 0 ? rc : RK_ESTORE;
    }
    after_commit(w);
    if (w->batch_max > 1) { /* what the next batch is given as headroom */
        MDB_envinfo info;
        size_t used = mdb_env_info(s->env, &info) == 0
                          ? ((size_t)info.me_last_pgno + 1) * s->psize
                          : 0;
        s->batch_growth = used > w->batch_used0 ? used - w->batch_used0 : 0;
    }
    pthread_mutex_lock(&s->sync_mu);
    uint64_t seq = w->dirty ? ++s->commit_seq : s->commit_seq;
    if (w->lmdb_wrote)
        s->env_seq = seq;
    pthread_mutex_unlock(&s->sync_mu);
    w->last_seq = seq;
    atomic_fetch_add(&s->n_commits, 1);
    release(w);
    if (s->cfg.durability == RK_DUR_STRICT && !w->nowait)
        return wait_durable(s, seq);
    return 0;
}

int rk_store_commit(rk_store_worker *w)
{
    if (!w->in_req)
        return RK_EINVAL;
    if (w->batch_max > 1 && w->txn && !w->redo_overflow && w->batch_n + 1 < w->batch_max &&
        w->redo_used <= RK_BATCH_BYTES) {
        /* the request joins the open batch: its writes are now part of what
         * a rebuild replays, and its operations need no re-running */
        w->batch_n++;
        w->redo_done = w->redo_used;
        w->nops = 0;
        w->in_req = false;
        rk_wcache_keep(w->s->wc);
        mirror_stats(w->s);
        w->s->batch_w = w;
        return 0;
    }
    /* Past three quarters of the cache dirty, the checkpointer is not keeping
     * up (it was woken at half): each request that changed records writes a
     * chunk itself (one that changed nothing, a retry, needs no room). */
    rk_store *s = w->s;
    if (s->wal_on && w->wal_used > 0 &&
        atomic_load(&s->st_dirty) > s->cfg.cache_records / 4 * 3 &&
        pthread_mutex_trylock(&s->lmdb_mu) == 0) { /* (busy: the checkpointer is at it) */
        w->lmdb_held = true; /* released with gate */
        int rc = rk_wal_assist(w);
        if (rc != 0) {
            rk_store_abort(w);
            return rc;
        }
    }
    return commit_now(w);
}

int rk_store_flush(rk_store *s)
{
    rk_store_worker *w = s->batch_w;
    if (!w)
        return 0;
    if (w->in_req)
        return RK_EINVAL;
    w->nops = 0; /* nothing of a request to re-run: the batch is all in the redo log */
    return commit_now(w);
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
    if (s->wlog) { /* entries whose changes are not all in the databases yet */
        uint64_t entries, next = atomic_load(&s->st_wal_next), keep = atomic_load(&s->wal_keep);
        rk_wlog_size(s->wlog, &entries, &st.wal_bytes);
        st.wal_entries = next > keep ? next - keep : 0;
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
    st.entries_counters += atomic_load(&s->st_pending[RK_WC_COUNTERS]);
    st.entries_recent += atomic_load(&s->st_pending[RK_WC_RECENT]);
    st.cache_records = atomic_load(&s->st_cached);
    st.cache_dirty = atomic_load(&s->st_dirty);
    st.cache_evictions = atomic_load(&s->st_evictions);
    st.checkpoints = atomic_load(&s->n_checkpoints);
    pthread_mutex_lock(&s->sync_mu);
    st.durable_commits = s->synced_seq;
    pthread_mutex_unlock(&s->sync_mu);
    *out = st;
    return 0;
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
    /* The databases first, then the log's segments, none trimmed between:
     * whatever the copied databases lack (changes not yet checkpointed when
     * their snapshot was taken) is in the copied log, which a restore
     * replays. */
    if (s->wlog)
        rk_wlog_hold(s->wlog);
    pthread_rwlock_rdlock(&s->maplock);
    int mrc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->maplock);
    rc = mrc == 0 && s->wlog ? rk_wlog_copy(s->wlog, dir) : 0;
    if (s->wlog)
        rk_wlog_unhold(s->wlog);
    if (mrc != 0)
        return rk_store_mdb_fail(s, mrc, "backup copy");
    if (rc != 0)
        return rc;
    /* mdb_env_copy2 creates the file 0644 less the umask and does not fsync */
    if (chmod(data, 0600) != 0 || rk_fsync_path(data, false) != 0 ||
        rk_fsync_path(dir, true) != 0) {
        rk_log_error("state: backup: cannot secure %s: %s", data, strerror(errno));
        return RK_EIO;
    }
    rk_log_info("state: backup written to %s in %" PRId64 " ms", dir,
                (rk_clock_ns() - t0) / 1000000);
    return 0;
}
