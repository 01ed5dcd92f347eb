/* Durability: strict-mode group commit with several threads (every commit is
 * covered by a completed fsync before it returns, fsyncs are shared, counts
 * exact), periodic mode's flush thread, and a crash test: a child process
 * scoring requests in strict mode, and in periodic mode with MDB_WRITEMAP, is
 * killed with SIGKILL at random moments; after each kill the store opens
 * cleanly, every acknowledged request is there, and retrying requests around
 * the kill counts each exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/log.h"
#include "state/counters.h"
#include "state/recent.h"
#include "state/store.h"
#include "state/store_int.h"

#define T0 (1700000000000LL)
#define DAY_MS (24LL * 3600 * 1000)

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

typedef struct fx {
    char dir[64];         /* data directory */
    rk_counters *c;       /* one count counter by account, 90 d */
} fx;

static int setup(void **state)
{
    rk_log_set_level(RK_LOG_WARN);
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/rk_strict_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    rk_counter_def d;
    memset(&d, 0, sizeof d);
    strcpy(d.name, "acct_txn_90d");
    d.nby = 1;
    d.by_slot[0] = RK_F_ACCOUNT;
    strcpy(d.by_name[0], "account");
    d.window_ms = 90 * DAY_MS;
    d.agg = RK_AGG_COUNT;
    d.field_slot = -1;
    assert_int_equal(rk_counters_new(&d, 1, &f->c, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rk_counters_free(f->c);
    free(f);
    return 0;
}

static size_t g_cache = RK_CACHE_AUTO; /* cache_records of every store a test opens */

static void config(rk_store_config *cfg, const char *dir, int durability)
{
    rk_store_config_default(cfg);
    cfg->dir = dir;
    cfg->durability = durability;
    cfg->sweep_interval_ms = 0;
    cfg->cache_records = g_cache;
}

/* The pipeline's sequence for one request on account acct. Returns 1 when
 * replayed, 0 when counted, a negative code on failure. */
static int score(rk_store_worker *w, const rk_counters *c, rk_txn *txn, const char *id, int64_t now,
                 int64_t *value)
{
    int rc = rk_store_begin(w, now);
    if (rc != 0)
        return rc;
    rk_replay rp;
    rc = rk_recent_check(w, id, strlen(id), &rp);
    if (rc == 0)
        return rk_store_commit(w) == 0 ? 1 : RK_ESTORE;
    rk_value out[1];
    if ((rc = rk_counters_apply(w, c, txn, now, NULL, out)) != 0 ||
        (rc = rk_recent_record(w, id, strlen(id), 0, now, "ok", 2, RK_RECENT_NO_ID)) != 0) {
        rk_store_abort(w);
        return rc;
    }
    *value = out[0].i;
    return rk_store_commit(w);
}

/* ---- group commit -------------------------------------------------------- */

enum { THREADS = 4, PER_THREAD = 60 };

typedef struct thr {
    rk_store *s;          /* shared store */
    const rk_counters *c; /* shared counters */
    int no;               /* thread number */
    int failures;         /* commits not durable when they returned, or errors */
} thr;

static void *worker_main(void *arg)
{
    thr *t = arg;
    rk_store_worker *w;
    rk_txn *txn = calloc(1, sizeof *txn);
    if (rk_store_worker_new(t->s, &w) != 0 || !txn) {
        t->failures++;
        free(txn);
        return NULL;
    }
    txn->v[RK_F_ACCOUNT] = rk_value_str("acct-shared", 11);
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", t->no, i);
        int64_t v;
        if (score(w, t->c, txn, id, T0 + i, &v) != 0) {
            t->failures++;
            continue;
        }
        /* strict: this commit is already covered by a completed fsync */
        pthread_mutex_lock(&t->s->sync_mu);
        if (t->s->synced_seq < w->last_seq)
            t->failures++;
        pthread_mutex_unlock(&t->s->sync_mu);
    }
    rk_store_worker_free(w);
    free(txn);
    return NULL;
}

static void test_group_commit(void **state)
{
    fx *f = *state;
    rk_store_config cfg;
    config(&cfg, f->dir, RK_DUR_STRICT);
    rk_store *s;
    assert_int_equal(rk_store_open(&cfg, &s), 0);
    pthread_t th[THREADS];
    thr t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (thr){s, f->c, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &t[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].failures, 0);
    }
    rk_store_stats st;
    assert_int_equal(rk_store_stats_get(s, &st), 0);
    assert_int_equal(st.durable_commits, THREADS * PER_THREAD);
    assert_true(st.syncs <= st.commits);
    print_message("strict: %llu commits shared %llu fsyncs\n", (unsigned long long)st.commits,
                  (unsigned long long)st.syncs);
    /* counts exact: none lost under concurrency */
    rk_store_worker *w;
    assert_int_equal(rk_store_worker_new(s, &w), 0);
    rk_txn *txn = calloc(1, sizeof *txn);
    txn->v[RK_F_ACCOUNT] = rk_value_str("acct-shared", 11);
    int64_t v = 0;
    assert_int_equal(score(w, f->c, txn, "final", T0 + 1000, &v), 0);
    assert_int_equal(v, THREADS * PER_THREAD + 1);
    free(txn);
    rk_store_worker_free(w);
    rk_store_close(s);
}

static void test_periodic_flush(void **state)
{
    fx *f = *state;
    rk_store_config cfg;
    config(&cfg, f->dir, RK_DUR_PERIODIC);
    cfg.sync_interval_ms = 5;
    rk_store *s;
    assert_int_equal(rk_store_open(&cfg, &s), 0);
    rk_store_worker *w;
    assert_int_equal(rk_store_worker_new(s, &w), 0);
    rk_txn *txn = calloc(1, sizeof *txn);
    txn->v[RK_F_ACCOUNT] = rk_value_str("acct-p", 6);
    int64_t v;
    assert_int_equal(score(w, f->c, txn, "p-1", T0, &v), 0);
    /* the flush thread catches up on its own (poll its progress; bounded) */
    rk_store_stats st;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(rk_store_stats_get(s, &st), 0);
        if (st.durable_commits >= w->last_seq)
            break;
        usleep(1000);
    }
    assert_true(st.durable_commits >= w->last_seq);
    assert_true(st.syncs >= 1);
    free(txn);
    rk_store_worker_free(w);
    rk_store_close(s);
}

/* ---- crash test ---------------------------------------------------------- */

/* Child: scores ids from first up, retrying [retry_from, first) before, and
 * writes each id number to fd once rk_store_commit has returned. */
static void child(const char *dir, int durability, const rk_counters *c, int retry_from,
                  int first, int fd)
{
    rk_store_config cfg;
    config(&cfg, dir, durability);
    rk_store *s;
    rk_store_worker *w;
    rk_txn *txn = calloc(1, sizeof *txn);
    if (rk_store_open(&cfg, &s) != 0 || rk_store_worker_new(s, &w) != 0 || !txn)
        _exit(2);
    txn->v[RK_F_ACCOUNT] = rk_value_str("acct-crash", 10);
    for (int n = retry_from;; n++) {
        char id[32];
        snprintf(id, sizeof id, "crash-%d", n);
        int64_t v;
        int rc = score(w, c, txn, id, T0 + n, &v);
        if (rc < 0)
            _exit(3);
        if (n >= first && write(fd, &n, sizeof n) != (ssize_t)sizeof n)
            _exit(4);
    }
}

/* Kills a scoring child with SIGKILL four times; after each kill, every
 * request it had seen committed is there and counted exactly once. */
static void kill9_rounds(fx *f, int durability)
{
    int next = 0;      /* first id never sent yet */
    int acked_max = -1;
    unsigned seed = 12345;
    for (int round = 0; round < 4; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        int retry_from = acked_max - 3 > 0 ? acked_max - 3 : 0; /* retries around the last kill */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(f->dir, durability, f->c, retry_from, next, p[1]);
        }
        close(p[1]);
        /* let it run for some acks plus a random delay, then kill -9 */
        int got = 0, n;
        while (got < 15 + round * 5 && read(p[0], &n, sizeof n) == (ssize_t)sizeof n) {
            acked_max = n;
            got++;
        }
        usleep((useconds_t)(rand_r(&seed) % 4000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(p[0], &n, sizeof n) == (ssize_t)sizeof n) /* acks sent before the kill */
            acked_max = n;
        close(p[0]);
        assert_true(acked_max >= next);
        next = acked_max + 1;

        /* the store opens cleanly; every acked id is there; counted exactly once */
        rk_store_config cfg;
        config(&cfg, f->dir, durability);
        rk_store *s;
        assert_int_equal(rk_store_open(&cfg, &s), 0);
        rk_store_worker *w;
        assert_int_equal(rk_store_worker_new(s, &w), 0);
        assert_int_equal(rk_store_begin(w, T0 + acked_max), 0);
        int present = 0, beyond = 0;
        for (int i = 0; i <= acked_max + 50; i++) {
            char id[32];
            snprintf(id, sizeof id, "crash-%d", i);
            rk_replay rp;
            int rc = rk_recent_check(w, id, strlen(id), &rp);
            if (i <= acked_max)
                assert_int_equal(rc, 0);
            if (rc == 0) {
                present++;
                beyond += i > acked_max;
            }
        }
        rk_value out[1];
        bool when[1] = {false};
        rk_txn *txn = calloc(1, sizeof *txn);
        txn->v[RK_F_ACCOUNT] = rk_value_str("acct-crash", 10);
        assert_int_equal(rk_counters_apply(w, f->c, txn, T0 + acked_max, when, out), 0);
        assert_int_equal(out[0].i, present);
        rk_store_abort(w);
        free(txn);
        rk_store_worker_free(w);
        rk_store_close(s);
        next += beyond; /* committed but not acked: the next child retries from before them */
    }
}

static void test_kill9(void **state)
{
    kill9_rounds(*state, RK_DUR_STRICT);
}

/* Periodic durability with MDB_WRITEMAP (its default): a commit is in the
 * shared map, so in the page cache, when it returns; a killed process loses
 * none of them, fsynced or not. */
static void test_kill9_periodic_writemap(void **state)
{
    rk_store_config cfg;
    config(&cfg, ((fx *)*state)->dir, RK_DUR_PERIODIC);
    assert_true(cfg.writemap);
    kill9_rounds(*state, RK_DUR_PERIODIC);
}

/* Strict durability with the write-back cache turned on (it is off by
 * default in strict mode): acknowledged changes live in the write-ahead log
 * until a checkpoint, and recovery replays them. */
static void test_kill9_strict_cache(void **state)
{
    g_cache = RK_CACHE_DEFAULT;
    kill9_rounds(*state, RK_DUR_STRICT);
    g_cache = RK_CACHE_AUTO;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_periodic_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_periodic_writemap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_strict_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
