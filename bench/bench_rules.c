/* bench_rules: what riskd costs inside the process, on the shipped rule set.
 *
 * 1. Rule evaluation: rk_ruleset_eval over a mix of decoded transactions,
 *    reported as ns per decision and ns per rule (decision cost / rule count).
 * 2. The whole in-process pipeline, decode → state → rules → encode → record
 *    and commit, through rk_pipeline_run exactly as a worker runs it, with the
 *    state store in a temporary directory: median and tail per decision
 *    (DESIGN.md section 8 budget: median ≤ 10 µs).
 * Each figure is the median of several repetitions, so a noisy neighbour on
 * the shared machine moves single repetitions, not the reported number. */
#include <getopt.h>

#include "bench_util.h"
#include "engine/engine.h"
#include "engine/pipeline.h"
#include "lib/arena.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/proto.h"
#include "rules/ruleset.h"

#define NTXN 4096
#define REPS 7

int main(int argc, char **argv)
{
    const char *rules = "rules/default.yaml";
    int json = 0, iters = 200000, writemap = 1;
    static const struct option lo[] = {{"rules", 1, 0, 'r'},    {"iters", 1, 0, 'i'},
                                       {"no-writemap", 0, 0, 'w'}, {"json", 0, 0, 'j'},
                                       {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'r': rules = optarg; break;
        case 'i': iters = atoi(optarg); break;
        case 'j': json = 1; break;
        case 'w': writemap = 0; break;
        case 'h':
            printf("usage: bench_rules [--rules FILE] [--iters N] [--no-writemap] [--json]\n"
                   "--no-writemap opens the pipeline's store without MDB_WRITEMAP (riskd.yaml\n"
                   "writemap: false); riskd's default is on.\n");
            return 0;
        default:
            return 2;
        }
    }

    rk_log_set_level(RK_LOG_WARN);
    rk_diag diag;
    rk_ruleset *rs;
    char dbuf[1200];
    if (rk_ruleset_load(rules, &rs, &diag) != 0) {
        fprintf(stderr, "%s\n", rk_diag_format(&diag, dbuf, sizeof dbuf));
        return 1;
    }
    int nrules = rk_ruleset_nrules(rs);

    /* Decode the transactions once; evaluation reads them in turn. */
    msgpack_sbuffer *msgs = calloc(NTXN, sizeof *msgs);
    rk_txn *txns = calloc(NTXN, sizeof *txns);
    for (int i = 0; i < NTXN; i++) {
        msgpack_sbuffer_init(&msgs[i]);
        bench_make_request(&msgs[i], i);
        rk_request req;
        rk_proto_err perr;
        if (rk_proto_decode((const uint8_t *)msgs[i].data, msgs[i].size, rk_ruleset_schema(rs),
                            &req, &txns[i], &perr) != 0) {
            fprintf(stderr, "decode: %s\n", perr.msg);
            return 1;
        }
    }

    rk_arena arena;
    rk_arena_init(&arena, 64 * 1024);
    static rk_eval_ctx ctx;
    ctx.arena = &arena;
    static rk_decision dec;
    double eval_ns[REPS];
    uint64_t verdicts[RK_VERDICT__COUNT] = {0};
    for (int r = 0; r < REPS; r++) {
        int64_t t0 = rk_clock_ns();
        for (int i = 0; i < iters; i++) {
            rk_arena_reset(&arena);
            rk_ruleset_eval(rs, &txns[i % NTXN], &ctx, &dec);
            verdicts[dec.verdict]++;
        }
        eval_ns[r] = (double)(rk_clock_ns() - t0) / iters;
    }
    double per_decision = bench_median(eval_ns, REPS);

    /* The full pipeline through a worker, timed per call: with the state
     * store (periodic durability, a fresh temporary data directory), every
     * request a new id, so each one updates the rule set's counters and is
     * recorded, exactly as in riskd. */
    char tmpdir[] = "/tmp/rk-bench-rules-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    rk_engine_config cfg;
    rk_engine_config_default(&cfg);
    cfg.rules_path = rules;
    cfg.store.dir = tmpdir;
    cfg.store.sweep_interval_ms = 0;
    cfg.store.writemap = writemap;
    rk_engine *eng;
    rk_worker *w;
    if (rk_engine_open(&cfg, &eng, &diag) != 0 || rk_worker_new(eng, &w) != 0) {
        fprintf(stderr, "engine: %s\n", rk_diag_format(&diag, dbuf, sizeof dbuf));
        return 1;
    }
    int npipe = iters / 4;
    int64_t *lat = malloc(sizeof *lat * (size_t)npipe);
    double p50s[REPS], p99s[REPS];
    msgpack_sbuffer fresh;
    msgpack_sbuffer_init(&fresh);
    int seq = NTXN; /* ids past the decoded set's: never a retry */
    for (int r = 0; r < REPS; r++) {
        for (int i = 0; i < npipe; i++) {
            const uint8_t *reply;
            msgpack_sbuffer_clear(&fresh);
            bench_make_request(&fresh, seq++);
            int64_t t0 = rk_clock_ns();
            rk_pipeline_run(w, (const uint8_t *)fresh.data, fresh.size, false, &reply);
            lat[i] = rk_clock_ns() - t0;
        }
        bench_pct p = bench_percentiles(lat, (size_t)npipe);
        p50s[r] = p.p50;
        p99s[r] = p.p99;
    }
    double pipe_p50 = bench_median(p50s, REPS), pipe_p99 = bench_median(p99s, REPS);

    uint64_t total = verdicts[RK_ALLOW] + verdicts[RK_REVIEW] + verdicts[RK_BLOCK];
    if (json) {
        printf("{\"ruleset\": \"%s\", \"rules\": %d, \"eval_ns_per_decision\": %.1f, "
               "\"eval_ns_per_rule\": %.2f, \"pipeline_p50_us\": %.2f, \"pipeline_p99_us\": %.2f, "
               "\"mix\": {\"allow\": %.3f, \"review\": %.3f, \"block\": %.3f}}\n",
               rk_ruleset_label(rs), nrules, per_decision, per_decision / nrules, pipe_p50, pipe_p99,
               (double)verdicts[RK_ALLOW] / total, (double)verdicts[RK_REVIEW] / total,
               (double)verdicts[RK_BLOCK] / total);
    } else {
        printf("rule set %s: %d rules, decision mix allow %.1f%% review %.1f%% block %.1f%%\n",
               rk_ruleset_label(rs), nrules, 100.0 * verdicts[RK_ALLOW] / total,
               100.0 * verdicts[RK_REVIEW] / total, 100.0 * verdicts[RK_BLOCK] / total);
        printf("rule evaluation: %.0f ns per decision, %.1f ns per rule (median of %d x %d)\n",
               per_decision, per_decision / nrules, REPS, iters);
        printf("pipeline decode->encode: p50 %.2f us, p99 %.2f us (budget: median <= 10 us)\n",
               pipe_p50, pipe_p99);
    }

    free(lat);
    msgpack_sbuffer_destroy(&fresh);
    rk_worker_free(w);
    rk_engine_close(eng);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
    for (int i = 0; i < NTXN; i++)
        msgpack_sbuffer_destroy(&msgs[i]);
    free(msgs);
    free(txns);
    return 0;
}
