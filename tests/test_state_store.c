/* The state store end to end on a real LMDB environment in a temporary
 * directory: the secret file, counters (count, sum, distinct, compound keys,
 * missing keys, `when`, out-of-order and too-old events, definition changes),
 * retry de-duplication, dynamic lists with TTL, feedback, map growth from a
 * tiny map (pre-emptive and on MDB_MAP_FULL), batches of a private store
 * (retries and aborts inside a batch, growth and rebuilds), recovery of the
 * write-ahead log, checkpoints (alone, assisted by requests, and running
 * while requests change the records they write), the sweeper, backup and
 * restore, and a scan of the data file for the raw identifiers used. Time is
 * injected; only the threaded tests wait. */
#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/log.h"
#include "state/counters.h"
#include "state/dlist.h"
#include "state/recent.h"
#include "state/store.h"
#include "state/store_int.h" /* test_checkpoint_assist holds the checkpointer back */

#define MIN_MS (60LL * 1000)
#define HOUR_MS (3600LL * 1000)
#define DAY_MS (24 * HOUR_MS)
#define T0 (1700000000000LL) /* an event time in 2023 */

/* ---- fixtures ------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void rmrf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct fx {
    char dir[64];          /* data directory */
    char aux[80];          /* a second directory (backups) */
    rk_store_config cfg;   /* config used by reopen() */
    rk_store *s;           /* the store */
    rk_store_worker *w;          /* one worker */
    rk_txn *txn;           /* a request */
} fx;

static void fx_open(fx *f)
{
    assert_int_equal(rk_store_open(&f->cfg, &f->s), 0);
    assert_int_equal(rk_store_worker_new(f->s, &f->w), 0);
}

static void fx_close(fx *f)
{
    rk_store_worker_free(f->w);
    rk_store_close(f->s);
    f->w = NULL;
    f->s = NULL;
}

static int setup(void **state)
{
    rk_log_set_level(RK_LOG_WARN);
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rk_state_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->aux, sizeof f->aux, "%s.bak", f->dir);
    rk_store_config_default(&f->cfg);
    f->cfg.dir = f->dir;
    f->cfg.sweep_interval_ms = 0; /* tests sweep explicitly */
    f->txn = calloc(1, sizeof *f->txn);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->s)
        fx_close(f);
    rmrf(f->dir);
    rmrf(f->aux);
    free(f->txn);
    free(f);
    return 0;
}

static void set_str(rk_txn *t, int slot, const char *s)
{
    t->v[slot] = s ? rk_value_str(s, (uint32_t)strlen(s)) : rk_value_missing();
}

static rk_counter_def def(const char *name, int agg, int64_t window_ms, int nby, ...)
{
    rk_counter_def d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.agg = agg;
    d.window_ms = window_ms;
    d.nby = nby;
    d.field_slot = -1;
    va_list ap;
    va_start(ap, nby);
    for (int i = 0; i < nby; i++) {
        d.by_slot[i] = va_arg(ap, int);
        snprintf(d.by_name[i], sizeof d.by_name[i], "%s", rk_field_name(d.by_slot[i]));
    }
    va_end(ap);
    return d;
}

static void with_field(rk_counter_def *d, int slot)
{
    d->field_slot = slot;
    snprintf(d->field_name, sizeof d->field_name, "%s", rk_field_name(slot));
}

/* One request: begin, apply, commit. */
static void run(fx *f, const rk_counters *c, int64_t ts, const bool *when, rk_value *out)
{
    assert_int_equal(rk_store_begin(f->w, ts), 0);
    assert_int_equal(rk_counters_apply(f->w, c, f->txn, ts, when, out), 0);
    assert_int_equal(rk_store_commit(f->w), 0);
}

/* Counter i's value for the current txn at ts, without counting it. */
static int64_t peek(fx *f, const rk_counters *c, int i, int64_t ts)
{
    bool when[RK_COUNTERS_MAX] = {false};
    rk_value out[RK_COUNTERS_MAX];
    run(f, c, ts, when, out);
    assert_int_equal(out[i].type, RK_T_INT);
    return out[i].i;
}

/* ---- the secret file ----------------------------------------------------- */

static void test_secret_file(void **state)
{
    fx *f = *state;
    char dir[80], path[128];
    snprintf(dir, sizeof dir, "%s/data", f->dir); /* missing: created */
    f->cfg.dir = dir;
    fx_open(f);
    fx_close(f);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/secret", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, RK_SECRET_LEN);

    /* looser permissions: refuse */
    chmod(path, 0640);
    assert_int_equal(rk_store_open(&f->cfg, &f->s), RK_EINVAL);
    chmod(path, 0600);
    fx_open(f); /* fine again */
    fx_close(f);

    /* wrong size: refuse */
    FILE *fp = fopen(path, "ab");
    fputc('x', fp);
    fclose(fp);
    assert_int_equal(rk_store_open(&f->cfg, &f->s), RK_EINVAL);

    /* a different secret of the right shape: the store rejects it */
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    char other[RK_SECRET_LEN];
    memset(other, 7, sizeof other);
    assert_int_equal(write(fd, other, sizeof other), (ssize_t)sizeof other);
    close(fd);
    assert_int_equal(rk_store_open(&f->cfg, &f->s), RK_ECORRUPT);
    f->s = NULL;
}

/* ---- counters ------------------------------------------------------------ */

static void test_count_sum_distinct(void **state)
{
    fx *f = *state;
    fx_open(f);
    rk_counter_def d[4];
    d[0] = def("acct_txn_1h", RK_AGG_COUNT, HOUR_MS, 1, RK_F_ACCOUNT);
    d[1] = def("acct_amt_24h", RK_AGG_SUM, DAY_MS, 1, RK_F_ACCOUNT);
    with_field(&d[1], RK_F_AMOUNT);
    d[2] = def("dev_cards_24h", RK_AGG_DISTINCT, DAY_MS, 1, RK_F_DEVICE);
    with_field(&d[2], RK_F_CARD);
    d[3] = def("acct_merch_1h", RK_AGG_COUNT, HOUR_MS, 2, RK_F_ACCOUNT, RK_F_MERCHANT);
    rk_counters *c;
    assert_int_equal(rk_counters_new(d, 4, &c, NULL), 0);
    rk_value out[4];
    char card[16];

    set_str(f->txn, RK_F_ACCOUNT, "acct-1");
    set_str(f->txn, RK_F_DEVICE, "dev-1");
    set_str(f->txn, RK_F_MERCHANT, "m-1");
    for (int i = 0; i < 5; i++) {
        snprintf(card, sizeof card, "card-%d", i % 3);
        set_str(f->txn, RK_F_CARD, card);
        f->txn->v[RK_F_AMOUNT] = rk_value_int(100 * (i + 1));
        run(f, c, T0 + i * MIN_MS, NULL, out);
        assert_int_equal(out[0].i, i + 1); /* includes this request */
        assert_int_equal(out[1].i, 100 * (i + 1) * (i + 2) / 2);
        assert_int_equal(out[2].i, i < 3 ? i + 1 : 3);
        assert_int_equal(out[3].i, i + 1);
    }
    /* compound key: another merchant is another entity */
    set_str(f->txn, RK_F_MERCHANT, "m-2");
    run(f, c, T0 + 5 * MIN_MS, NULL, out);
    assert_int_equal(out[0].i, 6);
    assert_int_equal(out[3].i, 1);
    /* the same text under another key field is another entity */
    set_str(f->txn, RK_F_DEVICE, "acct-1");
    assert_int_equal(peek(f, c, 2, T0 + 5 * MIN_MS), 0);
    set_str(f->txn, RK_F_DEVICE, "dev-1");
    /* ("acct-1","m-2") must not collide with ("acct-1m","-2") */
    set_str(f->txn, RK_F_ACCOUNT, "acct-1m");
    set_str(f->txn, RK_F_MERCHANT, "-2");
    run(f, c, T0 + 5 * MIN_MS, NULL, out);
    assert_int_equal(out[3].i, 1);

    /* a missing key field: that counter is missing and nothing is updated */
    set_str(f->txn, RK_F_ACCOUNT, "acct-1");
    set_str(f->txn, RK_F_MERCHANT, "m-1");
    set_str(f->txn, RK_F_DEVICE, NULL);
    run(f, c, T0 + 6 * MIN_MS, NULL, out);
    assert_int_equal(out[0].i, 7);
    assert_int_equal(out[2].type, RK_T_MISSING);
    set_str(f->txn, RK_F_DEVICE, "dev-1");
    assert_int_equal(peek(f, c, 2, T0 + 6 * MIN_MS), 3);
    /* a missing sum field counts nothing but the value is there */
    f->txn->v[RK_F_AMOUNT] = rk_value_missing();
    run(f, c, T0 + 7 * MIN_MS, NULL, out);
    assert_int_equal(out[1].i, 1500 + 500 + 500); /* m-2 and no-device requests had 500 */
    assert_int_equal(out[0].i, 8);

    /* when = false: read without counting */
    bool when[4] = {false, true, true, true};
    f->txn->v[RK_F_AMOUNT] = rk_value_int(1);
    run(f, c, T0 + 8 * MIN_MS, when, out);
    assert_int_equal(out[0].i, 8);
    assert_int_equal(out[1].i, 2501);

    /* the 1h window slides in event time; the 24h one does not yet */
    run(f, c, T0 + 8 * MIN_MS + HOUR_MS + 5 * MIN_MS, NULL, out);
    assert_int_equal(out[0].i, 1); /* T0+6m..8m are older than t-1h-one bucket */
    assert_int_equal(out[1].i, 2502);
    rk_counters_free(c);
}

static void test_out_of_order_and_too_old(void **state)
{
    fx *f = *state;
    fx_open(f);
    rk_counter_def d = def("acct_30s", RK_AGG_COUNT, 30000, 1, RK_F_ACCOUNT);
    rk_counters *c;
    assert_int_equal(rk_counters_new(&d, 1, &c, NULL), 0);
    rk_value out[1];
    set_str(f->txn, RK_F_ACCOUNT, "acct-ooo");
    run(f, c, T0 + 10000, NULL, out);
    assert_int_equal(out[0].i, 1);
    run(f, c, T0 + 20000, NULL, out);
    assert_int_equal(out[0].i, 2);
    run(f, c, T0 + 12500, NULL, out); /* late, inside the window: its own bucket */
    assert_int_equal(out[0].i, 3);
    /* at T0+10000+31000 the first event's bucket leaves; the late one stays */
    run(f, c, T0 + 41000, NULL, out);
    assert_int_equal(out[0].i, 3); /* 12500, 20000, 41000 */
    run(f, c, T0 + 43500, NULL, out);
    assert_int_equal(out[0].i, 3); /* 12500 left: 20000, 41000, 43500 */
    /* too old relative to the newest event: not counted, nothing changes */
    run(f, c, T0 + 5000, NULL, out);
    assert_int_equal(out[0].i, 3);
    assert_int_equal(peek(f, c, 0, T0 + 43500), 3);
    /* a long gap: everything stale is gone */
    run(f, c, T0 + 10 * DAY_MS, NULL, out);
    assert_int_equal(out[0].i, 1);
    rk_counters_free(c);
}

static void test_definition_change(void **state)
{
    fx *f = *state;
    fx_open(f);
    rk_counter_def d = def("acct_txn", RK_AGG_COUNT, HOUR_MS, 1, RK_F_ACCOUNT);
    rk_counters *c1, *c2, *c3;
    assert_int_equal(rk_counters_new(&d, 1, &c1, NULL), 0);
    rk_value out[1];
    set_str(f->txn, RK_F_ACCOUNT, "acct-def");
    run(f, c1, T0, NULL, out);
    run(f, c1, T0 + 1000, NULL, out);
    assert_int_equal(out[0].i, 2);
    /* same definition in a new set (a reload): continues */
    assert_int_equal(rk_counters_new(&d, 1, &c2, NULL), 0);
    assert_int_equal(rk_counters_id(c1, 0), rk_counters_id(c2, 0));
    run(f, c2, T0 + 2000, NULL, out);
    assert_int_equal(out[0].i, 3);
    /* the window changes: starts fresh */
    d.window_ms = 2 * HOUR_MS;
    assert_int_equal(rk_counters_new(&d, 1, &c3, NULL), 0);
    assert_true(rk_counters_id(c1, 0) != rk_counters_id(c3, 0));
    run(f, c3, T0 + 3000, NULL, out);
    assert_int_equal(out[0].i, 1);
    /* the old definition's state was kept beside the new one: back to it,
     * it carries on (until the sweeper finds it idle) */
    run(f, c1, T0 + 4000, NULL, out);
    assert_int_equal(out[0].i, 4);
    run(f, c3, T0 + 5000, NULL, out);
    assert_int_equal(out[0].i, 2);
    rk_counters_free(c3);
    /* and so does a change of aggregate or key */
    d = def("acct_txn", RK_AGG_SUM, HOUR_MS, 1, RK_F_ACCOUNT);
    with_field(&d, RK_F_AMOUNT);
    assert_int_equal(rk_counters_new(&d, 1, &c3, NULL), 0);
    assert_true(rk_counters_id(c1, 0) != rk_counters_id(c3, 0));
    rk_counters_free(c3);
    /* and a change of its `when:` filter */
    d = def("acct_txn", RK_AGG_COUNT, HOUR_MS, 1, RK_F_ACCOUNT);
    d.filter_id = rk_hash64("amount >= 100", 13);
    assert_int_equal(rk_counters_new(&d, 1, &c3, NULL), 0);
    assert_true(rk_counters_id(c1, 0) != rk_counters_id(c3, 0));
    rk_counters_free(c3);
    /* bad definitions are refused with a message */
    rk_diag diag;
    d = def("w", RK_AGG_COUNT, 1000, 1, RK_F_ACCOUNT);
    assert_int_equal(rk_counters_new(&d, 1, &c3, &diag), RK_ERANGE);
    assert_non_null(strstr(diag.msg, "window"));
    rk_counter_def two[2] = {def("x", RK_AGG_COUNT, HOUR_MS, 1, RK_F_CARD),
                             def("x", RK_AGG_COUNT, HOUR_MS, 1, RK_F_IP)};
    assert_int_equal(rk_counters_new(two, 2, &c3, &diag), RK_EEXISTS);
    rk_counters_free(c1);
    rk_counters_free(c2);
}

/* ---- retries ------------------------------------------------------------- */

/* The pipeline's sequence for one request; returns 1 when replayed. */
static int score(fx *f, const rk_counters *c, const char *id, int64_t now, rk_value *out,
                 rk_replay *rp)
{
    assert_int_equal(rk_store_begin(f->w, now), 0);
    int rc = rk_recent_check(f->w, id, strlen(id), rp);
    if (rc == 0) {
        assert_int_equal(rk_store_commit(f->w), 0);
        return 1;
    }
    assert_int_equal(rc, RK_ENOTFOUND);
    assert_int_equal(rk_counters_apply(f->w, c, f->txn, now, NULL, out), 0);
    char reply[64];
    int n = snprintf(reply, sizeof reply, "reply:%s:%lld", id, (long long)out[0].i);
    /* the id follows "reply:": it is cut out of what is stored */
    assert_int_equal(rk_recent_record(f->w, id, strlen(id), 2, now, reply, (size_t)n, 6), 0);
    assert_int_equal(rk_store_commit(f->w), 0);
    return 0;
}

/* A retry of id at now finds its stored reply. */
static void assert_replayed(fx *f, const char *id, int64_t now, const char *reply)
{
    rk_replay rp;
    assert_int_equal(rk_store_begin(f->w, now), 0);
    assert_int_equal(rk_recent_check(f->w, id, strlen(id), &rp), 0);
    assert_int_equal(rp.reply_len, strlen(reply));
    assert_memory_equal(rp.reply, reply, rp.reply_len);
    rk_store_abort(f->w);
}

/* One counter, transactions per account over a day: what most tests count. */
static rk_counters *acct_txn_counter(void)
{
    rk_counter_def d = def("acct_txn", RK_AGG_COUNT, DAY_MS, 1, RK_F_ACCOUNT);
    rk_counters *c;
    assert_int_equal(rk_counters_new(&d, 1, &c, NULL), 0);
    return c;
}

static void test_retry_dedupe(void **state)
{
    fx *f = *state;
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    set_str(f->txn, RK_F_ACCOUNT, "acct-retry");
    assert_int_equal(score(f, c, "txn-1", T0, out, &rp), 0);
    assert_int_equal(out[0].i, 1);
    assert_int_equal(score(f, c, "txn-2", T0 + 1000, out, &rp), 0);
    assert_int_equal(out[0].i, 2);
    /* a retry within 24 h: the first reply, nothing counted */
    assert_int_equal(score(f, c, "txn-1", T0 + 5000, out, &rp), 1);
    assert_int_equal(rp.reply_len, strlen("reply:txn-1:1"));
    assert_memory_equal(rp.reply, "reply:txn-1:1", rp.reply_len);
    assert_int_equal(rp.verdict, 2);
    assert_int_equal(rp.ts, T0);
    assert_int_equal(peek(f, c, 0, T0 + 5000), 2);
    /* just inside and just past the TTL */
    assert_int_equal(score(f, c, "txn-1", T0 + DAY_MS - 1, out, &rp), 1);
    assert_int_equal(score(f, c, "txn-1", T0 + DAY_MS, out, &rp), 0);
    assert_int_equal(out[0].i, 3);
    /* an aborted request leaves no trace */
    assert_int_equal(rk_store_begin(f->w, T0 + DAY_MS), 0);
    assert_int_equal(rk_counters_apply(f->w, c, f->txn, T0 + DAY_MS, NULL, out), 0);
    assert_int_equal(rk_recent_record(f->w, "txn-9", 5, 0, T0, "x", 1, RK_RECENT_NO_ID), 0);
    rk_store_abort(f->w);
    assert_int_equal(score(f, c, "txn-9", T0 + DAY_MS, out, &rp), 0);
    assert_int_equal(out[0].i, 4);
    rk_counters_free(c);
}

/* The reply's id is cut out of the stored record and put back from the retry's
 * own id; the caller must say truly where it is. */
static void test_retry_reply_without_id(void **state)
{
    fx *f = *state;
    fx_open(f);
    const char *reply = "<<txn-cut-77>>";
    assert_int_equal(rk_store_begin(f->w, T0), 0);
    assert_int_equal(rk_recent_record(f->w, "txn-cut-77", 10, 1, T0, reply, 14, 3), RK_EINVAL);
    assert_int_equal(rk_recent_record(f->w, "txn-cut-77", 10, 1, T0, reply, 14, 5), RK_EINVAL);
    assert_int_equal(rk_recent_record(f->w, "txn-cut-77", 10, 1, T0, reply, 14, 2), 0);
    assert_int_equal(rk_store_commit(f->w), 0);
    rk_replay rp;
    assert_int_equal(rk_store_begin(f->w, T0 + 1), 0);
    assert_int_equal(rk_recent_check(f->w, "txn-cut-77", 10, &rp), 0);
    assert_int_equal(rp.reply_len, 14);
    assert_memory_equal(rp.reply, reply, 14);
    assert_int_equal(rp.verdict, 1);
    /* the stored value itself holds the reply without the id */
    uint8_t key[RK_HASH_LEN];
    rk_keyhash_bytes(f->w->s->kh, "txn-cut-77", 10, key);
    MDB_val k = {RK_HASH_LEN, key}, v;
    assert_int_equal(rk_store_get(f->w, RK_CUR_RECENT, &k, &v, "test"), 0);
    assert_int_equal(v.mv_size, 32 + 8 + 4);
    assert_memory_equal((const uint8_t *)v.mv_data + 40, "<<>>", 4);
    rk_store_abort(f->w);
}

/* Records written before replies were kept without their id (version 1: the
 * whole reply encrypted) are still answered and labelled. */
static void test_retry_sealed_v1_record(void **state)
{
    fx *f = *state;
    fx_open(f);
    const char *id = "txn-old-1", *reply = "old reply for txn-old-1";
    size_t n = strlen(reply);
    uint8_t key[RK_HASH_LEN], rec[32 + 64];
    rk_keyhash_bytes(f->w->s->kh, id, strlen(id), key);
    /* version, verdict, label, nkeys, reply_len, ts, decided_at, labeled_at */
    uint32_t reply_len = (uint32_t)n;
    int64_t ts = T0 - 5, decided_at = T0, labeled_at = 0;
    memcpy(rec, (uint8_t[]){1, 2, 0, 0}, 4);
    memcpy(rec + 4, &reply_len, 4);
    memcpy(rec + 8, &ts, 8);
    memcpy(rec + 16, &decided_at, 8);
    memcpy(rec + 24, &labeled_at, 8);
    memcpy(rec + 32, reply, n);
    uint8_t nonce[RK_SEAL_NONCE_LEN];
    memcpy(nonce, key, RK_HASH_LEN);
    memcpy(nonce + RK_HASH_LEN, &decided_at, 8);
    rk_keyhash_seal(f->w->s->kh, nonce, rec + 32, n);
    assert_int_equal(rk_store_begin(f->w, T0), 0);
    MDB_val k = {RK_HASH_LEN, key}, v = {32 + n, rec};
    assert_int_equal(rk_store_put_at(f->w, RK_CUR_RECENT, &k, &v, "test"), 0);
    assert_int_equal(rk_store_commit(f->w), 0);

    rk_replay rp;
    assert_int_equal(rk_store_begin(f->w, T0 + 1000), 0);
    assert_int_equal(rk_recent_check(f->w, id, strlen(id), &rp), 0);
    assert_int_equal(rp.reply_len, n);
    assert_memory_equal(rp.reply, reply, n);
    assert_int_equal(rp.verdict, 2);
    assert_int_equal(rp.ts, T0 - 5);
    rk_feedback_info fb;
    assert_int_equal(rk_recent_feedback(f->w, id, strlen(id), RK_LABEL_FRAUD, &fb), 0);
    assert_int_equal(fb.prev_label, RK_LABEL_NONE);
    assert_int_equal(fb.verdict, 2);
    assert_int_equal(rk_store_commit(f->w), 0);
    /* the label was written into the old record, which still reads */
    assert_int_equal(rk_store_begin(f->w, T0 + 2000), 0);
    assert_int_equal(rk_recent_check(f->w, id, strlen(id), &rp), 0);
    assert_int_equal(rp.label, RK_LABEL_FRAUD);
    assert_memory_equal(rp.reply, reply, n);
    rk_store_abort(f->w);
}

/* ---- dynamic lists ------------------------------------------------------- */

static void test_lists_ttl(void **state)
{
    fx *f = *state;
    fx_open(f);
    rk_store_worker *w = f->w;
    rk_value card = rk_value_str("card-bad", 8), other = rk_value_str("card-ok", 7);
    rk_value mcc_int = rk_value_int(7995), mcc_str = rk_value_str("7995", 4);
    bool has;
    rk_dlist_entry e;

    assert_int_equal(rk_store_begin(w, T0), 0);
    assert_int_equal(rk_dlist_add(w, "blocked_cards", &card, 30 * DAY_MS), 0);
    assert_int_equal(rk_dlist_add(w, "risky_mcc", &mcc_int, 0), 0);
    assert_int_equal(rk_dlist_add(w, "", &card, 0), RK_EINVAL);
    assert_int_equal(rk_dlist_add(w, "x", &card, -1), RK_EINVAL);
    assert_int_equal(rk_store_commit(w), 0);

    /* effective for the next transaction */
    assert_int_equal(rk_store_begin(w, T0 + 1), 0);
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &card, &has), 0);
    assert_true(has);
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &other, &has), 0);
    assert_false(has);
    assert_int_equal(rk_dlist_has(w, "other_list", &card, &has), 0);
    assert_false(has);
    rk_value miss = rk_value_missing();
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &miss, &has), 0);
    assert_false(has);
    assert_int_equal(rk_dlist_has(w, "risky_mcc", &mcc_str, &has), 0); /* same text, same member */
    assert_true(has);
    assert_int_equal(rk_dlist_get(w, "blocked_cards", &card, &e), 0);
    assert_int_equal(e.added_at, T0);
    assert_int_equal(e.expires_at, T0 + 30 * DAY_MS);
    assert_int_equal(rk_dlist_get(w, "risky_mcc", &mcc_int, &e), 0);
    assert_int_equal(e.expires_at, 0);
    assert_int_equal(rk_store_commit(w), 0);

    /* expiry is checked on read */
    assert_int_equal(rk_store_begin(w, T0 + 30 * DAY_MS - 1), 0);
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &card, &has), 0);
    assert_true(has);
    assert_int_equal(rk_store_commit(w), 0);
    assert_int_equal(rk_store_begin(w, T0 + 30 * DAY_MS), 0);
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &card, &has), 0);
    assert_false(has);
    assert_int_equal(rk_dlist_get(w, "blocked_cards", &card, &e), RK_ENOTFOUND);
    assert_int_equal(rk_dlist_remove(w, "blocked_cards", &card), RK_ENOTFOUND);
    assert_int_equal(rk_dlist_remove(w, "risky_mcc", &mcc_str), 0);
    assert_int_equal(rk_dlist_has(w, "risky_mcc", &mcc_int, &has), 0);
    assert_false(has);
    /* re-adding refreshes */
    assert_int_equal(rk_dlist_add(w, "blocked_cards", &card, DAY_MS), 0);
    assert_int_equal(rk_dlist_has(w, "blocked_cards", &card, &has), 0);
    assert_true(has);
    assert_int_equal(rk_store_commit(w), 0);

    /* the sweeper removes expired entries */
    assert_int_equal(rk_store_begin(w, T0), 0);
    for (int i = 0; i < 600; i++) {
        char v[32];
        snprintf(v, sizeof v, "ip-%d", i);
        rk_value iv = rk_value_str(v, (uint32_t)strlen(v));
        assert_int_equal(rk_dlist_add(w, "bad_ips", &iv, i < 500 ? HOUR_MS : 0), 0);
    }
    assert_int_equal(rk_store_commit(w), 0);
    rk_sweep_result sr;
    assert_int_equal(rk_store_sweep(f->s, T0 + 2 * HOUR_MS, &sr), 0);
    assert_int_equal(sr.lists, 500);
    assert_true(sr.batches >= 2 + 2); /* 500 deletions need two batches of 256 */
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.entries_lists, 100 + 1);
    assert_int_equal(st.swept_lists, 500);
}

/* ---- feedback ------------------------------------------------------------ */

static void test_feedback(void **state)
{
    fx *f = *state;
    f->cfg.recent_ttl_ms = 20 * DAY_MS; /* labels arrive weeks later */
    fx_open(f);
    rk_counter_def d[4];
    d[0] = def("card_txn_90d", RK_AGG_COUNT, 90 * DAY_MS, 1, RK_F_CARD);
    d[1] = def("card_fraud_90d", RK_AGG_COUNT, 90 * DAY_MS, 1, RK_F_CARD);
    d[1].feedback = RK_LABEL_FRAUD;
    d[2] = def("card_fraud_amt_90d", RK_AGG_SUM, 90 * DAY_MS, 1, RK_F_CARD);
    with_field(&d[2], RK_F_AMOUNT);
    d[2].feedback = RK_LABEL_FRAUD;
    d[3] = def("card_legit_90d", RK_AGG_COUNT, 90 * DAY_MS, 1, RK_F_CARD);
    d[3].feedback = RK_LABEL_LEGIT;
    rk_counters *c;
    assert_int_equal(rk_counters_new(d, 4, &c, NULL), 0);
    rk_value out[4];
    rk_replay rp;
    set_str(f->txn, RK_F_CARD, "card-fb");
    set_str(f->txn, RK_F_ACCOUNT, "acct-fb");
    f->txn->v[RK_F_AMOUNT] = rk_value_int(700);
    assert_int_equal(score(f, c, "fb-1", T0, out, &rp), 0);
    assert_int_equal(out[0].i, 1);
    assert_int_equal(out[1].i, 0); /* feedback-fed: read only on requests */
    assert_int_equal(out[2].i, 0);

    rk_feedback_info fb;
    int napplied;
    assert_int_equal(rk_store_begin(f->w, T0 + 10 * DAY_MS), 0);
    assert_int_equal(rk_recent_feedback(f->w, "nope", 4, RK_LABEL_FRAUD, &fb), RK_ENOTFOUND);
    assert_int_equal(rk_recent_feedback(f->w, "fb-1", 4, RK_LABEL_FRAUD, &fb), 0);
    assert_int_equal(fb.prev_label, RK_LABEL_NONE);
    assert_int_equal(fb.ts, T0);
    assert_int_equal(fb.nkeys, 3);
    assert_int_equal(rk_counters_feedback(f->w, c, &fb, &napplied), 0);
    assert_int_equal(napplied, 2);
    assert_int_equal(rk_store_commit(f->w), 0);

    /* the next request on that card sees the confirmed fraud */
    assert_int_equal(score(f, c, "fb-2", T0 + 10 * DAY_MS, out, &rp), 0);
    assert_int_equal(out[0].i, 2);
    assert_int_equal(out[1].i, 1);
    assert_int_equal(out[2].i, 700);
    assert_int_equal(out[3].i, 0);

    /* the same label again changes nothing */
    assert_int_equal(rk_store_begin(f->w, T0 + 11 * DAY_MS), 0);
    assert_int_equal(rk_recent_feedback(f->w, "fb-1", 4, RK_LABEL_FRAUD, &fb), 0);
    assert_int_equal(fb.prev_label, RK_LABEL_FRAUD);
    assert_int_equal(rk_counters_feedback(f->w, c, &fb, &napplied), 0);
    assert_int_equal(napplied, 0);
    /* overturned: fraud contributions taken back, legit counted */
    assert_int_equal(rk_recent_feedback(f->w, "fb-1", 4, RK_LABEL_LEGIT, &fb), 0);
    assert_int_equal(rk_counters_feedback(f->w, c, &fb, &napplied), 0);
    assert_int_equal(napplied, 3);
    assert_int_equal(rk_store_commit(f->w), 0);
    assert_int_equal(peek(f, c, 1, T0 + 11 * DAY_MS), 0);
    assert_int_equal(peek(f, c, 2, T0 + 11 * DAY_MS), 0);
    assert_int_equal(peek(f, c, 3, T0 + 11 * DAY_MS), 1);
    /* fb-2 is still replayable; fb-1 is kept for feedback but past the retry window */
    assert_int_equal(rk_store_begin(f->w, T0 + 10 * DAY_MS + HOUR_MS), 0);
    assert_int_equal(rk_recent_check(f->w, "fb-2", 4, &rp), 0);
    assert_int_equal(rp.label, RK_LABEL_NONE);
    assert_int_equal(rk_recent_check(f->w, "fb-1", 4, &rp), RK_ENOTFOUND); /* past 24 h */
    rk_store_abort(f->w);
    /* past recent_ttl_ms: feedback is refused */
    assert_int_equal(rk_store_begin(f->w, T0 + 10 * DAY_MS + 20 * DAY_MS), 0);
    assert_int_equal(rk_recent_feedback(f->w, "fb-2", 4, RK_LABEL_FRAUD, &fb), RK_ENOTFOUND);
    rk_store_abort(f->w);
    rk_counters_free(c);
}

/* ---- map growth ---------------------------------------------------------- */

static void grow_with(fx *f, int headroom_pct, int entities)
{
    /* A small cache: its records reach LMDB while the requests run (in the
     * requests' own transactions once most of it is dirty), so the map
     * fills; a large one would hold them all and the log is not in LMDB. */
    if (f->cfg.cache_records > 64)
        f->cfg.cache_records = 64;
    f->cfg.map_size = 256 * 1024;
    f->cfg.grow_headroom_pct = headroom_pct;
    fx_open(f);
    rk_counter_def d[2];
    d[0] = def("acct_txn", RK_AGG_COUNT, DAY_MS, 1, RK_F_ACCOUNT);
    d[1] = def("acct_amt", RK_AGG_SUM, DAY_MS, 1, RK_F_ACCOUNT);
    with_field(&d[1], RK_F_AMOUNT);
    rk_counters *c;
    assert_int_equal(rk_counters_new(d, 2, &c, NULL), 0);
    rk_value out[2];
    rk_replay rp;
    char acct[32], id[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < entities; i++) {
            snprintf(acct, sizeof acct, "acct-%d", i);
            snprintf(id, sizeof id, "g-%d-%d", round, i);
            set_str(f->txn, RK_F_ACCOUNT, acct);
            f->txn->v[RK_F_AMOUNT] = rk_value_int(i);
            assert_int_equal(score(f, c, id, T0 + round * 1000, out, &rp), 0);
            assert_int_equal(out[0].i, round + 1);
            assert_int_equal(out[1].i, (int64_t)i * (round + 1));
        }
    }
    assert_int_equal(rk_store_flush(f->s), 0); /* a batch still open is committed */
    /* everything checkpointed: entries_* then do not move between the LMDB
     * snapshot and the cache's pending figures that stats adds up */
    assert_int_equal(rk_store_checkpoint(f->s), 0);
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_true(st.map_growths >= 2);
    assert_true(st.map_bytes > 256 * 1024);
    /* one record per entity and key set: both counters are `by: account`
     * (format 2; format 1 kept one record per counter, entities * 2) */
    assert_int_equal(st.entries_counters, (uint64_t)entities);
    assert_int_equal(st.entries_recent, (uint64_t)entities * 2);
    if (headroom_pct == 0)
        assert_true(st.txn_replays >= 1);
    /* survives a reopen (a private store keeps what a checkpoint wrote) */
    assert_int_equal(rk_store_checkpoint(f->s), 0);
    fx_close(f);
    fx_open(f);
    set_str(f->txn, RK_F_ACCOUNT, "acct-77");
    assert_int_equal(peek(f, c, 1, T0 + 2000), 77 * 2);
    rk_counters_free(c);
}

static void test_map_growth(void **state)
{
    grow_with(*state, 10, 3000);
}

static void test_map_growth_writemap(void **state)
{
    fx *f = *state;
    f->cfg.writemap = true;
    grow_with(f, 0, 2000);
}

static void test_map_full_rerun(void **state)
{
    grow_with(*state, 0, 3000); /* only MDB_MAP_FULL triggers growth: the re-run path */
}

/* ---- batches (private stores) -------------------------------------------- */

static void test_batch(void **state)
{
    fx *f = *state;
    f->cfg.batch = 4;
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    rk_store_stats st;
    set_str(f->txn, RK_F_ACCOUNT, "acct-batch");
    assert_int_equal(score(f, c, "b-1", T0, out, &rp), 0);
    assert_int_equal(out[0].i, 1);
    assert_int_equal(score(f, c, "b-2", T0 + 1, out, &rp), 0);
    assert_int_equal(out[0].i, 2);
    /* nothing committed yet, but the batch sees its own requests: a retry */
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.commits, 0);
    assert_int_equal(score(f, c, "b-1", T0 + 2, out, &rp), 1);
    assert_memory_equal(rp.reply, "reply:b-1:1", rp.reply_len);
    /* an aborted request leaves no trace; the batch's earlier ones stay */
    assert_int_equal(rk_store_begin(f->w, T0 + 3), 0);
    assert_int_equal(rk_counters_apply(f->w, c, f->txn, T0 + 3, NULL, out), 0);
    assert_int_equal(out[0].i, 3);
    assert_int_equal(rk_recent_record(f->w, "b-x", 3, 0, T0 + 3, "x", 1, RK_RECENT_NO_ID), 0);
    rk_store_abort(f->w);
    assert_int_equal(score(f, c, "b-x", T0 + 4, out, &rp), 0); /* not a retry */
    assert_int_equal(out[0].i, 3);
    /* the fourth committed request committed the batch */
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.commits, 1);
    assert_int_equal(st.entries_recent, 3);
    assert_int_equal(score(f, c, "b-3", T0 + 5, out, &rp), 0);
    assert_int_equal(out[0].i, 4);
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.commits, 1);
    assert_int_equal(rk_store_flush(f->s), 0);
    assert_int_equal(rk_store_flush(f->s), 0); /* nothing open: nothing to do */
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.entries_recent, 4);
    /* flush refuses to cut a request in half */
    assert_int_equal(score(f, c, "b-4", T0 + 6, out, &rp), 0);
    assert_int_equal(rk_store_begin(f->w, T0 + 7), 0);
    assert_int_equal(rk_store_flush(f->s), RK_EINVAL);
    rk_store_abort(f->w);
    /* a sweep commits the open batch first (same thread) */
    rk_sweep_result sr;
    assert_int_equal(rk_store_sweep(f->s, T0 + 7, &sr), 0);
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.entries_recent, 5);
    /* closing commits what is open; a private store's cached changes are
     * written only by a checkpoint */
    assert_int_equal(score(f, c, "b-5", T0 + 8, out, &rp), 0);
    assert_int_equal(out[0].i, 6);
    assert_int_equal(rk_store_checkpoint(f->s), 0);
    fx_close(f);
    f->cfg.batch = 1;
    fx_open(f);
    assert_int_equal(peek(f, c, 0, T0 + 9), 6);
    assert_int_equal(rk_store_begin(f->w, T0 + 9), 0);
    assert_int_equal(rk_recent_check(f->w, "b-5", 3, &rp), 0);
    rk_store_abort(f->w);
    fx_close(f);
    /* batching answers before committing: not with strict durability */
    f->cfg.batch = 4;
    f->cfg.durability = RK_DUR_STRICT;
    assert_int_equal(rk_store_open(&f->cfg, &f->s), RK_EINVAL);
    f->s = NULL;
    rk_counters_free(c);
}

/* Map growth inside batches from a tiny map: pre-emptive, and on
 * MDB_MAP_FULL with the batch rebuilt from its redo log. */
static void test_batch_map_growth(void **state)
{
    fx *f = *state;
    f->cfg.batch = 100;
    f->cfg.cache_records = 64; /* records written in place, in the batch's transaction */
    grow_with(f, 10, 3000);
}

static void test_batch_map_full_rebuild(void **state)
{
    fx *f = *state;
    f->cfg.batch = 100;
    f->cfg.cache_records = 64;
    grow_with(f, 0, 3000);
}

/* ---- write-back cache and its log ---------------------------------------- */

typedef struct ckpt_loop {
    rk_store *s;
    atomic_bool stop;
    int failed;      /* a checkpoint's error */
} ckpt_loop;

/* Checkpoints (and trims the log) over and over while requests run. */
static void *checkpoint_loop(void *arg)
{
    ckpt_loop *l = arg;
    while (!atomic_load(&l->stop) && !l->failed)
        l->failed = rk_store_checkpoint(l->s);
    return NULL;
}

/* A child process opens the store (f->cfg), scores n requests with ids
 * "<prefix>-i" over naccounts accounts, checking each count, and _exits
 * without closing the store, as after kill -9. Without ckpt it checks that
 * it took no checkpoint: everything it did is in the write-ahead log only.
 * With ckpt, another thread checkpoints and trims the log all along; then a
 * last pass must leave nothing dirty and the log empty, and 20 more
 * requests (ids up to n + 19) go to the log only. Returns once it has
 * exited cleanly. */
static void requests_then_crash(fx *f, const rk_counters *c, int n, int naccounts,
                                const char *prefix, bool ckpt)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rk_value out[1];
        rk_replay rp;
        char acct[32], id[32];
        fx_open(f);
        ckpt_loop l = {.s = f->s};
        pthread_t t;
        if (ckpt && pthread_create(&t, NULL, checkpoint_loop, &l) != 0)
            _exit(4);
        for (int i = 0; i < n; i++) {
            snprintf(acct, sizeof acct, "acct-%d", i % naccounts);
            snprintf(id, sizeof id, "%s-%d", prefix, i);
            set_str(f->txn, RK_F_ACCOUNT, acct);
            if (score(f, c, id, T0 + i, out, &rp) != 0 || out[0].i != i / naccounts + 1)
                _exit(2);
        }
        if (ckpt) { /* then one pass alone: it leaves nothing dirty and the log empty */
            atomic_store(&l.stop, true);
            pthread_join(t, NULL);
            if (l.failed || rk_store_checkpoint(f->s) != 0)
                _exit(4);
        }
        rk_store_stats st;
        if (rk_store_stats_get(f->s, &st) != 0 ||
            (ckpt ? st.cache_dirty != 0 || st.wal_entries != 0
                  : st.wal_entries != (uint64_t)n || st.checkpoints != 0))
            _exit(3);
        if (ckpt) { /* and the last requests are in the log only */
            for (int i = n; i < n + 20; i++) {
                snprintf(acct, sizeof acct, "acct-%d", i % naccounts);
                snprintf(id, sizeof id, "%s-%d", prefix, i);
                set_str(f->txn, RK_F_ACCOUNT, acct);
                if (score(f, c, id, T0 + i, out, &rp) != 0 || out[0].i != i / naccounts + 1)
                    _exit(2);
            }
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Requests committed but never checkpointed survive a process that stops
 * without closing the store: the next open replays the write-ahead log. */
static void test_wal_recovery(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000; /* the child never checkpoints */
    rk_counters *c = acct_txn_counter();
    requests_then_crash(f, c, 200, 20, "w", false);
    fx_open(f);
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.wal_entries, 0); /* replayed and emptied at open */
    assert_int_equal(st.entries_counters, 20);
    assert_int_equal(st.entries_recent, 200);
    set_str(f->txn, RK_F_ACCOUNT, "acct-7");
    assert_int_equal(peek(f, c, 0, T0 + 300), 10);
    /* a retry of a request the child answered is found */
    assert_replayed(f, "w-199", T0 + 300, "reply:w-199:10");
    rk_counters_free(c);
}

/* Checkpoints write copies of dirty records while requests keep changing
 * them: a record changed during the write must stay dirty, or, once evicted
 * from this small cache, it would be read back older from LMDB (a count
 * off by the lost increments), and the log must not be trimmed past its
 * change (the counts after the crash). The small cache also makes requests
 * write through to LMDB and assist, next to the checkpointer's writes. */
static void test_checkpoint_while_requests_run(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000; /* the test's own thread checkpoints */
    f->cfg.cache_records = 64;
    rk_counters *c = acct_txn_counter();
    requests_then_crash(f, c, 3000, 10, "cw", true);
    fx_open(f);
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.entries_counters, 10);
    assert_int_equal(st.entries_recent, 3020);
    char acct[32];
    for (int a = 0; a < 10; a++) {
        snprintf(acct, sizeof acct, "acct-%d", a);
        set_str(f->txn, RK_F_ACCOUNT, acct);
        assert_int_equal(peek(f, c, 0, T0 + 4000), 302);
    }
    assert_replayed(f, "cw-3019", T0 + 4000, "reply:cw-3019:302");
    rk_counters_free(c);
}

/* Recovery that needs a larger map: the child fills a tiny map with log
 * entries only; replaying them writes every record a second time, into its
 * database, and the map must grow during the replay. */
static void test_wal_recovery_grows_map(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000;
    f->cfg.map_size = 256 * 1024;
    f->cfg.grow_headroom_pct = 0; /* the map grows only when full */
    rk_counters *c = acct_txn_counter();
    requests_then_crash(f, c, 1500, 1500, "g", false);
    fx_open(f);
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.wal_entries, 0);
    assert_true(st.map_growths >= 1); /* grown while replaying */
    assert_int_equal(st.entries_counters, 1500);
    assert_int_equal(st.entries_recent, 1500);
    set_str(f->txn, RK_F_ACCOUNT, "acct-1234");
    assert_int_equal(peek(f, c, 0, T0 + 2000), 1);
    rk_counters_free(c);
}

/* Checkpoints move cached changes into their databases and trim the log;
 * an aborted request leaves neither cache nor log changed. */
static void test_checkpoint_and_abort(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000; /* checkpoints only when the test asks */
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    set_str(f->txn, RK_F_ACCOUNT, "acct-ckpt");
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "k-%d", i);
        assert_int_equal(score(f, c, id, T0 + i, out, &rp), 0);
    }
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.wal_entries, 5);
    assert_int_equal(st.cache_dirty, 6); /* one counter record, five decided ones */
    /* aborted: the counter is back at 5 and the log did not grow */
    assert_int_equal(rk_store_begin(f->w, T0 + 10), 0);
    assert_int_equal(rk_counters_apply(f->w, c, f->txn, T0 + 10, NULL, out), 0);
    assert_int_equal(out[0].i, 6);
    rk_store_abort(f->w);
    assert_int_equal(peek(f, c, 0, T0 + 10), 5);
    assert_int_equal(rk_store_checkpoint(f->s), 0);
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.wal_entries, 0);
    assert_int_equal(st.cache_dirty, 0);
    assert_true(st.checkpoints >= 1);
    assert_int_equal(st.entries_counters, 1);
    assert_int_equal(st.entries_recent, 5);
    /* once checkpointed, clean records may leave the cache: reads come from LMDB */
    fx_close(f);
    f->cfg.cache_records = 64;
    fx_open(f);
    assert_int_equal(peek(f, c, 0, T0 + 11), 5);
    rk_counters_free(c);
}

/* When the checkpointer does not run (here: held back by taking its mutex;
 * in production, starved on a saturated machine), requests write the oldest
 * dirty records themselves once three quarters of the cache is dirty: the
 * cache keeps clean room and the log stays short instead of growing with
 * every request. */
static void test_checkpoint_assist(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000;
    f->cfg.cache_records = 64;
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    char acct[32], id[32];
    rk_store_stats st;
    /* no assertion while the mutex is held: teardown's close needs it */
    char bad[160] = "";
    pthread_mutex_lock(&f->s->ckpt_run); /* a woken checkpointer waits here */
    atomic_fetch_add(&f->s->gate_waiters, 1); /* other requests wait: the assist must not yield */
    for (int i = 0; i < 400 && !bad[0]; i++) {
        snprintf(acct, sizeof acct, "acct-%d", i % 10);
        snprintf(id, sizeof id, "a-%d", i);
        set_str(f->txn, RK_F_ACCOUNT, acct);
        if (score(f, c, id, T0 + i, out, &rp) != 0 || out[0].i != i / 10 + 1)
            snprintf(bad, sizeof bad, "request %d failed or counted wrong", i);
        else if (rk_store_stats_get(f->s, &st) != 0)
            snprintf(bad, sizeof bad, "request %d: no stats", i);
        else if (st.cache_dirty > 64 / 4 * 3 + 2 || st.wal_entries > 64) /* +2: one request's records */
            snprintf(bad, sizeof bad, "request %d: %" PRIu64 " dirty records, %" PRIu64
                     " log entries", i, st.cache_dirty, st.wal_entries);
    }
    atomic_fetch_sub(&f->s->gate_waiters, 1);
    pthread_mutex_unlock(&f->s->ckpt_run);
    if (bad[0])
        fail_msg("%s", bad);
    assert_int_equal(st.checkpoints, 0); /* the requests did it all */
    assert_true(st.entries_recent == 400);
    fx_close(f);
    fx_open(f);
    set_str(f->txn, RK_F_ACCOUNT, "acct-3");
    assert_int_equal(peek(f, c, 0, T0 + 500), 40);
    rk_counters_free(c);
}

/* Twenty requests, one per account acct-0..19, ids prefix-0..19 at T0 + t. */
static void score_twenty(fx *f, const rk_counters *c, const char *prefix, int64_t t)
{
    char acct[32], id[32];
    rk_value out[1];
    rk_replay rp;
    for (int i = 0; i < 20; i++) {
        snprintf(acct, sizeof acct, "acct-%d", i);
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        set_str(f->txn, RK_F_ACCOUNT, acct);
        assert_int_equal(score(f, c, id, T0 + t + i, out, &rp), 0);
    }
}

/* A checkpoint pass, which must leave nothing dirty; returns its transactions. */
static uint64_t checkpoint_chunks(fx *f)
{
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    uint64_t before = st.checkpoints;
    assert_int_equal(rk_store_checkpoint(f->s), 0);
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.cache_dirty, 0);
    return st.checkpoints - before;
}

/* While a request waits for the store (here: made to look so), the
 * checkpointer stops copying a chunk after one record, so the request gets
 * in; the pass still writes every record, one per transaction. Without a
 * waiter, chunks of up to 64: the 40 records in one. */
static void test_checkpoint_yields_to_requests(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000;
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    score_twenty(f, c, "y", 0); /* a counter record and a decided one each */
    atomic_fetch_add(&f->s->gate_waiters, 1);
    uint64_t chunks = checkpoint_chunks(f);
    atomic_fetch_sub(&f->s->gate_waiters, 1);
    assert_int_equal(chunks, 40);
    score_twenty(f, c, "z", 100);
    assert_int_equal(checkpoint_chunks(f), 1);
    fx_close(f);
    fx_open(f);
    set_str(f->txn, RK_F_ACCOUNT, "acct-7");
    assert_int_equal(peek(f, c, 0, T0 + 500), 2);
    rk_counters_free(c);
}

/* The checkpointer thread holds gate (what requests wait for) under the
 * normal policy only while it copies and marks a chunk, and is back under
 * SCHED_IDLE afterwards, where it can leave SCHED_IDLE at all. */
static void test_checkpointer_settles(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 300; /* the next pass is long after the checks below */
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    set_str(f->txn, RK_F_ACCOUNT, "acct-ck");
    assert_int_equal(score(f, c, "ck-1", T0, out, &rp), 0);
    rk_store_stats st;
    for (int i = 0; i < 400; i++) {
        assert_int_equal(rk_store_stats_get(f->s, &st), 0);
        if (st.cache_dirty == 0 && st.checkpoints > 0)
            break;
        usleep(5000);
    }
    assert_int_equal(st.cache_dirty, 0);
    usleep(5000); /* past the settle that follows the chunk's commit */
    rk_thread_prio *p = &f->s->ckpt_prio;
    assert_false(atomic_load(&p->boosted));
    if (atomic_load(&p->idle)) {
        int policy;
        struct sched_param sp;
        assert_int_equal(pthread_getschedparam(p->thread, &policy, &sp), 0);
        assert_int_equal(policy, SCHED_IDLE);
    }
    rk_counters_free(c);
}

/* A periodic flush thread that has not come round for two intervals (here:
 * made to look so) is boosted by the next commit, and settles back to idle
 * after its next round. Where SCHED_IDLE could not be left, it runs at
 * nice 10 and nothing is boosted. */
static void test_syncer_boost(void **state)
{
    fx *f = *state;
    f->cfg.sync_interval_ms = 50;
    fx_open(f);
    rk_counters *c = acct_txn_counter();
    rk_value out[1];
    rk_replay rp;
    set_str(f->txn, RK_F_ACCOUNT, "acct-sync");
    rk_thread_prio *p = &f->s->sync_prio;
    atomic_store(&f->s->sync_seen_ns, 0);
    assert_int_equal(score(f, c, "s-1", T0, out, &rp), 0);
    bool idle = atomic_load(&p->idle);
    assert_int_equal(atomic_load(&p->boosted), idle);
    for (int i = 0; i < 400 && atomic_load(&p->boosted); i++)
        usleep(5000);
    assert_false(atomic_load(&p->boosted));
    rk_counters_free(c);
}

/* ---- sweeper ------------------------------------------------------------- */

static void test_sweeper(void **state)
{
    fx *f = *state;
    f->cfg.sweep_batch = 100;
    fx_open(f);
    rk_counter_def d[2];
    d[0] = def("ip_1h", RK_AGG_COUNT, HOUR_MS, 1, RK_F_IP);
    d[1] = def("ip_7d", RK_AGG_COUNT, 7 * DAY_MS, 1, RK_F_IP);
    rk_counters *c;
    assert_int_equal(rk_counters_new(d, 2, &c, NULL), 0);
    rk_value out[2];
    rk_replay rp;
    char ip[32], id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        snprintf(id, sizeof id, "sw-%d", i);
        set_str(f->txn, RK_F_IP, ip);
        assert_int_equal(score(f, c, id, T0 + i, out, &rp), 0);
    }
    /* 2 h later: the 1 h records are idle, the 7 d ones and decided records are not */
    rk_sweep_result sr;
    assert_int_equal(rk_store_sweep(f->s, T0 + 2 * HOUR_MS, &sr), 0);
    assert_int_equal(sr.counters, 300);
    assert_int_equal(sr.recent, 0);
    assert_true(sr.batches >= 3 + 2);
    /* a 7 d counter still reads right after the sweep */
    set_str(f->txn, RK_F_IP, "10.0.0.5");
    assert_int_equal(peek(f, c, 1, T0 + 2 * HOUR_MS), 1);
    assert_int_equal(peek(f, c, 0, T0 + 2 * HOUR_MS), 0);
    /* 8 days later everything is gone */
    assert_int_equal(rk_store_sweep(f->s, T0 + 8 * DAY_MS, &sr), 0);
    assert_int_equal(sr.counters, 300);
    assert_int_equal(sr.recent, 300);
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(f->s, &st), 0);
    assert_int_equal(st.entries_counters, 0);
    assert_int_equal(st.entries_recent, 0);
    assert_int_equal(st.swept_counters, 600);
    assert_int_equal(st.sweeps, 2);
    rk_counters_free(c);
}

/* ---- backup and the raw-identifier scan ---------------------------------- */

static bool file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* Whether any write-ahead log segment in dir contains needle; *n gets how
 * many segments there are. */
static bool log_contains(const char *dir, const char *needle, int *n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    *n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!rk_store_is_log_file(e->d_name))
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        found |= file_contains(path, needle);
        (*n)++;
    }
    closedir(d);
    return found;
}

static void test_backup_restore_and_no_raw_values(void **state)
{
    fx *f = *state;
    f->cfg.checkpoint_ms = 3600 * 1000; /* the backup must carry the changes in its log */
    fx_open(f);
    rk_counter_def d[3];
    d[0] = def("acct_txn", RK_AGG_COUNT, DAY_MS, 1, RK_F_ACCOUNT);
    d[1] = def("dev_cards", RK_AGG_DISTINCT, DAY_MS, 1, RK_F_DEVICE);
    with_field(&d[1], RK_F_CARD);
    d[2] = def("email_amt", RK_AGG_SUM, DAY_MS, 1, RK_F_EMAIL);
    with_field(&d[2], RK_F_AMOUNT);
    rk_counters *c;
    assert_int_equal(rk_counters_new(d, 3, &c, NULL), 0);
    rk_value out[3];
    rk_replay rp;
    const char *accts[] = {"ACCT-RAW-7f3a9c", "ACCT-RAW-1b2e44"};
    const char *cards[] = {"CARD-RAW-0a0b0c", "CARD-RAW-0d0e0f", "CARD-RAW-101112"};
    for (int i = 0; i < 30; i++) {
        char id[40];
        snprintf(id, sizeof id, "TXNID-RAW-%04d", i);
        set_str(f->txn, RK_F_ACCOUNT, accts[i % 2]);
        set_str(f->txn, RK_F_DEVICE, "DEVICE-RAW-abcdef");
        set_str(f->txn, RK_F_CARD, cards[i % 3]);
        set_str(f->txn, RK_F_EMAIL, "raw.person@example.com");
        f->txn->v[RK_F_AMOUNT] = rk_value_int(10 + i);
        assert_int_equal(score(f, c, id, T0 + i * 1000, out, &rp), 0);
    }
    assert_int_equal(rk_store_begin(f->w, T0), 0);
    rk_value ip = rk_value_str("LISTVAL-RAW-203.0.113.9", 23);
    assert_int_equal(rk_dlist_add(f->w, "blocked_ips", &ip, 0), 0);
    assert_int_equal(rk_store_commit(f->w), 0);

    assert_int_equal(rk_store_backup(f->s, f->aux), 0);
    assert_int_equal(rk_store_backup(f->s, f->aux), RK_EEXISTS); /* never over a store */
    int segs;
    assert_true(log_contains(f->aux, "reply:", &segs)); /* the decisions, in the log only */
    assert_true(segs >= 1);
    /* requests after the backup are not in it */
    set_str(f->txn, RK_F_ACCOUNT, accts[0]);
    assert_int_equal(score(f, c, "after-backup", T0 + 40000, out, &rp), 0);
    assert_int_equal(out[0].i, 16);
    assert_int_equal(rk_store_sync(f->s), 0);
    const char *raw[] = {"ACCT-RAW", "CARD-RAW", "DEVICE-RAW", "raw.person", "TXNID-RAW",
                         "LISTVAL-RAW", "after-backup"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        assert_false(log_contains(f->dir, raw[i], &segs));
        assert_false(log_contains(f->aux, raw[i], &segs));
    }
    fx_close(f);

    char path[160];
    struct stat st;
    snprintf(path, sizeof path, "%s/secret", f->aux);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/data.mdb", f->aux);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* no raw identifier in the data file (nor in the backup) */
    char live[160];
    snprintf(live, sizeof live, "%s/data.mdb", f->dir);
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        assert_false(file_contains(live, raw[i]));
        assert_false(file_contains(path, raw[i]));
    }
    /* stored replies keep no id ("TXNID-RAW" above), yet the rest of them is there */
    assert_true(file_contains(live, "reply:"));

    /* restore = open the copy as the data directory */
    f->cfg.dir = f->aux;
    fx_open(f);
    set_str(f->txn, RK_F_ACCOUNT, accts[0]);
    assert_int_equal(peek(f, c, 0, T0 + 40000), 15);
    set_str(f->txn, RK_F_DEVICE, "DEVICE-RAW-abcdef");
    assert_int_equal(peek(f, c, 1, T0 + 40000), 3);
    set_str(f->txn, RK_F_EMAIL, "raw.person@example.com");
    int64_t sum = 0;
    for (int i = 0; i < 30; i++)
        sum += 10 + i;
    assert_int_equal(peek(f, c, 2, T0 + 40000), sum);
    assert_int_equal(rk_store_begin(f->w, T0 + 40000), 0);
    assert_int_equal(rk_recent_check(f->w, "TXNID-RAW-0003", 14, &rp), 0);
    assert_int_equal(rk_recent_check(f->w, "after-backup", 12, &rp), RK_ENOTFOUND);
    bool has;
    assert_int_equal(rk_dlist_has(f->w, "blocked_ips", &ip, &has), 0);
    assert_true(has);
    rk_store_abort(f->w);
    rk_counters_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_sum_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_and_too_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_definition_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_reply_without_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_sealed_v1_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth_writemap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_map_full_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_recovery_grows_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_while_requests_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_assist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_yields_to_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpointer_settles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syncer_boost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweeper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_restore_and_no_raw_values, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
