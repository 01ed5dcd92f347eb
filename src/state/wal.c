/* The write-ahead log behind the write-back cache, and its checkpoints.
 *
 * A request's changes to cached records (counter groups, decided
 * transactions) go into the cache and into one log entry: the new image of
 * every record it wrote, appended to the log's segment files (wlog.c) once
 * the request's transaction has ended, under the same gate. A request that
 * changed only cached records reads LMDB through a read transaction and
 * writes no page: the append (one memcpy into a mapped segment) is what
 * makes its changes survive the process, and the log's fdatasync (sync
 * thread) what makes them survive a power cut.
 *
 * Checkpoints write dirty records to their databases, oldest change first,
 * up to CKPT_CHUNK to a transaction. The checkpointer copies a chunk's images
 * under gate, writes them without it while requests go on, and takes gate
 * again to mark them written (checkpoint_chunk): a request waits at most
 * for the copying or the marking, never for LMDB. Each chunk publishes the
 * oldest change still dirty (wal_keep): every log entry older than it is in
 * the databases. The sync thread deletes whole segments below
 * it, but only after an fsync of the databases that followed the
 * publication. Because every entry holds whole images, recovery is simply:
 * put every entry's records in log order (the last image of a record wins),
 * then start an empty log. A record checkpointed after its last logged
 * change holds that same image, so replaying entries that were not yet
 * trimmed rewrites what is already there. The one image recovery can bring
 * back older than its database's is that of a record the sweeper dropped or
 * shrank meanwhile: it was idle then and is idle again (window arithmetic
 * and the decided record's own time ignore it), and the next sweep drops it.
 *
 * Stores written before the log moved into files kept it in the `wal`
 * database of the environment; recovery replays that first and empties it.
 *
 * Entry layout: repeated { u8 db, u8 key length, u32 encoded and u32 decoded
 * value lengths (native order), key, encoded value }. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/grow.h"
#include "lib/log.h"
#include "lib/thread.h"
#include "state/store_int.h"
#include "state/wlog.h"

/* Records a checkpoint transaction writes. Its copying (which a waiting
 * request cuts short) and its marking hold gate at the normal policy, so
 * they should stay short; each chunk also costs four scheduler-policy
 * system calls and a commit. In lockstep the checkpointer took 21% of
 * riskd's CPU samples with chunks of 16, 15% with 256 (perf); round trips
 * measured no different with 64 and 256. */
#define CKPT_CHUNK 64
#define RECOVER_GROWTHS 16   /* map doublings tried while recovering */
#define RK_WAL_VALUE_MAX (256 * 1024) /* largest logged value (decided records are under 80 KiB) */

typedef struct item_hdr {
    uint8_t db;          /* RK_WC_* */
    uint8_t klen;        /* key bytes that follow */
    uint8_t enc[4];      /* encoded value bytes after the key */
    uint8_t len[4];      /* value bytes once decoded */
} item_hdr;

/* Values are logged with runs of zero 8-byte words squeezed out: counter
 * rings of a quiet entity are mostly zero, and an entry small enough to sit
 * inside its B-tree page (under ~2 KiB) saves the overflow pages LMDB would
 * otherwise allocate, and fault in, for every commit. A control byte c
 * < 0x80 is followed by c literal words, c >= 0x80 stands for c - 0x80 zero
 * words; the len % 8 tail bytes follow as they are. */
#define RUN_MAX 127

static size_t encoded_max(size_t len)
{
    return len + len / (8 * RUN_MAX) + 2 + 8;
}

static size_t zrle_encode(const uint8_t *v, size_t len, uint8_t *out)
{
    size_t nw = len / 8, o = 0;
    static const uint8_t zero[8];
    for (size_t i = 0; i < nw;) {
        bool z = memcmp(v + i * 8, zero, 8) == 0;
        size_t j = i;
        while (j < nw && j - i < RUN_MAX && (memcmp(v + j * 8, zero, 8) == 0) == z)
            j++;
        out[o++] = (uint8_t)((z ? 0x80 : 0) | (j - i));
        if (!z) {
            memcpy(out + o, v + i * 8, (j - i) * 8);
            o += (j - i) * 8;
        }
        i = j;
    }
    memcpy(out + o, v + nw * 8, len % 8);
    return o + len % 8;
}

/* Decodes into out (room for len bytes). 0, or -1 when p is not an encoding
 * of exactly len bytes. */
static int zrle_decode(const uint8_t *p, size_t n, uint8_t *out, size_t len)
{
    size_t nw = len / 8, w = 0, i = 0;
    while (w < nw) {
        if (i >= n)
            return -1;
        uint8_t c = p[i++];
        size_t run = c & 0x7f;
        if (run == 0 || run > nw - w)
            return -1;
        if (c & 0x80) {
            memset(out + w * 8, 0, run * 8);
        } else {
            if (n - i < run * 8)
                return -1;
            memcpy(out + w * 8, p + i, run * 8);
            i += run * 8;
        }
        w += run;
    }
    if (n - i != len % 8)
        return -1;
    memcpy(out + nw * 8, p + i, len % 8);
    return 0;
}

int rk_wal_add(rk_store_worker *w, int db, const MDB_val *k, const MDB_val *v)
{
    size_t need = sizeof(item_hdr) + k->mv_size + encoded_max(v->mv_size);
    if (rk_grow((void **)&w->wal, &w->wal_cap, w->wal_used + need, 16 * 1024) != 0)
        return RK_ENOMEM;
    uint8_t *p = w->wal + w->wal_used;
    size_t enc = zrle_encode(v->mv_data, v->mv_size, p + sizeof(item_hdr) + k->mv_size);
    item_hdr h = {(uint8_t)db, (uint8_t)k->mv_size, {0}, {0}};
    uint32_t e32 = (uint32_t)enc, l32 = (uint32_t)v->mv_size;
    memcpy(h.enc, &e32, sizeof e32);
    memcpy(h.len, &l32, sizeof l32);
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, k->mv_data, k->mv_size);
    w->wal_used += sizeof h + k->mv_size + enc;
    return 0;
}

int rk_wal_write(rk_store_worker *w)
{
    if (w->wal_used == 0)
        return 0;
    return rk_wlog_append(w->s->wlog, w->s->wal_next, w->wal, w->wal_used);
}

static MDB_dbi item_dbi(const rk_store *s, int db)
{
    return db == RK_WC_COUNTERS ? s->db_counters : s->db_recent;
}

/* Puts every record of one log entry, decoding values through scratch
 * (RK_WAL_VALUE_MAX bytes). 0, an LMDB code, or EINVAL (malformed: cannot
 * happen, LMDB commits are atomic). */
static int apply_entry(rk_store *s, MDB_txn *txn, const uint8_t *p, size_t len, uint8_t *scratch)
{
    for (size_t at = 0; at < len;) {
        item_hdr h;
        if (len - at < sizeof h)
            return EINVAL;
        memcpy(&h, p + at, sizeof h);
        uint32_t enc, vlen;
        memcpy(&enc, h.enc, sizeof enc);
        memcpy(&vlen, h.len, sizeof vlen);
        at += sizeof h;
        if (h.db >= RK_WC_DBS || len - at < (size_t)h.klen + enc || vlen > RK_WAL_VALUE_MAX ||
            zrle_decode(p + at + h.klen, enc, scratch, vlen) != 0)
            return EINVAL;
        MDB_val k = {h.klen, (void *)(p + at)}, v = {vlen, scratch};
        int rc = mdb_put(txn, item_dbi(s, h.db), &k, &v, 0);
        if (rc != 0)
            return rc;
        at += h.klen + enc;
    }
    return 0;
}

typedef struct replay_ctx {
    rk_store *s;
    MDB_txn *txn;
    uint8_t *scratch;
    int rc;          /* apply_entry's failure, which stopped the replay */
} replay_ctx;

static int replay_one(void *ctx, uint64_t seq, const uint8_t *p, size_t len)
{
    (void)seq;
    replay_ctx *c = ctx;
    c->rc = apply_entry(c->s, c->txn, p, len, c->scratch);
    return c->rc != 0; /* non-zero stops the replay */
}

/* One attempt at recovery in a single transaction: the legacy log database,
 * then the log's files. Returns 0, an LMDB code or EINVAL (a malformed
 * entry); *file_rc gets an RK_E* code when the files could not be read. */
static int recover_once(rk_store *s, uint64_t *entries, uint64_t *last_seq, uint8_t *scratch,
                        int *file_rc)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->db_wal, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    MDB_val k, v;
    *entries = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = apply_entry(s, txn, v.mv_data, v.mv_size, scratch)) != 0)
            break;
        (*entries)++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = mdb_drop(txn, s->db_wal, 0);
    if (rc == 0) {
        uint64_t n;
        replay_ctx c = {s, txn, scratch, 0};
        int wrc = rk_wlog_replay(s->wlog, replay_one, &c, &n, last_seq);
        *entries += n;
        rc = c.rc;
        if (rc == 0 && wrc != 0) { /* the files could not be read */
            *file_rc = wrc;
            rc = EIO;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

static int recover(rk_store *s, uint8_t *scratch);

int rk_wal_recover(rk_store *s)
{
    uint8_t *scratch = malloc(RK_WAL_VALUE_MAX);
    if (!scratch)
        return RK_ENOMEM;
    int rc = recover(s, scratch);
    free(scratch);
    return rc;
}

static int recover(rk_store *s, uint8_t *scratch)
{
    for (int i = 0; i < RECOVER_GROWTHS; i++) {
        uint64_t entries = 0, last_seq = 0;
        int file_rc = 0;
        int rc = recover_once(s, &entries, &last_seq, scratch, &file_rc);
        if (file_rc != 0)
            return file_rc;
        if (rc == 0) {
            if (entries > 0) {
                rk_log_info("state: replayed %" PRIu64 " write-ahead log entries", entries);
                if (mdb_env_sync(s->env, 1) != 0)
                    return RK_ESTORE;
            }
            /* what the log held is in the databases, durably: a fresh log */
            s->wal_next = last_seq + 1;
            atomic_store(&s->wal_keep, s->wal_next);
            if (s->wal_on)
                return rk_wlog_reset(s->wlog);
            rk_wlog_close(s->wlog, true);
            s->wlog = NULL;
            return 0;
        }
        if (rc == EINVAL) {
            rk_log_error("state: a write-ahead log entry in %s is malformed", s->dir);
            return RK_ECORRUPT;
        }
        if (rc == MDB_MAP_RESIZED) { /* another process grew it: adopt its size */
            MDB_envinfo info;
            if ((rc = mdb_env_set_mapsize(s->env, 0)) != 0 || (rc = mdb_env_info(s->env, &info)) != 0)
                return rk_store_mdb_fail(s, rc, "adopting the map size");
            s->map_size = info.me_mapsize;
            continue;
        }
        if (rc != MDB_MAP_FULL)
            return rk_store_mdb_fail(s, rc, "replaying the write-ahead log");
        if ((rc = rk_store_grow_unlocked(s)) != 0)
            return rc;
    }
    return RK_ESTORE;
}

/* ---- checkpoints --------------------------------------------------------- */

/* Whether a request waits for gate: the checkpointer then stops copying
 * images for its chunk. */
static bool request_waits(rk_store *s)
{
    return atomic_load_explicit(&s->gate_waiters, memory_order_relaxed) > 0;
}

/* Up to max of the oldest dirty records whose first change is older than
 * pass_end (gate held) into d. */
static int chunk_head(rk_store *s, uint64_t pass_end, rk_wc_dirty *d, int max)
{
    int n = rk_wcache_dirty_head(s->wc, d, max);
    while (n > 0 && rk_wcache_needed_seq(s->wc, n - 1, UINT64_MAX) >= pass_end)
        n--; /* changed since the pass began: the next pass writes it */
    return n;
}

/* An assisting request writes its chunk in its own transaction, under gate
 * from start to commit: nothing changes the images meanwhile. Runs again
 * unchanged after a map growth (nothing is marked before the commit). arg:
 * a uint64_t pass_end, the request's own log sequence, so the records it
 * first dirtied itself stay dirty. */
static int assist_op(rk_store_worker *w, void *arg)
{
    rk_store *s = w->s;
    rk_wc_dirty d[RK_ASSIST_CHUNK];
    int n = chunk_head(s, *(const uint64_t *)arg, d, RK_ASSIST_CHUNK);
    bool wrote = w->lmdb_wrote;
    for (int i = 0; i < n; i++) {
        MDB_val k = {d[i].klen, (void *)d[i].key}, v = {d[i].len, (void *)d[i].val};
        int rc = rk_store_put(w, item_dbi(s, d[i].db), &k, &v, "checkpointing a record");
        if (rc != 0)
            return rc;
        w->ckpt_img[i] = d[i].img;
    }
    w->lmdb_wrote = wrote; /* the log covers these until the trim's fsync */
    w->ckpt_n = n;
    return 0;
}

int rk_wal_assist(rk_store_worker *w)
{
    uint64_t pass_end = w->s->wal_next;
    return rk_store_op(w, assist_op, &pass_end, sizeof pass_end);
}

/* A checkpoint chunk's copies of the images it writes. */
typedef struct ckpt_chunk {
    rk_store *s;
    int n;
    rk_wc_image img[CKPT_CHUNK];
    uint8_t db[CKPT_CHUNK];
    MDB_val k[CKPT_CHUNK], v[CKPT_CHUNK]; /* into s->ckpt_buf */
} ckpt_chunk;

/* Copies the images of the pass's next chunk (gate held), stopping early
 * when a request waits for gate, and says whether records of the pass
 * remain (*more). RK_ENOMEM. */
static int chunk_copy(rk_store *s, uint64_t pass_end, ckpt_chunk *c, bool *more)
{
    rk_wc_dirty d[CKPT_CHUNK];
    int n = chunk_head(s, pass_end, d, CKPT_CHUNK);
    size_t need = 0;
    for (int i = 0; i < n; i++)
        need += d[i].klen + d[i].len;
    if (rk_grow((void **)&s->ckpt_buf, &s->ckpt_cap, need, 64 * 1024) != 0)
        return RK_ENOMEM;
    uint8_t *p = s->ckpt_buf;
    int i = 0;
    for (; i < n && !(i > 0 && request_waits(s)); i++) {
        c->img[i] = d[i].img;
        c->db[i] = (uint8_t)d[i].db;
        memcpy(p, d[i].key, d[i].klen);
        c->k[i] = (MDB_val){d[i].klen, p};
        p += d[i].klen;
        memcpy(p, d[i].val, d[i].len);
        c->v[i] = (MDB_val){d[i].len, p};
        p += d[i].len;
    }
    c->n = i;
    *more = rk_wcache_needed_seq(s->wc, i, UINT64_MAX) < pass_end;
    return 0;
}

static int chunk_put(MDB_txn *txn, void *arg)
{
    ckpt_chunk *c = arg;
    for (int i = 0; i < c->n; i++) {
        int rc = mdb_put(txn, item_dbi(c->s, c->db[i]), &c->k[i], &c->v[i], 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The checkpointer (hold: its priority; NULL for a checkpoint run by a
 * caller's own thread) waits for an idle core under SCHED_IDLE but holds
 * gate, which every request needs, at the normal policy: an idle-policy
 * thread is preempted by any thread that wakes on its core, and a request
 * then waited for it to be scheduled again while it held the lock. */
static void take_gate(rk_store *s, rk_thread_prio *hold)
{
    if (hold)
        rk_thread_prio_boost(hold);
    rk_store_gate_enter_background(s);
}

static void give_gate(rk_store *s, rk_thread_prio *hold)
{
    rk_store_gate_leave(s);
    if (hold)
        rk_thread_prio_settle(hold);
}

/* One checkpoint transaction of the pass ending at *pass_end. The images are copied
 * under gate, written to LMDB without it (requests go on meanwhile: they
 * read LMDB through read transactions and change only the cache), and
 * marked written under gate again; a record a request changed meanwhile
 * stays dirty (rk_wcache_mark_written). lmdb_mu, held throughout, keeps out
 * the other writers of cached records: an assist that wrote and cleaned a
 * newer image before this chunk's older copy lands would lose its change,
 * and a sweeper batch would wait for LMDB's writer lock while holding gate. */
static int checkpoint_chunk(rk_store *s, uint64_t *pass_end, bool *more, rk_thread_prio *hold)
{
    ckpt_chunk c = {.s = s};
    pthread_mutex_lock(&s->lmdb_mu);
    take_gate(s, hold);
    if (*pass_end == 0)
        *pass_end = s->wal_on ? s->wal_next : UINT64_MAX;
    uint64_t seq = s->wal_next;
    int rc = chunk_copy(s, *pass_end, &c, more);
    give_gate(s, hold);
    if (rc == 0 && c.n > 0)
        rc = rk_store_write_unlocked(s, chunk_put, &c);
    if (rc == 0 && c.n > 0) {
        take_gate(s, hold);
        rk_store_images_written(s, c.img, c.n, seq);
        give_gate(s, hold);
    }
    pthread_mutex_unlock(&s->lmdb_mu);
    return rc;
}

/* One checkpoint pass. */
static int checkpoint_pass(rk_store *s, rk_thread_prio *hold)
{
    if (s->batch_w) /* a batching store's open batch (same thread) goes first */
        rk_store_flush(s);
    pthread_mutex_lock(&s->ckpt_run);
    int rc = 0;
    /* A pass covers what was dirty when it began, so it ends under constant
     * load; later changes wait for the next. A private store has no log
     * sequence (and no other writer): everything. */
    uint64_t pass_end = 0; /* set by the first chunk, under gate */
    for (bool more = true; more;) {
        rc = checkpoint_chunk(s, &pass_end, &more, hold);
        if (rc != 0)
            break;
        atomic_fetch_add(&s->n_checkpoints, 1);
        if (more)
            rk_store_yield(s);
    }
    pthread_mutex_unlock(&s->ckpt_run);
    return rc;
}

int rk_store_checkpoint(rk_store *s)
{
    int rc = checkpoint_pass(s, NULL);
    return rc == 0 ? rk_store_trim_log(s) : rc;
}

void *rk_wal_ckpt_main(void *arg)
{
    rk_store *s = arg;
    rk_thread_prio_idle(&s->ckpt_prio, "rk-checkpoint", true);
    pthread_mutex_lock(&s->ckpt_mu);
    while (!s->stopping) {
        struct timespec dl;
        rk_clock_deadline(&dl, s->cfg.checkpoint_ms);
        while (!s->stopping && !s->ckpt_kick &&
               pthread_cond_timedwait(&s->ckpt_wake, &s->ckpt_mu, &dl) != ETIMEDOUT)
            ;
        if (s->stopping)
            break;
        s->ckpt_kick = false;
        pthread_mutex_unlock(&s->ckpt_mu);
        (void)checkpoint_pass(s, &s->ckpt_prio);
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}
