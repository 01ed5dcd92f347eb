/* The engine and the pipeline, in-process: score decisions and reasons, ping,
 * admin-only ops refused on the gateway side, malformed input, too_large,
 * reload (success, failure, snapshots held across a swap, reloads racing with
 * scoring), and the stats map. Requests are built with msgpack-c's packer and
 * replies read back with its unpacker, as a gateway would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "engine/engine.h"
#include "engine/pipeline.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "lib/err.h"
#include "lib/log.h"

static char tmpdir[256];
static char rules_path[512];

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
} fixture;

static int open_fixture(void **state, size_t max_body)
{
    rk_log_set_level(RK_LOG_ERROR + 1); /* quiet: reload logs are expected here */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rk_test_engine_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(rules_path, sizeof rules_path, "%s/rules.yaml", tmpdir);
    write_rules(RULES_V1);
    fixture *fx = calloc(1, sizeof *fx);
    rk_engine_config cfg = {.rules_path = rules_path, .max_body = max_body, .fallback = RK_REVIEW};
    rk_diag d;
    if (rk_engine_open(&cfg, &fx->e, &d) < 0) {
        char buf[1200];
        fprintf(stderr, "rk_engine_open: %s\n", rk_diag_format(&d, buf, sizeof buf));
        return -1;
    }
    if (rk_worker_new(fx->e, &fx->w) < 0)
        return -1;
    msgpack_unpacked_init(&fx->reply);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return open_fixture(state, 0);
}

static int setup_small(void **state)
{
    return open_fixture(state, 256);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    msgpack_unpacked_destroy(&fx->reply);
    rk_worker_free(fx->w);
    rk_engine_close(fx->e);
    free(fx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- building requests ------------------------------------------------------ */

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

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

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool str_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void assert_str(const msgpack_object *o, const char *s)
{
    if (!str_is(o, s)) {
        char buf[512] = "(absent)";
        if (o)
            msgpack_object_print_buffer(buf, sizeof buf, *o);
        fail_msg("expected \"%s\", got %s", s, buf);
    }
}

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
    static const char *const keys[] = {"ruleset", "uptime_s", "workers", "inflight", "requests",
                                       "decisions", "degraded", "errors", "arith_errors",
                                       "reloads", "rules", "shadow_rules"};
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
    rk_engine_config cfg = {.rules_path = path};
    rk_engine *e = NULL;
    rk_diag d;
    assert_true(rk_engine_open(&cfg, &e, &d) < 0);
    assert_null(e);
    assert_string_equal(d.file, path);
    assert_int_equal(d.line, 5);
    assert_int_equal(d.col, 11);
    cfg.rules_path = "/nonexistent/rules.yaml";
    assert_int_equal(rk_engine_open(&cfg, &e, &d), RK_EIO);
    unlink(path);
    rmdir(dir);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
