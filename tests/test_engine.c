/* The engine and the pipeline, in-process: score decisions and reasons, ping,
 * admin-only ops refused on the gateway side, malformed input, too_large,
 * reload (success, failure, snapshots held across a swap, reloads racing with
 * scoring), and the stats map. Then the state store through the pipeline:
 * velocity counters, retries answered from the store, dynamic lists and their
 * expiry, feedback, counter definitions changing on reload, the degraded
 * fallback when the store fails, no raw identifier in the data file, and
 * identical counter values between a live run and a replay of its traffic.
 * Then the model step: model_score and the rules reading it, explanations
 * adding up to the margin, the model reloading with its rule set (also while
 * scoring, and not when its file is broken), and parity with XGBoost's own
 * predictions for a 100-tree depth-6 model through the whole pipeline.
 * Requests are built with msgpack-c's packer and replies read back with its
 * unpacker, as a gateway would. Every engine has its own temporary data
 * directory and an injected wall clock, so list expiry and the retry window
 * are tested without sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "support/rk_test.h"

#include "engine/engine.h"
#include "engine/pipeline.h"
#include "lib/clock.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/err.h"
#include "lib/log.h"
#include "model/model.h"
#include "rules/ruleset.h"
#include "state/store.h"

static char tmpdir[256];
static char rules_path[512];

#define HOUR_MS (3600LL * 1000)
#define T0 1795000000000LL /* event and wall time the state tests start at */
static int64_t test_now = T0; /* the engines' wall clock */

static int64_t test_clock(void)
{
    return test_now;
}

/* The rule set of most tests: version 1. */
static const char *const RULES_V1 =
    "ruleset: test\n"
    "version: \"1\"\n"
    "thresholds:\n"
    "  review: 50\n"
    "  block: 80\n"
    "lists:\n"
    "  bad_countries: [KP, IR]\n"
    "rules:\n"
    "  - id: big_amount\n"
    "    when: amount > 100000\n"
    "    score: 60\n"
    "  - id: huge_amount\n"
    "    when: amount > 1000000\n"
    "    score: 30\n"
    "  - id: bad_country\n"
    "    when: country in @bad_countries\n"
    "    action: block\n"
    "  - id: vip\n"
    "    when: account == \"vip\"\n"
    "    action: allow\n"
    "  - id: has_time\n"
    "    when: ts > 1600000000000\n"
    "    score: 0\n"
    "  - id: per_mcc\n"
    "    when: amount / (mcc - mcc) > 1\n"
    "    score: 1\n"
    "  - id: small_candidate\n"
    "    when: amount < 100\n"
    "    score: 90\n"
    "    shadow: true\n";

/* Version 2: different label, and big amounts are blocked outright. */
static const char *const RULES_V2 = "ruleset: test\n"
                                    "version: \"2\"\n"
                                    "rules:\n"
                                    "  - id: big_amount_v2\n"
                                    "    when: amount > 100000\n"
                                    "    action: block\n";

/* A typo on line 5, column 11. */
static const char *const RULES_BROKEN = "ruleset: test\n"
                                        "version: \"3\"\n"
                                        "rules:\n"
                                        "  - id: typo\n"
                                        "    when: amout > 1\n"
                                        "    action: block\n";

static void write_rules(const char *text)
{
    /* Write-and-rename, as an editor or a deploy tool would: a reload never
     * sees half a file. */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", rules_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, rules_path), 0);
}

typedef struct fixture {
    rk_engine *e;           /* over rules_path */
    rk_worker *w;           /* the test's one thread of scoring */
    msgpack_unpacked reply; /* the last reply, decoded */
    char data[300];         /* the engine's data directory */
} fixture;

/* An engine over rules_path with its store in tmpdir/NAME. map_max 0: the
 * default (the map grows freely). Returns 0, or -1 after printing why. */
static int engine_open(fixture *fx, const char *name, size_t max_body, size_t map_max)
{
    snprintf(fx->data, sizeof fx->data, "%s/%s", tmpdir, name);
    rk_engine_config cfg;
    rk_engine_config_default(&cfg);
    cfg.rules_path = rules_path;
    cfg.max_body = max_body;
    cfg.store.dir = fx->data;
    cfg.store.sweep_interval_ms = 0;
    cfg.clock_ms = test_clock;
    if (map_max) {
        cfg.store.map_size = cfg.store.map_max = map_max;
        cfg.store.grow_headroom_pct = 0;
        /* a small cache, so that records reach the map while requests run */
        cfg.store.cache_records = 64;
    }
    rk_diag d;
    if (rk_engine_open(&cfg, &fx->e, &d) < 0) {
        char buf[1200];
        fprintf(stderr, "rk_engine_open: %s\n", rk_diag_format(&d, buf, sizeof buf));
        return -1;
    }
    return rk_worker_new(fx->e, &fx->w) < 0 ? -1 : 0;
}

static void engine_close(fixture *fx)
{
    rk_worker_free(fx->w);
    rk_engine_close(fx->e);
    fx->w = NULL;
    fx->e = NULL;
}

static int open_fixture(void **state, const char *rules, size_t max_body, size_t map_max)
{
    rk_log_set_level(getenv("RK_TEST_LOG") ? 0 : RK_LOG_ERROR + 1); /* quiet: reload and store errors are expected here */
    test_now = T0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rk_test_engine_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(rules_path, sizeof rules_path, "%s/rules.yaml", tmpdir);
    write_rules(rules);
    fixture *fx = calloc(1, sizeof *fx);
    msgpack_unpacked_init(&fx->reply);
    *state = fx;
    return engine_open(fx, "data", max_body, map_max);
}

static int setup(void **state)
{
    return open_fixture(state, RULES_V1, 0, 0);
}

static int setup_small(void **state)
{
    return open_fixture(state, RULES_V1, 256, 0);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    msgpack_unpacked_destroy(&fx->reply);
    engine_close(fx);
    free(fx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- building requests ------------------------------------------------------ */

/* A score request; country NULL and mcc < 0 leave those fields out. */
static void build_score(msgpack_sbuffer *sb, const char *id, const char *account, int64_t amount,
                        const char *country, int64_t mcc)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (country != NULL) + (mcc >= 0));
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "account");
    pk_str(&pk, account);
    pk_str(&pk, "amount");
    msgpack_pack_int64(&pk, amount);
    if (country) {
        pk_str(&pk, "country");
        pk_str(&pk, country);
    }
    if (mcc >= 0) {
        pk_str(&pk, "mcc");
        msgpack_pack_int64(&pk, mcc);
    }
}

static void build_op(msgpack_sbuffer *sb, const char *op)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "op");
    pk_str(&pk, op);
    pk_str(&pk, "id");
    pk_str(&pk, "op-1");
}

/* ---- reading replies -------------------------------------------------------- */

static uint64_t uint_of(const msgpack_object *o)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return o->via.u64;
}

/* Runs one request and decodes the reply into fx->reply; returns its root. */
static const msgpack_object *run_raw(fixture *fx, const void *msg, size_t len, bool admin)
{
    const uint8_t *reply = NULL;
    size_t n = rk_pipeline_run(fx->w, msg, len, admin, &reply);
    assert_non_null(reply);
    assert_true(n > 0);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&fx->reply, (const char *)reply, n, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, n);
    assert_int_equal(fx->reply.data.type, MSGPACK_OBJECT_MAP);
    return &fx->reply.data;
}

static const msgpack_object *run(fixture *fx, msgpack_sbuffer *sb, bool admin)
{
    const msgpack_object *r = run_raw(fx, sb->data, sb->size, admin);
    msgpack_sbuffer_destroy(sb);
    return r;
}

static const msgpack_object *score(fixture *fx, const char *id, const char *account,
                                   int64_t amount, const char *country, int64_t mcc)
{
    msgpack_sbuffer sb;
    build_score(&sb, id, account, amount, country, mcc);
    return run(fx, &sb, false);
}

static void assert_reasons(const msgpack_object *r, const char *key, const char *const *want,
                           uint32_t n)
{
    const msgpack_object *a = get(r, key);
    assert_non_null(a);
    assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(a->via.array.size, n);
    for (uint32_t i = 0; i < n; i++)
        assert_str(&a->via.array.ptr[i], want[i]);
}

static void assert_error(const msgpack_object *r, const char *code, const char *msg)
{
    const msgpack_object *err = get(r, "error");
    assert_non_null(err);
    assert_str(get(err, "code"), code);
    if (msg)
        assert_str(get(err, "message"), msg);
    assert_null(get(r, "decision"));
}

/* ---- tests ------------------------------------------------------------------ */

static void test_score_decisions(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = score(fx, "t1", "acct", 5000, "FR", -1);
    assert_str(get(r, "id"), "t1");
    assert_str(get(r, "decision"), "allow");
    assert_str(get(r, "ruleset"), "test@1");
    const char *const has_time[] = {"has_time"};
    /* `ts` was absent: the server clock stood in, so has_time matched */
    assert_reasons(r, "reasons", has_time, 1);
    assert_non_null(get(r, "took_us"));
    assert_int_equal(get(r, "model_score")->type, MSGPACK_OBJECT_NIL);
    assert_null(get(r, "shadow")); /* no shadow rule matched */
    assert_str(get(r, "shadow_decision"), "allow");

    r = score(fx, "t2", "acct", 200000, NULL, -1);
    assert_str(get(r, "decision"), "review"); /* 60 >= review threshold */
    assert_true(get(r, "score")->via.f64 == 60.0);
    const char *const big[] = {"big_amount", "has_time"};
    assert_reasons(r, "reasons", big, 2);

    r = score(fx, "t3", "acct", 2000000, NULL, -1);
    assert_str(get(r, "decision"), "block"); /* 60 + 30 >= block threshold */
    const char *const huge[] = {"big_amount", "huge_amount", "has_time"};
    assert_reasons(r, "reasons", huge, 3);

    r = score(fx, "t4", "acct", 10, "KP", -1);
    assert_str(get(r, "decision"), "block");
    const char *const kp[] = {"bad_country", "has_time"};
    assert_reasons(r, "reasons", kp, 2);
    const char *const small[] = {"small_candidate"};
    assert_reasons(r, "shadow", small, 1);
    assert_str(get(r, "shadow_decision"), "block");

    r = score(fx, "t5", "vip", 2000000, "KP", -1); /* an allow rule outranks everything */
    assert_str(get(r, "decision"), "allow");
}

static void test_ping(void **state)
{
    fixture *fx = *state;
    msgpack_sbuffer sb;
    build_op(&sb, "ping");
    const msgpack_object *r = run(fx, &sb, false);
    assert_int_equal(get(r, "ok")->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(get(r, "ok")->via.boolean);
}

static void test_admin_ops_refused_on_gateway(void **state)
{
    fixture *fx = *state;
    msgpack_sbuffer sb;
    build_op(&sb, "reload");
    const msgpack_object *r = run(fx, &sb, false);
    assert_error(r, "unsupported", "op 'reload' is only accepted on the admin endpoint");
    assert_str(get(r, "id"), "op-1");
    build_op(&sb, "stats");
    r = run(fx, &sb, false);
    assert_error(r, "unsupported", "op 'stats' is only accepted on the admin endpoint");
    /* the admin endpoint accepts score too (riskctl score --admin) */
    build_score(&sb, "a1", "acct", 1, NULL, -1);
    r = run(fx, &sb, true);
    assert_str(get(r, "decision"), "allow");
    assert_int_equal(rk_stats_errors(rk_engine_stats(fx->e), RK_WERR_UNSUPPORTED), 2);
}

static void test_malformed_then_keeps_working(void **state)
{
    fixture *fx = *state;
    static const uint8_t junk[] = {0xc1, 0xff, 0x00};   /* 0xc1 is never valid msgpack */
    static const uint8_t not_map[] = {0x93, 0x01, 0x02, 0x03}; /* [1, 2, 3] */
    static const uint8_t truncated[] = {0x82, 0xa2, 'i', 'd'};
    assert_error(run_raw(fx, junk, sizeof junk, false), "bad_request", NULL);
    assert_error(run_raw(fx, not_map, sizeof not_map, false), "bad_request", NULL);
    assert_error(run_raw(fx, truncated, sizeof truncated, false), "bad_request", NULL);
    assert_error(run_raw(fx, "", 0, false), "bad_request", NULL);

    /* a missing required field names the field */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "id");
    pk_str(&pk, "m1");
    pk_str(&pk, "account");
    pk_str(&pk, "a");
    const msgpack_object *r = run(fx, &sb, false);
    assert_error(r, "bad_request", NULL);
    assert_str(get(r, "id"), "m1");
    const msgpack_object *m = get(get(r, "error"), "message");
    assert_non_null(m);
    assert_non_null(memmem(m->via.str.ptr, m->via.str.size, "amount", 6));

    /* unknown op */
    build_op(&sb, "explode");
    assert_error(run(fx, &sb, false), "unsupported", NULL);

    r = score(fx, "ok1", "acct", 1, NULL, -1);
    assert_str(get(r, "decision"), "allow");
    assert_int_equal(rk_stats_errors(rk_engine_stats(fx->e), RK_WERR_BAD_REQUEST), 5);
}

static void test_too_large(void **state)
{
    fixture *fx = *state; /* max_body 256 */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char pad[400];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    msgpack_pack_map(&pk, 4);
    pk_str(&pk, "id");
    pk_str(&pk, "big1");
    pk_str(&pk, "account");
    pk_str(&pk, "a");
    pk_str(&pk, "amount");
    msgpack_pack_int(&pk, 1);
    pk_str(&pk, "note");
    pk_str(&pk, pad);
    char want[128];
    snprintf(want, sizeof want, "request body is %zu bytes; the limit is 256", sb.size);
    const msgpack_object *r = run(fx, &sb, false);
    assert_error(r, "too_large", want);
    assert_str(get(r, "id"), "big1"); /* read from the first max_body bytes */
    r = score(fx, "small", "acct", 1, NULL, -1);
    assert_str(get(r, "decision"), "allow");
    assert_int_equal(rk_stats_errors(rk_engine_stats(fx->e), RK_WERR_TOO_LARGE), 1);
}

static void test_reject(void **state)
{
    fixture *fx = *state;
    msgpack_sbuffer sb;
    build_score(&sb, "busy1", "acct", 1, NULL, -1);
    const uint8_t *reply;
    size_t n = rk_pipeline_reject(fx->w, (const uint8_t *)sb.data, sb.size, RK_WERR_OVERLOADED,
                                  "too many requests in flight; retry later", &reply);
    msgpack_sbuffer_destroy(&sb);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&fx->reply, (const char *)reply, n, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_error(&fx->reply.data, "overloaded", "too many requests in flight; retry later");
    assert_str(get(&fx->reply.data, "id"), "busy1");
}

static void test_reload_changes_rules(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = score(fx, "r1", "acct", 200000, NULL, -1);
    assert_str(get(r, "decision"), "review");
    assert_str(get(r, "ruleset"), "test@1");

    write_rules(RULES_V2);
    msgpack_sbuffer sb;
    build_op(&sb, "reload");
    r = run(fx, &sb, true);
    assert_true(get(r, "ok")->via.boolean);
    assert_str(get(r, "ruleset"), "test@2");

    r = score(fx, "r2", "acct", 200000, NULL, -1);
    assert_str(get(r, "decision"), "block");
    assert_str(get(r, "ruleset"), "test@2");
    const char *const v2[] = {"big_amount_v2"};
    assert_reasons(r, "reasons", v2, 1);
    assert_null(get(r, "shadow_decision")); /* v2 has no shadow rule */

    char label[64];
    rk_engine_label(fx->e, label, sizeof label);
    assert_string_equal(label, "test@2");
}

static void test_reload_failure_keeps_old_rules(void **state)
{
    fixture *fx = *state;
    write_rules(RULES_BROKEN);
    rk_diag d;
    assert_true(rk_engine_reload(fx->e, &d) < 0);
    char want[700], got[1200];
    snprintf(want, sizeof want, "%s:5:11: unknown field 'amout' (did you mean 'amount'?)",
             rules_path);
    assert_string_equal(rk_diag_format(&d, got, sizeof got), want);

    /* the admin op reports the same text */
    msgpack_sbuffer sb;
    build_op(&sb, "reload");
    const msgpack_object *r = run(fx, &sb, true);
    assert_false(get(r, "ok")->via.boolean);
    assert_error(r, "bad_request", want);

    r = score(fx, "f1", "acct", 200000, NULL, -1);
    assert_str(get(r, "ruleset"), "test@1");
    assert_str(get(r, "decision"), "review");
    assert_int_equal(rk_stats_reloads_failed(rk_engine_stats(fx->e)), 2);

    build_op(&sb, "stats");
    r = run(fx, &sb, true);
    const msgpack_object *rl = get(r, "reloads");
    assert_int_equal(uint_of(get(rl, "failed")), 2);
    assert_int_equal(uint_of(get(rl, "ok")), 0);
    assert_str(get(rl, "last_error"), want);
    assert_true(uint_of(get(rl, "last_error_ms")) > 1600000000000ull);
    assert_int_equal(get(rl, "last_ok_ms")->type, MSGPACK_OBJECT_NIL);
    assert_str(get(r, "ruleset"), "test@1");
}

static void test_stats_map(void **state)
{
    fixture *fx = *state;
    score(fx, "s1", "acct", 200000, NULL, -1);  /* review: big_amount, has_time */
    score(fx, "s2", "acct", 10, "KP", -1);      /* block: bad_country, has_time; shadow small */
    score(fx, "s3", "acct", 500, NULL, 7);      /* allow; per_mcc divides by zero */
    static const uint8_t junk[] = {0xc1};
    run_raw(fx, junk, 1, false);

    msgpack_sbuffer sb;
    build_op(&sb, "stats");
    const msgpack_object *r = run(fx, &sb, true);
    static const char *const keys[] = {"ruleset", "uptime_s",  "workers", "inflight",
                                       "requests", "decisions", "degraded", "replayed",
                                       "errors",  "arith_errors", "reloads", "store",
                                       "decision_log", "rules",   "shadow_rules"};
    assert_int_equal(r->via.map.size, sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!get(r, keys[i]))
            fail_msg("stats has no '%s'", keys[i]);
    assert_str(get(r, "ruleset"), "test@1");
    assert_int_equal(uint_of(get(r, "requests")), 5); /* the stats request included */
    const msgpack_object *dec = get(r, "decisions");
    assert_int_equal(uint_of(get(dec, "allow")), 1);
    assert_int_equal(uint_of(get(dec, "review")), 1);
    assert_int_equal(uint_of(get(dec, "block")), 1);
    assert_int_equal(uint_of(get(r, "degraded")), 0);
    const msgpack_object *err = get(r, "errors");
    assert_int_equal(err->via.map.size, 5);
    assert_int_equal(uint_of(get(err, "bad_request")), 1);
    assert_int_equal(uint_of(get(err, "too_large")), 0);
    assert_int_equal(uint_of(get(err, "unsupported")), 0);
    assert_int_equal(uint_of(get(err, "overloaded")), 0);
    assert_int_equal(uint_of(get(err, "internal")), 0);
    assert_int_equal(uint_of(get(r, "arith_errors")), 1);
    const msgpack_object *rules = get(r, "rules");
    assert_int_equal(rules->via.map.size, 6);
    assert_int_equal(uint_of(get(rules, "big_amount")), 1);
    assert_int_equal(uint_of(get(rules, "huge_amount")), 0);
    assert_int_equal(uint_of(get(rules, "bad_country")), 1);
    assert_int_equal(uint_of(get(rules, "has_time")), 3);
    assert_int_equal(uint_of(get(rules, "per_mcc")), 0);
    const msgpack_object *shadow = get(r, "shadow_rules");
    assert_int_equal(shadow->via.map.size, 1);
    assert_int_equal(uint_of(get(shadow, "small_candidate")), 1);
    assert_int_equal(get(get(r, "reloads"), "last_error")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(get(r, "decision_log")->type, MSGPACK_OBJECT_NIL); /* off in the library */
    assert_int_equal(uint_of(get(r, "replayed")), 0);
    const msgpack_object *st = get(r, "store");
    assert_str(get(st, "durability"), "periodic");
    static const char *const store_keys[] = {
        "file_bytes",      "map_bytes",      "used_bytes",   "entries_counters",
        "entries_lists",   "entries_recent", "entries_meta", "commits",
        "aborts",          "syncs",          "durable_commits", "map_growths",
        "txn_replays",     "sweeps",         "swept_counters", "swept_lists",
        "swept_recent",    "store_errors",   "page_size",    "cache_records",
        "cache_dirty",     "cache_evictions", "wal_entries", "wal_bytes",
        "checkpoints"};
    assert_int_equal(st->via.map.size, 1 + sizeof store_keys / sizeof store_keys[0]);
    for (size_t i = 0; i < sizeof store_keys / sizeof store_keys[0]; i++)
        (void)uint_of(get(st, store_keys[i]));
    assert_int_equal(uint_of(get(st, "entries_recent")), 3); /* the three decisions */
    assert_int_equal(uint_of(get(st, "entries_meta")), 2);
    assert_true(uint_of(get(st, "commits")) >= 3);
    assert_int_equal(uint_of(get(st, "store_errors")), 0);
}

/* A snapshot someone holds outlives a reload; the cell hands the new one out. */
static void test_snapshot_held_across_reload(void **state)
{
    fixture *fx = *state;
    rk_snapshot_cell *cell = rk_engine_snapshots(fx->e);
    rk_snapshot *old = rk_snapshot_cell_acquire(cell);
    uint64_t gen = rk_snapshot_generation(old);
    assert_true(rk_snapshot_cell_refresh(cell, old) == old); /* no reload: same, no lock */
    write_rules(RULES_V2);
    assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    assert_string_equal(rk_snapshot_label(old), "test@1"); /* still alive (ASan checks) */
    rk_snapshot *cur = rk_snapshot_cell_refresh(cell, old); /* releases old: freed here */
    assert_int_equal(rk_snapshot_generation(cur), gen + 1);
    assert_string_equal(rk_snapshot_label(cur), "test@2");
    rk_snapshot_release(cur);
}

typedef struct racer {
    rk_engine *e;   /* shared */
    int n;          /* requests to score */
    int bad;        /* replies that were not decisions */
} racer;

static void *race_scoring(void *arg)
{
    racer *rc = arg;
    rk_worker *w;
    if (rk_worker_new(rc->e, &w) < 0)
        return NULL;
    msgpack_sbuffer sb;
    build_score(&sb, "race", "acct", 200000, NULL, -1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (int i = 0; i < rc->n; i++) {
        const uint8_t *reply;
        size_t n = rk_pipeline_run(w, (const uint8_t *)sb.data, sb.size, false, &reply);
        size_t off = 0;
        if (msgpack_unpack_next(&u, (const char *)reply, n, &off) != MSGPACK_UNPACK_SUCCESS ||
            !(str_is(get(&u.data, "ruleset"), "test@1") || str_is(get(&u.data, "ruleset"), "test@2")))
            rc->bad++;
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    rk_worker_free(w);
    return NULL;
}

/* Reloads while two threads score: no request fails, nothing leaks or is
 * used after free (the sanitizer build checks the latter). */
static void test_reload_while_scoring(void **state)
{
    fixture *fx = *state;
    racer rc[2] = {{fx->e, 3000, 0}, {fx->e, 3000, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_scoring, &rc[i]), 0);
    for (int i = 0; i < 20; i++) {
        write_rules(i % 2 ? RULES_V1 : RULES_V2);
        assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(rc[i].bad, 0);
    }
    uint64_t total = rk_stats_requests(rk_engine_stats(fx->e));
    assert_int_equal(total, 6000);
}

static void test_open_failure(void **state)
{
    char dir[] = "/tmp/rk_test_engine_open_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/broken.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(RULES_BROKEN, f);
    fclose(f);
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    rk_engine_config cfg;
    rk_engine_config_default(&cfg);
    cfg.rules_path = path;
    cfg.store.dir = data;
    rk_engine *e = NULL;
    rk_diag d;
    assert_true(rk_engine_open(&cfg, &e, &d) < 0);
    assert_null(e);
    assert_string_equal(d.file, path);
    assert_int_equal(d.line, 5);
    assert_int_equal(d.col, 11);
    cfg.rules_path = "/nonexistent/rules.yaml";
    assert_int_equal(rk_engine_open(&cfg, &e, &d), RK_EIO);
    /* a good rule file, but no data directory; one that cannot be created */
    snprintf(path, sizeof path, "%s/good.yaml", dir);
    f = fopen(path, "w");
    fputs(RULES_V2, f);
    fclose(f);
    cfg.rules_path = path;
    cfg.store.dir = NULL;
    assert_int_equal(rk_engine_open(&cfg, &e, &d), RK_EINVAL);
    assert_string_equal(d.msg, "no data directory configured");
    cfg.store.dir = "/proc/riskd-cannot-be-here";
    assert_true(rk_engine_open(&cfg, &e, &d) < 0);
    assert_string_equal(d.file, "/proc/riskd-cannot-be-here");
    assert_non_null(strstr(d.msg, "cannot open the state store"));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the state store through the pipeline ------------------------------------ */

/* A rule set with velocity counters and dynamic lists whose score reveals the
 * counters: bit b of counter k's value (mod 256) adds 2^(8k + b), so
 * score = acct_n + 256 * acct_amt + 65536 * dev_cards (each mod 256). */
static const char *state_rules(const char *acct_window)
{
    static char buf[8192];
    static const char *const bits[] = {"acct_n", "acct_amt", "dev_cards"};
    int n = snprintf(buf, sizeof buf,
                     "ruleset: state\n"
                     "version: \"%s\"\n"
                     "lists:\n"
                     "  blocked_cards: {dynamic: true, add_on_fraud: card, ttl: 30d}\n"
                     "  watch_devices: {dynamic: true}\n"
                     "counters:\n"
                     "  acct_n: {by: account, window: %s}\n"
                     "  acct_amt: {by: account, window: 24h, sum: amount}\n"
                     "  dev_cards: {by: device, window: 24h, distinct: card}\n"
                     "  card_fraud_90d: {by: card, window: 90d, feedback: fraud}\n"
                     "rules:\n"
                     "  - id: blocked_card\n"
                     "    when: card in @blocked_cards\n"
                     "    action: block\n"
                     "  - id: watched_device\n"
                     "    when: device in @watch_devices\n"
                     "    action: review\n"
                     "  - id: known_fraud_card\n"
                     "    when: card_fraud_90d >= 1\n"
                     "    action: block\n",
                     acct_window, acct_window);
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 8; b++)
            n += snprintf(buf + n, sizeof buf - (size_t)n,
                          "  - id: %s_bit%d\n"
                          "    when: %s %% %d >= %d\n"
                          "    score: %d\n",
                          bits[k], b, bits[k], 2 << b, 1 << b, 1 << (8 * k + b));
    assert_true((size_t)n < sizeof buf);
    return buf;
}

static int setup_state(void **state)
{
    return open_fixture(state, state_rules("1h"), 0, 0);
}

/* A tiny map that cannot grow: the store fails once it is full. */
static int setup_state_tiny(void **state)
{
    return open_fixture(state, state_rules("1h"), 0, 256 * 1024);
}

/* One score request of the state tests; NULL strings and ts < 0 are left out. */
typedef struct sreq {
    const char *id, *account, *card, *device;
    int64_t amount, ts;
} sreq;

static void build_sreq(msgpack_sbuffer *sb, const sreq *q)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (q->card != NULL) + (q->device != NULL) + (q->ts >= 0));
    pk_str(&pk, "id");
    pk_str(&pk, q->id);
    pk_str(&pk, "account");
    pk_str(&pk, q->account);
    pk_str(&pk, "amount");
    msgpack_pack_int64(&pk, q->amount);
    if (q->card) {
        pk_str(&pk, "card");
        pk_str(&pk, q->card);
    }
    if (q->device) {
        pk_str(&pk, "device");
        pk_str(&pk, q->device);
    }
    if (q->ts >= 0) {
        pk_str(&pk, "ts");
        msgpack_pack_int64(&pk, q->ts);
    }
}

static const msgpack_object *sscore(fixture *fx, sreq q)
{
    msgpack_sbuffer sb;
    build_sreq(&sb, &q);
    return run(fx, &sb, false);
}

/* The counter values the score encodes. */
typedef struct cvals {
    int n, amt, cards;
} cvals;

static cvals counters_of(const msgpack_object *r)
{
    const msgpack_object *sc = get(r, "score");
    assert_non_null(sc);
    assert_int_equal(sc->type, MSGPACK_OBJECT_FLOAT64);
    int64_t v = (int64_t)sc->via.f64;
    return (cvals){(int)(v & 255), (int)(v >> 8 & 255), (int)(v >> 16 & 255)};
}

static void assert_counters(const msgpack_object *r, int n, int amt, int cards)
{
    cvals c = counters_of(r);
    if (c.n != n || c.amt != amt || c.cards != cards)
        fail_msg("counters n=%d amt=%d cards=%d, expected %d %d %d", c.n, c.amt, c.cards, n, amt,
                 cards);
}

/* An admin op with string arguments: key, value, ..., NULL. */
static const msgpack_object *admin(fixture *fx, const char *op, ...)
{
    const char *kv[16];
    int n = 0;
    va_list ap;
    va_start(ap, op);
    for (const char *k; n < 16 && (k = va_arg(ap, const char *));)
        kv[n++] = k;
    va_end(ap);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + (size_t)n / 2);
    pk_str(&pk, "op");
    pk_str(&pk, op);
    for (int i = 0; i + 1 < n; i += 2) {
        pk_str(&pk, kv[i]);
        pk_str(&pk, kv[i + 1]);
    }
    return run(fx, &sb, true);
}

static bool bool_of(const msgpack_object *o)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
    return o->via.boolean;
}

static bool has_reason(const msgpack_object *r, const char *id)
{
    const msgpack_object *a = get(r, "reasons");
    for (uint32_t i = 0; a && i < a->via.array.size; i++)
        if (str_is(&a->via.array.ptr[i], id))
            return true;
    return false;
}

static void test_counters_through_pipeline(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r;
    r = sscore(fx, (sreq){"c1", "A", "card1", "dev1", 5, T0});
    assert_counters(r, 1, 5, 1);
    r = sscore(fx, (sreq){"c2", "A", "card2", "dev1", 7, T0 + 1000});
    assert_counters(r, 2, 12, 2);
    r = sscore(fx, (sreq){"c3", "A", "card1", "dev1", 11, T0 + 2000});
    assert_counters(r, 3, 23, 2);
    assert_str(get(r, "decision"), "allow");
    /* another account and device: counted apart */
    r = sscore(fx, (sreq){"c4", "B", "card1", "dev2", 1, T0 + 2000});
    assert_counters(r, 1, 1, 1);
    /* no device: dev_cards is missing (its bit rules are unknown), the rest counts */
    r = sscore(fx, (sreq){"c5", "A", "card3", NULL, 2, T0 + 3000});
    assert_counters(r, 4, 25, 0);
    /* an out-of-order event inside the window counts */
    r = sscore(fx, (sreq){"c6", "A", "card3", "dev1", 1, T0 - 60000});
    assert_counters(r, 5, 26, 3);
    /* two hours on: the 1h window has moved past A's events, the 24h one not */
    r = sscore(fx, (sreq){"c7", "A", "card1", "dev1", 4, T0 + 2 * HOUR_MS});
    assert_counters(r, 1, 30, 3);
    /* an event older than the window (relative to the newest) counts nothing
     * and sees the window ending at the newest event */
    r = sscore(fx, (sreq){"c8", "A", "card9", "dev1", 100, T0 - 2 * HOUR_MS});
    assert_counters(r, 1, 130, 4);
}

static void test_retry_is_replayed(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = sscore(fx, (sreq){"r1", "A", "card1", "dev1", 5, T0});
    assert_counters(r, 1, 5, 1);
    assert_null(get(r, "replayed"));
    uint64_t took = uint_of(get(r, "took_us"));

    /* the retry: the stored reply, replayed: true, and no counter moves */
    r = sscore(fx, (sreq){"r1", "A", "card1", "dev1", 5, T0});
    assert_counters(r, 1, 5, 1);
    assert_true(bool_of(get(r, "replayed")));
    assert_str(get(r, "id"), "r1");
    assert_str(get(r, "ruleset"), "state@1h");
    assert_int_equal(uint_of(get(r, "took_us")), took); /* byte for byte the first reply */
    assert_null(get(r, "degraded"));
    /* the id alone identifies the transaction: other fields do not matter */
    r = sscore(fx, (sreq){"r1", "A", "card7", "dev7", 999, T0 + 5000});
    assert_counters(r, 1, 5, 1);
    assert_true(bool_of(get(r, "replayed")));

    r = sscore(fx, (sreq){"r2", "A", "card1", "dev1", 5, T0 + 1000});
    assert_counters(r, 2, 10, 1);
    assert_int_equal(rk_stats_replayed(rk_engine_stats(fx->e)), 2);
    /* the stored reply keeps no id; the retry's own is put back, whatever its length */
    const char *longid = "a-transaction-id-long-enough-for-a-str8-header";
    r = sscore(fx, (sreq){longid, "B", "card2", "dev2", 5, T0 + 1000});
    assert_null(get(r, "replayed"));
    r = sscore(fx, (sreq){longid, "B", "card2", "dev2", 5, T0 + 1000});
    assert_true(bool_of(get(r, "replayed")));
    assert_str(get(r, "id"), longid);
    assert_int_equal(rk_stats_replayed(rk_engine_stats(fx->e)), 3);

    /* past the retry window (24 h of wall time) the id is a new transaction */
    test_now += 25 * HOUR_MS;
    r = sscore(fx, (sreq){"r1", "A", "card1", "dev1", 5, T0 + 2000});
    assert_null(get(r, "replayed"));
    assert_counters(r, 3, 15, 1);
    /* and its retry replays the new decision */
    r = sscore(fx, (sreq){"r1", "A", "card1", "dev1", 5, T0 + 2000});
    assert_true(bool_of(get(r, "replayed")));
    assert_counters(r, 3, 15, 1);
}

static void test_dynamic_lists(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = sscore(fx, (sreq){"l1", "A", "card9", "dev1", 5, T0});
    assert_str(get(r, "decision"), "allow");

    r = admin(fx, "list_add", "list", "blocked_cards", "value", "card9", "ttl", "1h", NULL);
    assert_true(bool_of(get(r, "ok")));
    assert_str(get(r, "list"), "blocked_cards");
    assert_int_equal(uint_of(get(r, "expires_ms")), test_now + HOUR_MS);
    /* effective for the very next request */
    r = sscore(fx, (sreq){"l2", "A", "card9", "dev1", 5, T0 + 1000});
    assert_str(get(r, "decision"), "block");
    assert_true(has_reason(r, "blocked_card"));
    r = admin(fx, "list_get", "list", "blocked_cards", "value", "card9", NULL);
    assert_true(bool_of(get(r, "present")));
    assert_str(get(r, "value"), "card9");
    assert_int_equal(uint_of(get(r, "added_ms")), test_now);
    assert_int_equal(uint_of(get(r, "expires_ms")), test_now + HOUR_MS);

    /* expiry by TTL, judged by the wall clock */
    test_now += HOUR_MS;
    r = sscore(fx, (sreq){"l3", "A", "card9", "dev1", 5, T0 + 2000});
    assert_str(get(r, "decision"), "allow");
    r = admin(fx, "list_get", "list", "blocked_cards", "value", "card9", NULL);
    assert_false(bool_of(get(r, "present")));
    assert_int_equal(get(r, "expires_ms")->type, MSGPACK_OBJECT_NIL);

    /* no ttl: never expires; rm takes it off at once */
    r = admin(fx, "list_add", "list", "watch_devices", "value", "dev1", NULL);
    assert_int_equal(get(r, "expires_ms")->type, MSGPACK_OBJECT_NIL);
    test_now += 1000 * 24 * HOUR_MS;
    r = sscore(fx, (sreq){"l4", "A", "card1", "dev1", 5, T0 + 3000});
    assert_str(get(r, "decision"), "review");
    assert_true(has_reason(r, "watched_device"));
    r = admin(fx, "list_rm", "list", "watch_devices", "value", "dev1", NULL);
    assert_true(bool_of(get(r, "removed")));
    r = admin(fx, "list_rm", "list", "watch_devices", "value", "dev1", NULL);
    assert_false(bool_of(get(r, "removed")));
    r = sscore(fx, (sreq){"l5", "A", "card1", "dev1", 5, T0 + 4000});
    assert_str(get(r, "decision"), "allow");

    /* argument errors name the field */
    assert_error(admin(fx, "list_add", "list", "blocked_crds", "value", "x", NULL), "bad_request",
                 "field 'list': unknown dynamic list 'blocked_crds' (did you mean "
                 "'blocked_cards'?)");
    assert_error(admin(fx, "list_add", "list", "nothing_like_it", "value", "x", NULL),
                 "bad_request",
                 "field 'list': unknown dynamic list 'nothing_like_it' (rule set state@1h has: "
                 "blocked_cards, ...)");
    assert_error(admin(fx, "list_add", "value", "x", NULL), "bad_request",
                 "field 'list' is required");
    assert_error(admin(fx, "list_get", "list", "blocked_cards", NULL), "bad_request",
                 "field 'value' is required");
    assert_error(admin(fx, "list_add", "list", "blocked_cards", "value", "x", "ttl", "soon", NULL),
                 "bad_request",
                 "field 'ttl': expected a duration such as \"30d\" (units ms, s, m, h, d), got "
                 "'soon'");
    /* and the gateway endpoint refuses them */
    msgpack_sbuffer sb;
    build_op(&sb, "list_add");
    assert_error(run(fx, &sb, false), "unsupported",
                 "op 'list_add' is only accepted on the admin endpoint");
}

static void test_feedback(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = sscore(fx, (sreq){"f1", "A", "cardF", "dev1", 5, T0});
    assert_str(get(r, "decision"), "allow");

    r = admin(fx, "feedback", "id", "nope", "label", "fraud", NULL);
    assert_error(r, "bad_request", "unknown transaction id 'nope'");
    assert_str(get(r, "id"), "nope");
    assert_error(admin(fx, "feedback", "id", "f1", "label", "maybe", NULL), "bad_request",
                 "field 'label': expected \"fraud\" or \"legit\", got 'maybe'");
    assert_error(admin(fx, "feedback", "label", "fraud", NULL), "bad_request",
                 "field 'id' is required");

    r = admin(fx, "feedback", "id", "f1", "label", "fraud", NULL);
    assert_true(bool_of(get(r, "ok")));
    assert_int_equal(uint_of(get(r, "counters_updated")), 1); /* card_fraud_90d */
    assert_int_equal(uint_of(get(r, "lists_updated")), 1);    /* blocked_cards gets cardF */
    r = admin(fx, "list_get", "list", "blocked_cards", "value", "cardF", NULL);
    assert_true(bool_of(get(r, "present")));
    assert_int_equal(uint_of(get(r, "expires_ms")), test_now + 30 * 24 * HOUR_MS);

    /* the card is now blocked by the list and by the feedback counter */
    r = sscore(fx, (sreq){"f2", "B", "cardF", "dev2", 5, T0 + 1000});
    assert_str(get(r, "decision"), "block");
    assert_true(has_reason(r, "blocked_card"));
    assert_true(has_reason(r, "known_fraud_card"));

    /* the same label again changes nothing */
    r = admin(fx, "feedback", "id", "f1", "label", "fraud", NULL);
    assert_int_equal(uint_of(get(r, "counters_updated")), 0);
    assert_int_equal(uint_of(get(r, "lists_updated")), 0);
    /* legit takes the fraud count back; the list entry stays (riskctl list rm) */
    r = admin(fx, "feedback", "id", "f1", "label", "legit", NULL);
    assert_int_equal(uint_of(get(r, "counters_updated")), 1);
    admin(fx, "list_rm", "list", "blocked_cards", "value", "cardF", NULL);
    r = sscore(fx, (sreq){"f3", "B", "cardF", "dev2", 5, T0 + 2000});
    assert_str(get(r, "decision"), "allow");
}

static void test_definition_change_on_reload(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = NULL;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "d%d", i);
        r = sscore(fx, (sreq){id, "A", "card1", "dev1", 1, T0 + i});
    }
    assert_counters(r, 3, 3, 1);

    /* acct_n's window changes: it starts from zero; the others carry on */
    write_rules(state_rules("2h"));
    assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    r = sscore(fx, (sreq){"d3", "A", "card1", "dev1", 1, T0 + 3});
    assert_str(get(r, "ruleset"), "state@2h");
    assert_counters(r, 1, 4, 1);

    /* back to the old definition: its records were never touched meanwhile */
    write_rules(state_rules("1h"));
    assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    r = sscore(fx, (sreq){"d4", "A", "card1", "dev1", 1, T0 + 4});
    assert_counters(r, 4, 5, 1);
}

static void test_degraded_when_store_fails(void **state)
{
    fixture *fx = *state; /* a 256 KiB map that cannot grow */
    const msgpack_object *r = NULL;
    int i = 0;
    for (; i < 5000; i++) {
        char id[32], acct[32];
        snprintf(id, sizeof id, "full-%d", i);
        snprintf(acct, sizeof acct, "acct-%d", i);
        r = sscore(fx, (sreq){id, acct, "card1", "dev1", 1, T0 + i});
        if (get(r, "degraded"))
            break;
        assert_str(get(r, "decision"), "allow");
    }
    if (i == 5000)
        fail_msg("the store never filled up");
    assert_true(bool_of(get(r, "degraded")));
    assert_str(get(r, "decision"), "review"); /* the configured fallback */
    assert_int_equal(get(r, "reasons")->via.array.size, 0);
    assert_str(get(r, "ruleset"), "state@1h");
    assert_null(get(r, "replayed"));
    /* nothing of it was kept: its retry is scored again, not replayed (and
     * may succeed: the checkpointer can free cache room in smaller
     * transactions than the request's own) */
    char id[32];
    snprintf(id, sizeof id, "full-%d", i);
    r = sscore(fx, (sreq){id, "acct-x", "card1", "dev1", 1, T0});
    assert_null(get(r, "replayed"));
    /* earlier decisions are still replayed from what was committed */
    r = sscore(fx, (sreq){"full-0", "acct-0", "card1", "dev1", 1, T0});
    assert_true(bool_of(get(r, "replayed")));

    msgpack_sbuffer sb;
    build_op(&sb, "stats");
    r = run(fx, &sb, true);
    assert_true(uint_of(get(r, "degraded")) >= 1);
    assert_true(uint_of(get(get(r, "store"), "store_errors")) >= 1);
}

/* Reads a whole file (the LMDB data file) into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_no_raw_values_on_disk(void **state)
{
    fixture *fx = *state;
    static const char *const ids[] = {"txn-QZX-7781", "txn-QZX-7782", "txn-QZX-7783"};
    static const char *const accts[] = {"acct-VVB-1111", "acct-VVB-2222", "acct-VVB-3333"};
    static const char *const cards[] = {"tok-KKM-4242", "tok-KKM-5353", "tok-KKM-6464"};
    static const char *const devs[] = {"dev-PPL-0001", "dev-PPL-0002", "dev-PPL-0003"};
    for (int i = 0; i < 3; i++)
        sscore(fx, (sreq){ids[i], accts[i], cards[i], devs[i], 100 + i, T0 + i});
    sscore(fx, (sreq){ids[0], accts[0], cards[0], devs[0], 100, T0}); /* a retry */
    admin(fx, "list_add", "list", "blocked_cards", "value", "tok-LST-9999", NULL);
    admin(fx, "list_add", "list", "watch_devices", "value", "dev-LST-8888", "ttl", "2d", NULL);
    admin(fx, "feedback", "id", ids[1], "label", "fraud", NULL);
    const char *extra[] = {"tok-LST-9999", "dev-LST-8888", "QZX", "VVB", "KKM", "PPL"};

    /* the databases and the write-ahead log's files, where the requests'
     * changes are until checkpointed */
    DIR *d = opendir(fx->data);
    assert_non_null(d);
    int scanned = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, "data.mdb") != 0 && !rk_store_is_log_file(e->d_name))
            continue;
        char path[800];
        snprintf(path, sizeof path, "%s/%s", fx->data, e->d_name);
        size_t len;
        char *buf = slurp(path, &len);
        assert_true(len > 0);
        for (int i = 0; i < 3; i++) {
            const char *const all[] = {ids[i], accts[i], cards[i], devs[i]};
            for (int k = 0; k < 4; k++)
                if (memmem(buf, len, all[k], strlen(all[k])))
                    fail_msg("'%s' appears in %s", all[k], path);
        }
        for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++)
            if (memmem(buf, len, extra[k], strlen(extra[k])))
                fail_msg("'%s' appears in %s", extra[k], path);
        free(buf);
        scanned++;
    }
    closedir(d);
    assert_true(scanned >= 2); /* data.mdb and at least one log segment */
    char path[400];
    snprintf(path, sizeof path, "%s/data.mdb", fx->data);
    size_t len;
    char *buf = slurp(path, &len);
    assert_non_null(memmem(buf, len, "blocked_cards", 13));
    free(buf);
}

/* Traffic for the live/replay comparison: 10 accounts, 5 devices, 20 cards,
 * event times mostly rising with out-of-order jitter and gaps longer than the
 * 1 h window, and some retries. */
static sreq traffic(int i, char *id, char *acct, char *card, char *dev)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    snprintf(id, 32, "lv-%d", (x >> 7) % 8 == 0 && i > 10 ? i - 5 : i); /* 1 in 8 is a retry */
    snprintf(acct, 32, "acct-%u", x % 10);
    snprintf(card, 32, "card-%u", (x >> 4) % 20);
    snprintf(dev, 32, "dev-%u", (x >> 9) % 5);
    int64_t ts = T0 + (int64_t)i * 60000 + (int64_t)((x >> 12) % 600000) - 300000;
    if (i >= 200)
        ts += 3 * HOUR_MS; /* a quiet spell longer than the window */
    return (sreq){id, acct, card, dev, (int64_t)((x >> 3) % 50), ts};
}

static void test_live_and_replay_agree(void **state)
{
    fixture *fx = *state;
    enum { N = 400 };
    static double live_score[N];
    static char live_decision[N][8];
    static bool live_replayed[N];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            /* the replay: a fresh engine and store, the same traffic */
            engine_close(fx);
            assert_int_equal(engine_open(fx, "replay", 0, 0), 0);
        }
        for (int i = 0; i < N; i++) {
            char id[32], acct[32], card[32], dev[32];
            const msgpack_object *r = sscore(fx, traffic(i, id, acct, card, dev));
            const msgpack_object *d = get(r, "decision");
            assert_non_null(d);
            bool rp = get(r, "replayed") != NULL;
            double sc = get(r, "score")->via.f64;
            if (pass == 0) {
                live_score[i] = sc;
                live_replayed[i] = rp;
                snprintf(live_decision[i], sizeof live_decision[i], "%.*s", (int)d->via.str.size,
                         d->via.str.ptr);
                continue;
            }
            if (sc != live_score[i] || rp != live_replayed[i] || !str_is(d, live_decision[i]))
                fail_msg("request %d (%s): live score %.0f%s %s, replay %.0f%s", i, id,
                         live_score[i], live_replayed[i] ? " replayed" : "", live_decision[i], sc,
                         rp ? " replayed" : "");
        }
    }
    /* the traffic did exercise the counters */
    int distinct_scores = 0;
    for (int i = 1; i < N; i++)
        distinct_scores += live_score[i] != live_score[i - 1];
    assert_true(distinct_scores > N / 2);
    assert_true(rk_stats_replayed(rk_engine_stats(fx->e)) > 10);
}

/* ---- the model step ------------------------------------------------------------ */

/* Model files the model tests' rule files name, made once for the run in
 * model_dir: tiny.rmdl (3 trees over amount and count, tests/model/tiny_xgb.json),
 * lin.rmdl (a logistic regression over the same two features) and, when
 * python3-xgboost is there, xgb.rmdl: 100 trees of depth 6 trained by
 * tests/model/train_xgb.py, with XGBoost's own predictions for its test rows. */
static char model_dir[256];
static bool have_xgb; /* xgb.rmdl and XGBoost's predictions were made */

#define XGB_ROWS 300 /* test rows sent through the pipeline */
#define XGB_NF 8     /* features of train_xgb.py's models */

static const char LIN_JSON[] = "{\"objective\": \"logistic_regression\", \"features\": [\"amount\", "
                               "\"count\"], \"weights\": [0.001, 0.5], \"bias\": -1}";

static void save_model(rk_model *m, const char *name)
{
    char path[400];
    rk_diag d;
    snprintf(path, sizeof path, "%s/%s", model_dir, name);
    assert_int_equal(rk_model_save(m, path, &d), 0);
    rk_model_free(m);
}

static int models_setup(void **state)
{
    (void)state;
    snprintf(model_dir, sizeof model_dir, "/tmp/rk_test_engine_models_XXXXXX");
    if (!mkdtemp(model_dir))
        return -1;
    rk_model *m = NULL;
    rk_diag d;
    if (rk_model_import(RK_SOURCE_DIR "/tests/model/tiny_xgb.json", &m, &d) < 0)
        return -1;
    save_model(m, "tiny.rmdl");
    if (rk_model_import_mem("lin.json", LIN_JSON, strlen(LIN_JSON), &m, &d) < 0)
        return -1;
    save_model(m, "lin.rmdl");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/tests/model/train_xgb.py' '%s' --trees 100 --depth 6 "
             "--rows 3000 >/dev/null 2>&1",
             RK_SOURCE_DIR, model_dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "%s/m.json", model_dir);
    if (rc == 0 && rk_model_import(cmd, &m, &d) == 0) {
        save_model(m, "xgb.rmdl");
        have_xgb = true;
    }
    return 0;
}

static int models_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", model_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A rule set over a model in model_dir: count is the velocity counter, or
 * mcc (absent from most requests: a missing feature) with count_is_mcc. */
static const char *model_rules(const char *version, const char *model, bool count_is_mcc,
                               int explain_top)
{
    static char buf[2048];
    int n = snprintf(buf, sizeof buf,
                     "ruleset: model\n"
                     "version: \"%s\"\n"
                     "counters:\n"
                     "  acct_n: {by: account, window: 1h}\n"
                     "model:\n"
                     "  file: %s/%s\n"
                     "  explain_top: %d\n"
                     "  features:\n"
                     "    count: %s\n"
                     "    big: amount >= 1000\n" /* declared, not used by the model */
                     "rules:\n"
                     "  - id: model_high\n"
                     "    when: model.score >= 0.6\n"
                     "    action: block\n"
                     "  - id: model_mid\n"
                     "    when: model.score >= 0.5\n"
                     "    score: 10\n",
                     version, model_dir, model, explain_top, count_is_mcc ? "mcc" : "acct_n");
    assert_true((size_t)n < sizeof buf);
    return buf;
}

static int setup_model(void **state)
{
    return open_fixture(state, model_rules("1", "tiny.rmdl", false, 5), 0, 0);
}

static int setup_model_mcc(void **state)
{
    return open_fixture(state, model_rules("1", "tiny.rmdl", true, 5), 0, 0);
}

/* One field of a request built by build_req. */
typedef struct fld {
    const char *key;
    char kind;    /* 's' str, 'i' int, 'f' float, 'b' bool */
    const char *s;
    int64_t i;
    double f;
} fld;

static fld fld_s(const char *k, const char *v) { return (fld){.key = k, .kind = 's', .s = v}; }
static fld fld_i(const char *k, int64_t v) { return (fld){.key = k, .kind = 'i', .i = v}; }
static fld fld_f(const char *k, double v) { return (fld){.key = k, .kind = 'f', .f = v}; }
static fld fld_b(const char *k, bool v) { return (fld){.key = k, .kind = 'b', .i = v}; }

static const msgpack_object *score_fields(fixture *fx, const fld *f, int n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        pk_str(&pk, f[i].key);
        switch (f[i].kind) {
        case 's': pk_str(&pk, f[i].s); break;
        case 'i': msgpack_pack_int64(&pk, f[i].i); break;
        case 'f': msgpack_pack_double(&pk, f[i].f); break;
        default:
            if (f[i].i)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
        }
    }
    return run(fx, &sb, false);
}

/* A request for the tiny model: id, account, amount, optionally mcc and explain. */
static const msgpack_object *mscore(fixture *fx, const char *id, int64_t amount, int64_t mcc,
                                    bool explain)
{
    fld f[5] = {fld_s("id", id), fld_s("account", "a1"), fld_i("amount", amount)};
    int n = 3;
    if (mcc >= 0)
        f[n++] = fld_i("mcc", mcc);
    if (explain)
        f[n++] = fld_b("explain", true);
    return score_fields(fx, f, n);
}

static double f64_of(const msgpack_object *o)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    return o->via.f64;
}

/* The current snapshot's model, and what it says for the worker's last
 * feature vector (the rule set's vector mapped onto the model's inputs by
 * name), with the margin. */
static double predict_last(fixture *fx, double *margin)
{
    rk_snapshot *s = rk_snapshot_cell_acquire(rk_engine_snapshots(fx->e));
    const rk_ruleset *rs = rk_snapshot_ruleset(s);
    const rk_model *m = rk_ruleset_model(rs);
    assert_non_null(m);
    const float *x = NULL;
    int n = rk_worker_features(fx->w, &x);
    assert_int_equal(n, rk_ruleset_nfeatures(rs));
    float in[RK_FEATURES_MAX];
    for (size_t j = 0; j < rk_model_nfeatures(m); j++) {
        int i = 0;
        while (i < n && strcmp(rk_ruleset_feature_name(rs, i), rk_model_feature_name(m, j)) != 0)
            i++;
        assert_true(i < n);
        in[j] = x[i];
    }
    double p = rk_model_predict(m, in, margin);
    rk_snapshot_release(s);
    return p;
}

/* model_score is the model's probability for the features the pipeline
 * computed (counters included), and rules read it as model.score. */
static void test_model_score_and_rules(void **state)
{
    fixture *fx = *state;
    /* count = acct_n = 1: 0.5 + 0.1 - 0.4 = 0.2 -> 0.55 */
    const msgpack_object *r = mscore(fx, "m1", 500, -1, false);
    const float *x = NULL;
    assert_int_equal(rk_worker_features(fx->w, &x), 3); /* count, big, then amount by default */
    assert_true(x[0] == 1.0f && x[1] == 0.0f && x[2] == 500.0f);
    double margin, p = predict_last(fx, &margin);
    assert_true(fabs(margin - 0.2) < 1e-6);
    assert_true(f64_of(get(r, "model_score")) == p);
    assert_str(get(r, "decision"), "allow");
    const char *const mid[] = {"model_mid"};
    assert_reasons(r, "reasons", mid, 1);
    assert_null(get(r, "explain")); /* not asked for */

    /* count = 2: 0.5 + 0.1 + 0.25 = 0.85 -> 0.70 */
    r = mscore(fx, "m2", 500, -1, false);
    p = predict_last(fx, &margin);
    assert_true(fabs(margin - 0.85) < 1e-6);
    assert_true(f64_of(get(r, "model_score")) == p);
    assert_str(get(r, "decision"), "block");
    const char *const both[] = {"model_high", "model_mid"};
    assert_reasons(r, "reasons", both, 2);

    /* A retry is answered from the store, with the first model score. */
    r = mscore(fx, "m1", 500, -1, false);
    assert_true(get(r, "replayed") != NULL);
    assert_true(fabs(f64_of(get(r, "model_score")) - 1 / (1 + exp(-0.2))) < 1e-7);
    assert_int_equal(rk_worker_features(fx->w, NULL), 0); /* not scored again */
    msgpack_sbuffer sb;
    build_op(&sb, "ping");
    run(fx, &sb, false);
    assert_int_equal(rk_worker_features(fx->w, NULL), 0);
}

/* explain: true lists the largest contributions, their feature values (nil
 * when missing) and the bias; all of them and the bias add up to the margin. */
static void test_model_explain(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = mscore(fx, "e1", 50, 7, true); /* count = mcc = 7 */
    double margin, p = predict_last(fx, &margin);
    assert_true(fabs(margin - 0.65) < 1e-6); /* 0.3 + 0.1 + 0.25 */
    assert_true(f64_of(get(r, "model_score")) == p);
    const msgpack_object *ex = get(r, "explain");
    assert_non_null(ex);
    assert_int_equal(ex->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(ex->via.map.size, 2);
    double sum = f64_of(get(ex, "bias"));
    const msgpack_object *cs = get(ex, "contributions");
    assert_non_null(cs);
    assert_int_equal(cs->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(cs->via.array.size, 2); /* amount and count; big is not the model's */
    double prev = INFINITY;
    for (uint32_t i = 0; i < cs->via.array.size; i++) {
        const msgpack_object *c = &cs->via.array.ptr[i];
        assert_int_equal(c->via.map.size, 3);
        double v = f64_of(get(c, "contribution"));
        assert_true(fabs(v) <= prev);
        prev = fabs(v);
        sum += v;
        if (str_is(get(c, "feature"), "amount"))
            assert_true(f64_of(get(c, "value")) == 50.0);
        else if (str_is(get(c, "feature"), "count"))
            assert_true(f64_of(get(c, "value")) == 7.0);
        else
            fail_msg("unexpected feature in explain");
    }
    assert_true(fabs(sum - margin) < 1e-6);

    /* count missing (no mcc): its value is nil; still adds up. */
    r = mscore(fx, "e2", 50, -1, true);
    predict_last(fx, &margin);
    ex = get(r, "explain");
    cs = get(ex, "contributions");
    sum = f64_of(get(ex, "bias"));
    bool saw_nil = false;
    for (uint32_t i = 0; i < cs->via.array.size; i++) {
        const msgpack_object *c = &cs->via.array.ptr[i];
        sum += f64_of(get(c, "contribution"));
        if (str_is(get(c, "feature"), "count")) {
            assert_int_equal(get(c, "value")->type, MSGPACK_OBJECT_NIL);
            saw_nil = true;
        }
    }
    assert_true(saw_nil);
    assert_true(fabs(sum - margin) < 1e-6);

    /* explain_top: 1 lists one; without a model file, no key and no error. */
    write_rules(model_rules("2", "tiny.rmdl", true, 1));
    assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    r = mscore(fx, "e3", 50, 7, true);
    assert_int_equal(get(get(r, "explain"), "contributions")->via.array.size, 1);
    write_rules("ruleset: model\nversion: \"3\"\nmodel:\n  features: {amount: amount}\n");
    assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    r = mscore(fx, "e4", 50, 7, true);
    assert_str(get(r, "decision"), "allow");
    assert_int_equal(get(r, "model_score")->type, MSGPACK_OBJECT_NIL);
    assert_null(get(r, "explain"));
    const float *x;
    assert_int_equal(rk_worker_features(fx->w, &x), 1); /* features without a model */
    assert_true(x[0] == 50.0f);
}

/* The model reloads with its rule set: a new model file and rule version
 * arrive together; a broken model fails the reload, positioned at `file:`
 * with the model loader's message, and the old rules and model keep serving. */
static void test_model_reload(void **state)
{
    fixture *fx = *state;
    const msgpack_object *r = mscore(fx, "r1", 500, -1, false);
    double p1 = f64_of(get(r, "model_score"));
    assert_str(get(r, "ruleset"), "model@1");

    /* Another model at the same path, and a new version. */
    rk_model *m = NULL;
    rk_diag d;
    assert_int_equal(rk_model_import_mem("lin.json", LIN_JSON, strlen(LIN_JSON), &m, &d), 0);
    save_model(m, "tiny.rmdl"); /* atomically replaced, as rk_model_save does */
    write_rules(model_rules("2", "tiny.rmdl", false, 5));
    assert_int_equal(rk_engine_reload(fx->e, &d), 0);
    r = mscore(fx, "r2", 500, -1, false); /* count 2: -1 + 0.5 + 1 */
    double p2 = f64_of(get(r, "model_score"));
    assert_str(get(r, "ruleset"), "model@2");
    assert_true(fabs(p2 - 1 / (1 + exp(-0.5))) < 1e-6);
    assert_true(p1 != p2);

    /* A corrupt model file: the reload fails and model@2 keeps serving. */
    char path[400], tmp[420];
    snprintf(path, sizeof path, "%s/tiny.rmdl", model_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs("\x82\xa6" "format\xa4rmdl\xa7version\x01", f); /* a truncated model */
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
    write_rules(model_rules("3", "tiny.rmdl", false, 5));
    assert_true(rk_engine_reload(fx->e, &d) < 0);
    char msg[1200], want[1200];
    rk_diag_format(&d, msg, sizeof msg);
    snprintf(want, sizeof want, "%s:6:9: cannot load model %s: ", rules_path, path);
    if (strncmp(msg, want, strlen(want)) != 0 || !strstr(msg, "truncated"))
        fail_msg("reload diagnostic: %s", msg);
    r = mscore(fx, "r3", 500, -1, false); /* count 3: the same model as before */
    assert_str(get(r, "ruleset"), "model@2");
    assert_true(fabs(f64_of(get(r, "model_score")) - 1 / (1 + exp(-1.0))) < 1e-6);

    /* A missing model file, likewise. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rk_engine_reload(fx->e, &d), RK_EIO);
    snprintf(want, sizeof want, "cannot read model file '%s': No such file or directory", path);
    assert_string_equal(d.msg, want);
    r = mscore(fx, "r4", 500, -1, false);
    assert_str(get(r, "ruleset"), "model@2");
    /* put tiny.rmdl back for the tests after this one */
    assert_int_equal(rk_model_import(RK_SOURCE_DIR "/tests/model/tiny_xgb.json", &m, &d), 0);
    save_model(m, "tiny.rmdl");
}

typedef struct model_racer {
    rk_engine *e; /* shared */
    int n;        /* requests to score */
    int bad;      /* replies whose model score is not their rule set's model's */
} model_racer;

/* Scores while the main thread swaps rule sets whose models differ: every
 * reply's model_score belongs to the rule set named in the same reply. */
static void *race_model(void *arg)
{
    model_racer *mr = arg;
    rk_worker *w;
    if (rk_worker_new(mr->e, &w) < 0)
        return NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (int i = 0; i < mr->n; i++) {
        msgpack_sbuffer sb;
        char id[32];
        snprintf(id, sizeof id, "race-%p-%d", (void *)w, i);
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        pk_str(&pk, "id");
        pk_str(&pk, id);
        pk_str(&pk, "account");
        pk_str(&pk, id); /* a fresh account: count (mcc) is what the request says */
        pk_str(&pk, "amount");
        msgpack_pack_int64(&pk, 500);
        pk_str(&pk, "mcc");
        msgpack_pack_int64(&pk, 2);
        const uint8_t *reply;
        size_t n = rk_pipeline_run(w, (const uint8_t *)sb.data, sb.size, false, &reply);
        msgpack_sbuffer_destroy(&sb);
        size_t off = 0;
        if (msgpack_unpack_next(&u, (const char *)reply, n, &off) != MSGPACK_UNPACK_SUCCESS) {
            mr->bad++;
            continue;
        }
        const msgpack_object *ms = get(&u.data, "model_score");
        double want = str_is(get(&u.data, "ruleset"), "model@1") ? 1 / (1 + exp(-0.85))
                                                                   : 1 / (1 + exp(-0.5));
        if (!ms || ms->type != MSGPACK_OBJECT_FLOAT64 || fabs(ms->via.f64 - want) > 1e-6)
            mr->bad++;
    }
    msgpack_unpacked_destroy(&u);
    rk_worker_free(w);
    return NULL;
}

static void test_model_reload_while_scoring(void **state)
{
    fixture *fx = *state;
    rk_model *m = NULL;
    rk_diag d;
    assert_int_equal(rk_model_import_mem("lin.json", LIN_JSON, strlen(LIN_JSON), &m, &d), 0);
    save_model(m, "lin2.rmdl");
    model_racer mr[2] = {{fx->e, 1500, 0}, {fx->e, 1500, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_model, &mr[i]), 0);
    for (int i = 0; i < 20; i++) {
        /* model@1: tiny (0.5 + 0.1 + 0.25); model@2: -1 + 0.001 * 500 + 0.5 * 2 */
        write_rules(i % 2 ? model_rules("1", "tiny.rmdl", true, 5)
                          : model_rules("2", "lin2.rmdl", true, 5));
        assert_int_equal(rk_engine_reload(fx->e, NULL), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(mr[i].bad, 0);
    }
}

/* A 100-tree depth-6 model trained by XGBoost (train_xgb.py's features:
 * amount, acct_txn_1h, acct_amount_24h, card_age_days, ip_risk, distance_km,
 * is_new_device, hour): through the pipeline, each test row's model_score is
 * XGBoost's own probability and its explanation adds up to XGBoost's margin.
 * Features come from schema fields, by default or declared out of the
 * model's order, and one from an expression; a row's missing value is an
 * absent field. */
static int setup_xgb(void **state)
{
    static char rules[2048];
    snprintf(rules, sizeof rules,
             "ruleset: xgb\nversion: \"1\"\n"
             "schema:\n"
             "  x_amount: float\n  acct_txn_1h: float\n  acct_amount_24h: float\n"
             "  card_age_days: float\n  ip_risk: float\n  distance_km: float\n"
             "  is_new_device: float\n  x_hour: float\n"
             "model:\n"
             "  file: %s/xgb.rmdl\n"
             "  explain_top: 8\n"
             "  features:\n"
             "    hour: x_hour\n"              /* out of the model's order */
             "    amount: x_amount * 1\n"      /* an expression */
             "rules:\n"
             "  - {id: risky, when: model.score > 0.5, action: review}\n",
             model_dir);
    return open_fixture(state, have_xgb ? rules : RULES_V1, 0, 0);
}

static void *read_all(const char *name, size_t size)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", model_dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    void *buf = malloc(size);
    assert_int_equal(fread(buf, 1, size, f), size);
    fclose(f);
    return buf;
}

static void test_model_matches_xgboost(void **state)
{
    fixture *fx = *state;
    if (!have_xgb)
        skip(); /* python3-xgboost is not installed */
    static const char *const keys[XGB_NF] = {"x_amount",      "acct_txn_1h", "acct_amount_24h",
                                             "card_age_days", "ip_risk",     "distance_km",
                                             "is_new_device", "x_hour"};
    float *X = read_all("X.f32", sizeof(float) * XGB_ROWS * XGB_NF);
    double *prob = read_all("prob.f64", sizeof(double) * XGB_ROWS);
    double *margin = read_all("margin.f64", sizeof(double) * XGB_ROWS);
    int reviews = 0, want_reviews = 0, missing = 0;
    for (int row = 0; row < XGB_ROWS; row++) {
        char id[32];
        snprintf(id, sizeof id, "x%d", row);
        fld f[4 + XGB_NF] = {fld_s("id", id), fld_s("account", "a"), fld_i("amount", 1),
                             fld_b("explain", true)};
        int n = 4;
        for (int k = 0; k < XGB_NF; k++) {
            float v = X[row * XGB_NF + k];
            if (isnan(v))
                missing++;
            else
                f[n++] = fld_f(keys[k], (double)v);
        }
        const msgpack_object *r = score_fields(fx, f, n);
        double p = f64_of(get(r, "model_score"));
        if (fabs(p - prob[row]) > 1e-6)
            fail_msg("row %d: riskd %.9g, XGBoost %.9g", row, p, prob[row]);
        const msgpack_object *ex = get(r, "explain");
        double sum = f64_of(get(ex, "bias"));
        const msgpack_object *cs = get(ex, "contributions");
        for (uint32_t i = 0; i < cs->via.array.size; i++)
            sum += f64_of(get(&cs->via.array.ptr[i], "contribution"));
        if (fabs(sum - margin[row]) > 1e-5)
            fail_msg("row %d: contributions + bias %.9g, XGBoost's margin %.9g", row, sum,
                     margin[row]);
        reviews += str_is(get(r, "decision"), "review");
        want_reviews += prob[row] > 0.5;
    }
    assert_true(missing > 0);
    assert_int_equal(reviews, want_reviews);
    free(X);
    free(prob);
    free(margin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_score_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_ops_refused_on_gateway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_then_keeps_working, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_changes_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_failure_keeps_old_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_held_across_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_while_scoring, setup, teardown),
        cmocka_unit_test(test_open_failure),
        cmocka_unit_test_setup_teardown(test_counters_through_pipeline, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_retry_is_replayed, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_lists, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_feedback, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_definition_change_on_reload, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_degraded_when_store_fails, setup_state_tiny,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_raw_values_on_disk, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_live_and_replay_agree, setup_state, teardown),
        cmocka_unit_test_setup_teardown(test_model_score_and_rules, setup_model, teardown),
        cmocka_unit_test_setup_teardown(test_model_explain, setup_model_mcc, teardown),
        cmocka_unit_test_setup_teardown(test_model_reload, setup_model, teardown),
        cmocka_unit_test_setup_teardown(test_model_reload_while_scoring, setup_model_mcc,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_model_matches_xgboost, setup_xgb, teardown),
    };
    return cmocka_run_group_tests(tests, models_setup, models_teardown);
}
