/* bench_counters: what the state store costs a request, against bare LMDB.
 *
 * Six workloads, each one write transaction per request, measured in the
 * same run on the same disk and alternated round by round so that machine
 * noise lands on all of them:
 *   store  what the pipeline does for a request with the first --counters
 *          (default 8) counters of the shipped rule set: rk_store_begin, the
 *          retry check (rk_recent_check), rk_counters_apply over every counter
 *          (keyed hashing, window arithmetic, distinct sets, one record per
 *          entity and key set), the decision record with a 250-byte reply
 *          (rk_recent_record, encrypted), rk_store_commit;
 *   store1 one counter update on its own: rk_store_begin, rk_counters_apply
 *          with the rule set's first counter only, rk_store_commit (the
 *          counter's record read, updated and written through the store,
 *          keyed hashing and window arithmetic included);
 *   bare1  a bare LMDB transaction: mdb_get + mdb_put of one 280-byte record
 *          (the same entity's key as store1's) + mdb_txn_commit. DESIGN.md
 *          section 8 budgets "counters: <= 1.5x a bare LMDB get+put+commit":
 *          store1/bare1 is that ratio for one counter update, and
 *          store/bare1 the same for a whole request's transaction;
 *   bare1p the same in an environment opened without MDB_WRITEMAP (pwrite
 *          commits, LMDB's default), when the others use it;
 *   bare8  bare LMDB doing one get + put per counter (records keyed and
 *          sized as format 1 of the store kept them, one per counter), plus
 *          the retry lookup and the decision record, then commit;
 *   bareg  the LMDB floor of the store's own layout: one get + put through a
 *          cursor per key set (records sized as the store's, a ring per
 *          counter), the retry lookup and the decision record, then commit,
 *          in an environment of its own. store/bareg is what the store adds
 *          to the LMDB work it cannot avoid.
 * The environments are opened as the store opens its own (MDB_NOSYNC, no
 * fsync on the request path: periodic durability; MDB_WRITEMAP unless
 * --no-writemap); entity populations and event times come from
 * bench_make_request, so records are found and updated as in real traffic.
 * Reports the median over rounds of each workload's mean and p50/p99 per
 * transaction, and the ratios.
 *
 * Then batch mode, as a backtest uses it: the same store transaction per
 * request in a private store with rk_store_config.batch = --batch (default
 * 1000), requests per second over --n x --rounds requests, single-threaded,
 * the final rk_store_flush included. */
#include <getopt.h>
#include <lmdb.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/proto.h"
#include "rules/ruleset.h"
#include "state/counters.h"
#include "state/keyhash.h"
#include "state/recent.h"
#include "state/store.h"

#define NMSG 8192       /* distinct decoded requests cycled through */
#define REC_BYTES 280   /* a ring record: 24-byte header + 32 int64 slots */
#define REPLY_BYTES 250 /* a typical score reply */
#define ROUNDS_MAX 32

#define NWL 6           /* workloads */

typedef struct workload {
    const char *name;        /* "store", "bare1", "bare1p", "bare8", "bareg", "store1" */
    double mean[ROUNDS_MAX]; /* ns per transaction, per round */
    double p50[ROUNDS_MAX];
    double p99[ROUNDS_MAX];
} workload;

typedef struct raw_env {
    MDB_env *env;
    MDB_dbi db;
} raw_env;

static void die_mdb(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
    exit(1);
}

static void raw_open(raw_env *r, const char *dir, bool writemap)
{
    int rc;
    unsigned flags = MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD | (writemap ? MDB_WRITEMAP : 0);
    if ((rc = mdb_env_create(&r->env)) || (rc = mdb_env_set_mapsize(r->env, (size_t)1 << 30)) ||
        (rc = mdb_env_set_maxdbs(r->env, 4)) || (rc = mdb_env_open(r->env, dir, flags, 0600)))
        die_mdb("raw env", rc);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "counters", MDB_CREATE, &r->db)) || (rc = mdb_txn_commit(txn)))
        die_mdb("raw db", rc);
}

/* One bare transaction: nrec get+put pairs on the records keys[0..nrec) of
 * sizes size[0..nrec) (through one cursor when cursor is set, as the store
 * does), plus (extra) a missed lookup and a put of a reply-sized record under
 * rkey. */
static void raw_txn(raw_env *r, const uint8_t (*keys)[24], const size_t *size, int nrec,
                    bool extra, bool cursor, const uint8_t rkey[16])
{
    static uint8_t val[RK_COUNTERS_MAX * (REC_BYTES + 16) + 64];
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
    if (rc || (cursor && (rc = mdb_cursor_open(txn, r->db, &cur))))
        die_mdb("begin", rc);
    for (int i = 0; i < nrec; i++) {
        MDB_val k = {24, (void *)keys[i]}, v;
        if ((cur ? mdb_cursor_get(cur, &k, &v, MDB_SET) : mdb_get(txn, r->db, &k, &v)) == 0 &&
            v.mv_size == size[i])
            memcpy(val, v.mv_data, size[i]);
        val[i % size[i]]++;
        v = (MDB_val){size[i], val};
        if ((rc = cur ? mdb_cursor_put(cur, &k, &v, 0) : mdb_put(txn, r->db, &k, &v, 0)))
            die_mdb("put", rc);
    }
    if (extra) {
        MDB_val k = {16, (void *)rkey}, v;
        if (cur)
            mdb_cursor_get(cur, &k, &v, MDB_SET);
        else
            mdb_get(txn, r->db, &k, &v);
        v = (MDB_val){REPLY_BYTES + 64, val};
        if ((rc = cur ? mdb_cursor_put(cur, &k, &v, 0) : mdb_put(txn, r->db, &k, &v, 0)))
            die_mdb("put", rc);
    }
    if ((rc = mdb_txn_commit(txn)))
        die_mdb("commit", rc);
}

static void summarize(workload *w, int round, int64_t *lat, int n, int64_t total_ns)
{
    bench_pct p = bench_percentiles(lat, (size_t)n);
    w->mean[round] = (double)total_ns / n;
    w->p50[round] = p.p50 * 1000;
    w->p99[round] = p.p99 * 1000;
}

/* The pipeline's state calls for request s (decoded as t) on w: begin,
 * retry check, counters, decision record, commit. Exits on failure. */
static void store_request(rk_store_worker *sw, const rk_ruleset *rs, const rk_counters *ctrs,
                          rk_txn *t, int s, rk_eval_ctx *ctx, rk_arena *arena)
{
    static bool when[RK_COUNTERS_MAX];
    static rk_value out[RK_COUNTERS_MAX];
    static uint8_t reply[REPLY_BYTES];
    memset(reply, 0xa5, sizeof reply);
    char id[32];
    int idlen = snprintf(id, sizeof id, "bench-%010d", s);
    rk_replay rp;
    t->v[RK_F_TS] = rk_value_int(1795000000000LL + (int64_t)s * 250);
    rk_arena_reset(arena);
    rk_ruleset_counter_when(rs, t, ctx, when);
    if (rk_store_begin(sw, 1795000000000LL) != 0 ||
        rk_recent_check(sw, id, (size_t)idlen, &rp) != RK_ENOTFOUND ||
        rk_counters_apply(sw, ctrs, t, t->v[RK_F_TS].i, when, out) != 0 ||
        rk_recent_record(sw, id, (size_t)idlen, 0, t->v[RK_F_TS].i, reply, sizeof reply,
                         RK_RECENT_NO_ID) != 0 ||
        rk_store_commit(sw) != 0) {
        fprintf(stderr, "store transaction failed\n");
        exit(1);
    }
}

/* One counter update in its own transaction (one: a set of one counter). */
static void store_one(rk_store_worker *sw, const rk_ruleset *rs, const rk_counters *one,
                      rk_txn *t, int s, rk_eval_ctx *ctx, rk_arena *arena)
{
    static bool when[RK_COUNTERS_MAX];
    static rk_value out[RK_COUNTERS_MAX];
    t->v[RK_F_TS] = rk_value_int(1795000000000LL + (int64_t)s * 250);
    rk_arena_reset(arena);
    rk_ruleset_counter_when(rs, t, ctx, when); /* the first counter's comes first */
    if (rk_store_begin(sw, 1795000000000LL) != 0 ||
        rk_counters_apply(sw, one, t, t->v[RK_F_TS].i, when, out) != 0 ||
        rk_store_commit(sw) != 0) {
        fprintf(stderr, "store transaction failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *rules = "rules/default.yaml";
    int n = 20000, rounds = 7, json = 0, want = 8, batch = 1000, only_batch = 0;
    rk_store_config cfg;
    rk_store_config_default(&cfg);
    bool writemap = cfg.writemap;
    static const struct option lo[] = {{"rules", 1, 0, 'r'},    {"n", 1, 0, 'n'},
                                       {"rounds", 1, 0, 'k'},   {"counters", 1, 0, 'c'},
                                       {"json", 0, 0, 'j'},     {"writemap", 0, 0, 'w'},
                                       {"no-writemap", 0, 0, 'W'}, {"batch", 1, 0, 'b'},
                                       {"only-batch", 0, 0, 'B'},
                                       {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'r': rules = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 'k': rounds = atoi(optarg); break;
        case 'c': want = atoi(optarg); break;
        case 'j': json = 1; break;
        case 'w': writemap = true; break;
        case 'W': writemap = false; break;
        case 'b': batch = atoi(optarg); break;
        case 'B': only_batch = 1; break;
        case 'h':
            printf("usage: bench_counters [--rules FILE] [--counters N] [--n TXNS] [--rounds K]\n"
                   "                      [--writemap | --no-writemap] [--batch N] [--only-batch]\n"
                   "                      [--json]\n"
                   "Cost of a request's state transaction (counters of the rule set, retry\n"
                   "check, decision record) against bare LMDB get+put+commit, then the\n"
                   "throughput of a batching private store (--batch, default 1000).\n"
                   "The store and the bare environments are opened MDB_WRITEMAP as the\n"
                   "store's default is (--no-writemap: neither is). --only-batch skips the\n"
                   "per-request workloads (for profiling the batch loop).\n");
            return 0;
        default:
            return 2;
        }
    }
    if (n <= 0 || rounds <= 0 || rounds > ROUNDS_MAX || batch < 1)
        return 2;
    rk_log_set_level(RK_LOG_WARN);

    rk_diag diag;
    rk_ruleset *rs;
    char dbuf[1200];
    if (rk_ruleset_load(rules, &rs, &diag) != 0) {
        fprintf(stderr, "%s\n", rk_diag_format(&diag, dbuf, sizeof dbuf));
        return 1;
    }
    const rk_counters *all = rk_ruleset_counters(rs);
    int have = all ? rk_counters_count(all) : 0;
    if (want < 1 || want > have) {
        fprintf(stderr, "%s declares %d counters; --counters %d is not among them\n", rules,
                have, want);
        return 1;
    }
    /* the first `want` definitions, as their own set (identities unchanged) */
    rk_counter_def defs[RK_COUNTERS_MAX];
    for (int c = 0; c < want; c++)
        defs[c] = *rk_counters_def(all, c);
    rk_counters *ctrs, *one;
    if (rk_counters_new(defs, want, &ctrs, NULL) != 0 || rk_counters_new(defs, 1, &one, NULL) != 0)
        return 1;
    int ncounters = want;

    char tmpdir[] = "/tmp/rk-bench-counters-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char sdir[128], rdir[128], pdir[128], gdir[128], bdir[128];
    snprintf(sdir, sizeof sdir, "%s/store", tmpdir);
    snprintf(rdir, sizeof rdir, "%s/raw", tmpdir);
    snprintf(pdir, sizeof pdir, "%s/rawp", tmpdir);
    snprintf(gdir, sizeof gdir, "%s/rawg", tmpdir);
    snprintf(bdir, sizeof bdir, "%s/batch", tmpdir);
    mkdir(rdir, 0700);
    mkdir(pdir, 0700);
    mkdir(gdir, 0700);
    cfg.dir = sdir;
    cfg.sweep_interval_ms = 0;
    cfg.map_size = (size_t)1 << 30;
    cfg.writemap = writemap;
    rk_store *store;
    rk_store_worker *sw;
    if (rk_store_open(&cfg, &store) != 0 || rk_store_worker_new(store, &sw) != 0) {
        fprintf(stderr, "cannot open the store in %s\n", sdir);
        return 1;
    }
    raw_env raw, rawp, rawg;
    raw_open(&raw, rdir, writemap);
    raw_open(&rawp, pdir, false);
    raw_open(&rawg, gdir, writemap);

    /* Decoded requests, and for the bare runs the same entities' keys: one
     * 24-byte key per counter (entity digest ++ counter identity) as format 1
     * of the store built them, and one per key set (entity digest ++ key-set
     * number) for the group layout, whose records hold a ring per counter. */
    msgpack_sbuffer *msgs = calloc(NMSG, sizeof *msgs);
    rk_txn *txns = calloc(NMSG, sizeof *txns);
    uint8_t(*keys)[RK_COUNTERS_MAX][24] = calloc(NMSG, sizeof *keys);
    uint8_t(*gkeys)[RK_COUNTERS_MAX][24] = calloc(NMSG, sizeof *gkeys);
    size_t csize[RK_COUNTERS_MAX], gsize[RK_COUNTERS_MAX];
    int group[RK_COUNTERS_MAX], ngroups = 0;
    for (int c = 0; c < ncounters; c++) {
        const rk_counter_def *d = rk_counters_def(ctrs, c);
        csize[c] = REC_BYTES;
        int g = 0;
        while (g < c && !(rk_counters_def(ctrs, g)->nby == d->nby &&
                          memcmp(rk_counters_def(ctrs, g)->by_slot, d->by_slot,
                                 sizeof(int) * (size_t)d->nby) == 0))
            g++;
        group[c] = g < c ? group[g] : ngroups++;
        gsize[group[c]] = (g < c ? gsize[group[c]] : 8) + 16 + REC_BYTES;
    }
    rk_keyhash *kh;
    if (rk_keyhash_open(rdir, &kh) != 0)
        return 1;
    for (int i = 0; i < NMSG; i++) {
        msgpack_sbuffer_init(&msgs[i]);
        bench_make_request(&msgs[i], i);
        rk_request req;
        rk_proto_err perr;
        if (rk_proto_decode((const uint8_t *)msgs[i].data, msgs[i].size, rk_ruleset_schema(rs),
                            &req, &txns[i], &perr) != 0) {
            fprintf(stderr, "decode: %s\n", perr.msg);
            return 1;
        }
        for (int c = 0; c < ncounters; c++) {
            const rk_counter_def *d = rk_counters_def(ctrs, c);
            const rk_value *vs[RK_COUNTER_BY_MAX];
            for (int k = 0; k < d->nby; k++)
                vs[k] = &txns[i].v[d->by_slot[k]];
            uint8_t h[RK_HASH_LEN] = {0};
            rk_keyhash_values(kh, vs, d->nby, h);
            uint64_t id = rk_counters_id(ctrs, c), gid = (uint64_t)group[c];
            memcpy(keys[i][c], h, RK_HASH_LEN);
            memcpy(keys[i][c] + RK_HASH_LEN, &id, sizeof id);
            memcpy(gkeys[i][group[c]], h, RK_HASH_LEN);
            memcpy(gkeys[i][group[c]] + RK_HASH_LEN, &gid, sizeof gid);
        }
    }
    static rk_arena arena;
    static rk_eval_ctx ctx;
    rk_arena_init(&arena, 64 * 1024);
    ctx.arena = &arena;

    workload wl[NWL] = {{.name = "store"}, {.name = "bare1"}, {.name = "bare1p"},
                        {.name = "bare8"}, {.name = "bareg"}, {.name = "store1"}};
    int64_t *lat = malloc(sizeof *lat * (size_t)n);
    int seq = 0; /* request sequence: ids never repeat */
    for (int round = -1; round < (only_batch ? -1 : rounds); round++) {
        for (int k = 0; k < NWL; k++) {
            int which = (k + (round < 0 ? 0 : round)) % NWL;
            int64_t t_all = rk_clock_ns();
            for (int j = 0; j < n; j++) {
                int s = seq + j, m = s % NMSG;
                int64_t t0 = rk_clock_ns();
                if (which == 0) {
                    store_request(sw, rs, ctrs, &txns[m], s, &ctx, &arena);
                } else if (which == 5) {
                    store_one(sw, rs, one, &txns[m], s, &ctx, &arena);
                } else {
                    uint8_t rkey[16];
                    memcpy(rkey, &s, sizeof s);
                    memset(rkey + sizeof s, 0x5a, sizeof rkey - sizeof s);
                    if (which == 4)
                        raw_txn(&rawg, (const uint8_t(*)[24])gkeys[m], gsize, ngroups, true,
                                true, rkey);
                    else
                        raw_txn(which == 2 ? &rawp : &raw, (const uint8_t(*)[24])keys[m], csize,
                                which == 3 ? ncounters : 1, which == 3, false, rkey);
                }
                lat[j] = rk_clock_ns() - t0;
            }
            int64_t total = rk_clock_ns() - t_all;
            if (round >= 0)
                summarize(&wl[which], round, lat, n, total);
            if (which == 0 || which == 5)
                seq += n;
        }
    }

    /* Batch mode: a private store committing every `batch` requests. */
    rk_store_config bcfg = cfg;
    bcfg.dir = bdir;
    bcfg.batch = batch;
    rk_store *bstore;
    rk_store_worker *bw;
    if (rk_store_open(&bcfg, &bstore) != 0 || rk_store_worker_new(bstore, &bw) != 0) {
        fprintf(stderr, "cannot open the batching store in %s\n", bdir);
        return 1;
    }
    int nbatch = n * rounds;
    int64_t tb = rk_clock_ns();
    for (int j = 0; j < nbatch; j++)
        store_request(bw, rs, ctrs, &txns[j % NMSG], j, &ctx, &arena);
    if (rk_store_flush(bstore) != 0) {
        fprintf(stderr, "flush failed\n");
        return 1;
    }
    double batch_rps = nbatch / ((double)(rk_clock_ns() - tb) / 1e9);
    rk_store_stats bst;
    rk_store_stats_get(bstore, &bst);
    rk_store_worker_free(bw);
    rk_store_close(bstore);

    double m[NWL], p50[NWL], p99[NWL];
    for (int k = 0; k < NWL; k++) {
        m[k] = bench_median(wl[k].mean, (size_t)rounds);
        p50[k] = bench_median(wl[k].p50, (size_t)rounds);
        p99[k] = bench_median(wl[k].p99, (size_t)rounds);
    }
    rk_store_stats st;
    rk_store_stats_get(store, &st);
    if (json) {
        printf("{\"counters\": %d, \"writemap\": %s, \"txns_per_round\": %d, \"rounds\": %d, "
               "\"store_ns\": %.0f, \"bare1_ns\": %.0f, \"bare1p_ns\": %.0f, \"bare8_ns\": %.0f, "
               "\"store_p50_ns\": %.0f, \"store_p99_ns\": %.0f, \"bare1_p50_ns\": %.0f, "
               "\"bare8_p50_ns\": %.0f, \"ratio_bare1\": %.3f, \"ratio_bare1p\": %.3f, "
               "\"ratio_bare8\": %.3f, \"bareg_ns\": %.0f, \"ratio_bareg\": %.3f, "
               "\"store_file_bytes\": %llu, \"batch\": %d, "
               "\"batch_rps\": %.0f, \"batch_commits\": %llu, \"store1_ns\": %.0f, "
               "\"store1_p50_ns\": %.0f, \"ratio_store1_bare1\": %.3f, \"one_counter\": \"%s\", "
               "\"store_per_counter_ns\": %.0f, \"ratio_per_counter_bare1\": %.3f}\n",
               ncounters, writemap ? "true" : "false", n, rounds, m[0], m[1], m[2], m[3], p50[0],
               p99[0], p50[1], p50[3], m[0] / m[1], m[0] / m[2], m[0] / m[3], m[4], m[0] / m[4],
               (unsigned long long)st.file_bytes, batch, batch_rps,
               (unsigned long long)bst.commits, m[5], p50[5], m[5] / m[1], defs[0].name,
               m[0] / ncounters, m[0] / ncounters / m[1]);
    } else {
        printf("state transaction per request, %d of the %d counters of %s, %d txns x %d "
               "rounds (periodic durability%s, no fsync on the path)\n",
               ncounters, have, rk_ruleset_label(rs), n, rounds, writemap ? ", writemap" : "");
        printf("%-6s %10s %10s %10s   (ns per transaction, median over rounds)\n", "", "mean",
               "p50", "p99");
        const char *what[NWL] = {
            "begin, retry check, %d counters, decision record, commit",
            "bare LMDB: 1 get + 1 put + commit",
            "bare LMDB without writemap: 1 get + 1 put + commit",
            "bare LMDB: %d get+put (one per counter) + lookup + record + commit",
            "bare LMDB: %d get+put via a cursor (one per key set) + lookup + record + commit",
            "one counter update (%s) in its own transaction: begin, counter, commit"};
        for (int k = 0; k < NWL; k++) {
            printf("%-6s %10.0f %10.0f %10.0f   ", wl[k].name, m[k], p50[k], p99[k]);
            if (k == 5)
                printf(what[k], defs[0].name);
            else
                printf(what[k], k == 4 ? ngroups : ncounters);
            printf("\n");
        }
        printf("one counter update: store1/bare1 %.2fx (budget 1.5x); per counter inside a "
               "request: store/%d/bare1 %.2fx\n",
               m[5] / m[1], ncounters, m[0] / ncounters / m[1]);
        printf("whole request: store/bare1 %.2fx, store/bare1p %.2fx, store/bare8 %.2fx, "
               "store/bareg %.2fx\n",
               m[0] / m[1], m[0] / m[2], m[0] / m[3], m[0] / m[4]);
        printf("batch mode (private store, batch=%d): %.0f requests/s single-threaded, "
               "%d requests in %llu commits\n",
               batch, batch_rps, nbatch, (unsigned long long)bst.commits);
    }

    free(lat);
    rk_keyhash_free(kh);
    mdb_env_close(raw.env);
    mdb_env_close(rawp.env);
    mdb_env_close(rawg.env);
    rk_store_worker_free(sw);
    rk_store_close(store);
    rk_counters_free(ctrs);
    rk_counters_free(one);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
    for (int i = 0; i < NMSG; i++)
        msgpack_sbuffer_destroy(&msgs[i]);
    free(msgs);
    free(txns);
    free(keys);
    free(gkeys);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : 1;
}
