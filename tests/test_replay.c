/* Offline replay (engine/replay.h), the engine part of `riskctl backtest`:
 * reading replies (score, error, other, malformed; rule ids resolved to
 * indexes), a replayer's private store (counters start empty, two replayers
 * never share one, the directory is gone after close and after a failed
 * open), the event clock (counter windows, the retry window and a missing
 * `ts` follow the time set, not the machine's), features of the last request,
 * and seeding from a backup (--state): a replay continued from a backup
 * decides as one that never stopped. The CLI around it is tested end to end
 * by tests/test_backtest.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "engine/engine.h"
#include "engine/pipeline.h"
#include "engine/replay.h"
#include "lib/err.h"
#include "lib/log.h"
#include "state/store.h"

#define T0 1795000000000LL /* event time the tests start at */
#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)

static char tmp[256];        /* this test's scratch directory */
static char stores[300];     /* tmp_parent of the replayers: must be empty after each test */
static char rules_path[300]; /* the rule file written by setup */

static const char *const RULES =
    "ruleset: replay\n"
    "version: \"1\"\n"
    "thresholds:\n"
    "  review: 50\n"
    "counters:\n"
    "  acct_txn_1h: {by: account, window: 1h}\n"
    "model:\n"
    "  features:\n"
    "    n: acct_txn_1h\n"
    "    big: amount > 1000\n"
    "    ip_country_len: len(ip_country)\n"
    "rules:\n"
    "  - id: burst\n"
    "    when: acct_txn_1h >= 3\n"
    "    score: 50\n"
    "  - id: night\n"
    "    when: hour(ts) < 6\n"
    "    score: 0\n"
    "  - id: huge\n"
    "    when: amount > 1000000\n"
    "    action: block\n"
    "  - id: shadow_big\n"
    "    when: amount > 1000\n"
    "    score: 100\n"
    "    shadow: true\n";

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/rk_replay_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    snprintf(stores, sizeof stores, "%s/stores", tmp);
    snprintf(rules_path, sizeof rules_path, "%s/rules.yaml", tmp);
    write_text(rules_path, RULES);
    rk_log_set_level(RK_LOG_WARN);
    return mkdir(stores, 0700);
}

static int teardown(void **state)
{
    (void)state;
    int left = count_entries(stores);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return -1;
    return left == 0 ? 0 : -1; /* a replayer left its private store behind */
}

static rk_replayer *open_replayer(const char *state_dir)
{
    rk_replayer_config c = {.rules_path = rules_path, .state_dir = state_dir,
                            .tmp_parent = stores, .batch = 7};
    rk_replayer *r = NULL;
    rk_diag diag;
    int rc = rk_replayer_open(&c, &r, &diag);
    if (rc != 0)
        fail_msg("rk_replayer_open: %s: %s", rk_strerror(rc), diag.msg);
    return r;
}

/* A score request; ts < 0 leaves `ts` out, ip_country NULL leaves it out. */
static void pack_txn(msgpack_sbuffer *sb, const char *id, const char *account, int64_t amount,
                     int64_t ts, const char *ip_country)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (ts >= 0) + (ip_country != NULL));
    const char *keys[] = {"id", "account"}, *vals[] = {id, account};
    for (int i = 0; i < 2; i++) {
        msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
        msgpack_pack_str_with_body(&pk, vals[i], strlen(vals[i]));
    }
    msgpack_pack_str_with_body(&pk, "amount", 6);
    msgpack_pack_int64(&pk, amount);
    if (ts >= 0) {
        msgpack_pack_str_with_body(&pk, "ts", 2);
        msgpack_pack_int64(&pk, ts);
    }
    if (ip_country) {
        msgpack_pack_str_with_body(&pk, "ip_country", 10);
        msgpack_pack_str_with_body(&pk, ip_country, strlen(ip_country));
    }
}

/* The outcome rk_replayer_run gave is what its reply reads as: a fresh
 * decision's is taken from the worker, not read back from the reply. */
static void assert_reply_says(const rk_replayer *r, const rk_replay_outcome *o,
                              const uint8_t *reply, size_t len)
{
    rk_replay_outcome p;
    assert_int_equal(rk_replay_parse_reply(reply, len, rk_replayer_ruleset(r), &p), 0);
    assert_int_equal(o->kind, p.kind);
    assert_int_equal(o->verdict, p.verdict);
    assert_int_equal(o->error, p.error);
    assert_true(o->score == p.score);
    assert_int_equal(o->has_model_score, p.has_model_score);
    if (p.has_model_score)
        assert_true(o->model_score == p.model_score);
    assert_int_equal(o->has_shadow_verdict, p.has_shadow_verdict);
    if (p.has_shadow_verdict)
        assert_int_equal(o->shadow_verdict, p.shadow_verdict);
    assert_int_equal(o->degraded, p.degraded);
    assert_int_equal(o->replayed, p.replayed);
    assert_int_equal(o->unknown_ids, p.unknown_ids);
    assert_int_equal(o->nreasons, p.nreasons);
    assert_int_equal(o->nshadow, p.nshadow);
    assert_memory_equal(o->reasons, p.reasons, (size_t)p.nreasons * sizeof p.reasons[0]);
    assert_memory_equal(o->shadow, p.shadow, (size_t)p.nshadow * sizeof p.shadow[0]);
}

/* Runs one request at event time now and returns its outcome. */
static const rk_replay_outcome *run(rk_replayer *r, const char *id, const char *account,
                                    int64_t amount, int64_t ts, int64_t now)
{
    msgpack_sbuffer sb;
    pack_txn(&sb, id, account, amount, ts, NULL);
    rk_replay_set_now(now);
    const rk_replay_outcome *o = NULL;
    const uint8_t *reply;
    size_t len;
    assert_int_equal(rk_replayer_run(r, (const uint8_t *)sb.data, sb.size, &o, &reply, &len), 0);
    assert_reply_says(r, o, reply, len);
    msgpack_sbuffer_destroy(&sb);
    return o;
}

static bool has_reason(const rk_replayer *r, const rk_replay_outcome *o, const char *id)
{
    for (int i = 0; i < o->nreasons; i++)
        if (strcmp(rk_ruleset_rule_id(rk_replayer_ruleset(r), o->reasons[i]), id) == 0)
            return true;
    return false;
}

/* ---- replies ---- */

static void test_parse_replies(void **state)
{
    (void)state;
    rk_replayer *r = open_replayer(NULL);
    const rk_ruleset *rs = rk_replayer_ruleset(r);
    rk_replay_outcome o;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    /* A score reply naming rules by id, one the rule set lacks, in an order
     * other than riskd's keys. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    msgpack_pack_str_with_body(&pk, "reasons", 7);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "burst", 5);
    msgpack_pack_str_with_body(&pk, "gone", 4);
    msgpack_pack_str_with_body(&pk, "huge", 4);
    msgpack_pack_str_with_body(&pk, "decision", 8);
    msgpack_pack_str_with_body(&pk, "block", 5);
    msgpack_pack_str_with_body(&pk, "score", 5);
    msgpack_pack_int64(&pk, 50); /* a whole-number score may come as an int */
    msgpack_pack_str_with_body(&pk, "model_score", 11);
    msgpack_pack_double(&pk, 0.25);
    msgpack_pack_str_with_body(&pk, "shadow", 6);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, "shadow_big", 10);
    msgpack_pack_str_with_body(&pk, "shadow_decision", 15);
    msgpack_pack_str_with_body(&pk, "block", 5);
    msgpack_pack_str_with_body(&pk, "replayed", 8);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "extra", 5);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "deep", 4);
    msgpack_pack_array(&pk, 0);
    assert_int_equal(rk_replay_parse_reply((const uint8_t *)sb.data, sb.size, rs, &o), 0);
    assert_int_equal(o.kind, RK_REPLAY_DECISION);
    assert_int_equal(o.verdict, RK_BLOCK);
    assert_true(o.score == 50.0);
    assert_true(o.has_model_score && o.model_score == 0.25);
    assert_true(o.has_shadow_verdict && o.shadow_verdict == RK_BLOCK);
    assert_true(o.replayed && !o.degraded);
    assert_int_equal(o.nreasons, 2);
    assert_string_equal(rk_ruleset_rule_id(rs, o.reasons[0]), "burst");
    assert_string_equal(rk_ruleset_rule_id(rs, o.reasons[1]), "huge");
    assert_int_equal(o.nshadow, 1);
    assert_string_equal(rk_ruleset_rule_id(rs, o.shadow[0]), "shadow_big");
    assert_int_equal(o.unknown_ids, 1);
    /* Without a rule set: counted, not resolved. */
    assert_int_equal(rk_replay_parse_reply((const uint8_t *)sb.data, sb.size, NULL, &o), 0);
    assert_int_equal(o.nreasons, 3);
    assert_int_equal(o.unknown_ids, 0);
    /* Truncated anywhere: an error, never a read past the end. */
    for (size_t n = 0; n < sb.size; n++)
        assert_int_equal(rk_replay_parse_reply((const uint8_t *)sb.data, n, rs, &o), RK_EPARSE);
    msgpack_sbuffer_destroy(&sb);

    /* An error reply, and one with a code this build does not know. */
    const char *codes[] = {"bad_request", "no_such_code"};
    for (int i = 0; i < 2; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, "x", 1);
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "code", 4);
        msgpack_pack_str_with_body(&pk, codes[i], strlen(codes[i]));
        msgpack_pack_str_with_body(&pk, "message", 7);
        msgpack_pack_str_with_body(&pk, "m", 1);
        assert_int_equal(rk_replay_parse_reply((const uint8_t *)sb.data, sb.size, rs, &o), 0);
        assert_int_equal(o.kind, RK_REPLAY_ERROR);
        assert_int_equal(o.error, i == 0 ? RK_WERR_BAD_REQUEST : RK_WERR__COUNT);
        msgpack_sbuffer_destroy(&sb);
    }

    /* {"ok": true}: neither; not a map, or a decision that is not one: malformed. */
    const uint8_t ok[] = {0x81, 0xa2, 'o', 'k', 0xc3};
    assert_int_equal(rk_replay_parse_reply(ok, sizeof ok, rs, &o), 0);
    assert_int_equal(o.kind, RK_REPLAY_OTHER);
    const uint8_t num[] = {0x07};
    assert_int_equal(rk_replay_parse_reply(num, sizeof num, rs, &o), RK_EPARSE);
    const uint8_t badv[] = {0x81, 0xa8, 'd', 'e', 'c', 'i', 's', 'i', 'o', 'n',
                            0xa3, 'y', 'e', 's'};
    assert_int_equal(rk_replay_parse_reply(badv, sizeof badv, rs, &o), RK_EPARSE);
    rk_replayer_close(r);
}

/* ---- the pipeline in event time ---- */

static void test_counters_follow_event_time(void **state)
{
    (void)state;
    rk_replayer *r = open_replayer(NULL);
    assert_string_equal(rk_replayer_label(r), "replay@1");
    /* Three payments within the hour: the third is a burst. */
    assert_false(has_reason(r, run(r, "a1", "acct", 100, T0, T0), "burst"));
    assert_false(has_reason(r, run(r, "a2", "acct", 100, T0 + 10 * MIN_MS, T0), "burst"));
    const rk_replay_outcome *o = run(r, "a3", "acct", 100, T0 + 20 * MIN_MS, T0);
    assert_true(has_reason(r, o, "burst"));
    assert_int_equal(o->verdict, RK_REVIEW);
    /* Two hours of event time later the window has emptied, whatever the
     * clock of the machine says. */
    o = run(r, "a4", "acct", 100, T0 + 3 * HOUR_MS, T0 + 3 * HOUR_MS);
    assert_false(has_reason(r, o, "burst"));
    assert_int_equal(o->verdict, RK_ALLOW);
    /* Shadow rules and the shadow decision come through. */
    o = run(r, "a5", "other", 5000, T0, T0);
    assert_int_equal(o->nshadow, 1);
    assert_true(o->has_shadow_verdict && o->shadow_verdict == RK_REVIEW);
    assert_int_equal(o->verdict, RK_ALLOW);
    rk_replayer_close(r);
}

static void test_missing_ts_and_retries_use_the_set_time(void **state)
{
    (void)state;
    rk_replayer *r = open_replayer(NULL);
    /* No ts: the request is stamped with the time set (03:00 UTC: "night"). */
    int64_t night = 1795057200000LL; /* 2026-11-18 03:00:00 UTC */
    const rk_replay_outcome *o = run(r, "n1", "acct", 100, -1, night);
    assert_true(has_reason(r, o, "night"));
    o = run(r, "n2", "acct", 100, -1, night + 6 * HOUR_MS);
    assert_false(has_reason(r, o, "night"));
    /* A repeated id within 24 h of event time is a retry: the first
     * decision, and nothing counted again. */
    o = run(r, "n1", "acct", 100, -1, night + HOUR_MS);
    assert_true(o->replayed);
    assert_true(has_reason(r, o, "night"));
    /* A day later it is a new transaction. */
    o = run(r, "n1", "acct", 100, -1, night + 25 * HOUR_MS);
    assert_false(o->replayed);
    rk_replayer_close(r);
}

static void test_private_stores(void **state)
{
    (void)state;
    rk_replayer *a = open_replayer(NULL), *b = open_replayer(NULL);
    assert_int_equal(count_entries(stores), 2);
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        run(a, id, "acct", 100, T0 + i, T0);
    }
    assert_true(has_reason(a, run(a, "p3", "acct", 100, T0 + 3, T0), "burst"));
    /* b saw none of a's payments. */
    assert_false(has_reason(b, run(b, "p3", "acct", 100, T0 + 3, T0), "burst"));
    rk_replayer_close(a);
    rk_replayer_close(b);
    assert_int_equal(count_entries(stores), 0);
    rk_replayer_close(NULL);
}

static void test_features(void **state)
{
    (void)state;
    rk_replayer *r = open_replayer(NULL);
    const rk_ruleset *rs = rk_replayer_ruleset(r);
    assert_int_equal(rk_ruleset_nfeatures(rs), 3);
    assert_string_equal(rk_ruleset_feature_name(rs, 0), "n");
    msgpack_sbuffer sb;
    const rk_replay_outcome *o;
    const float *x = NULL;
    for (int i = 0; i < 2; i++) {
        pack_txn(&sb, i ? "f2" : "f1", "acct", 5000, T0 + i, i ? "FR" : NULL);
        rk_replay_set_now(T0);
        assert_int_equal(rk_replayer_run(r, (const uint8_t *)sb.data, sb.size, &o, NULL, NULL), 0);
        msgpack_sbuffer_destroy(&sb);
        assert_int_equal(rk_replayer_features(r, &x), 3);
        assert_true(x[0] == (float)(i + 1)); /* the counter includes this payment */
        assert_true(x[1] == 1.0f);
        assert_true(i ? x[2] == 2.0f : isnan(x[2]));
    }
    /* A request that is not scored has no features. */
    const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    assert_int_equal(rk_replayer_run(r, ping, sizeof ping, &o, NULL, NULL), 0);
    assert_int_equal(o->kind, RK_REPLAY_OTHER);
    assert_int_equal(rk_replayer_features(r, &x), 0);
    rk_replayer_close(r);
}

/* ---- failures leave nothing behind ---- */

static void test_open_failures(void **state)
{
    (void)state;
    rk_replayer *r = NULL;
    rk_diag diag;
    char broken[320];
    snprintf(broken, sizeof broken, "%s/broken.yaml", tmp);
    write_text(broken, "ruleset: b\nversion: \"1\"\nrules:\n  - id: x\n    when: amout > 1\n"
                       "    action: block\n");
    rk_replayer_config c = {.rules_path = broken, .tmp_parent = stores};
    assert_int_equal(rk_replayer_open(&c, &r, &diag), RK_ENOTFOUND);
    assert_null(r);
    assert_int_equal(diag.line, 5);
    assert_non_null(strstr(diag.msg, "amout"));
    assert_int_equal(count_entries(stores), 0);

    c.rules_path = rules_path;
    char nodir[320];
    snprintf(nodir, sizeof nodir, "%s/nothing-here", tmp);
    c.state_dir = nodir;
    assert_int_equal(rk_replayer_open(&c, &r, &diag), RK_ENOTFOUND);
    assert_non_null(strstr(diag.msg, "backup"));
    c.state_dir = tmp; /* a directory, but no data.mdb */
    assert_int_equal(rk_replayer_open(&c, &r, &diag), RK_EINVAL);
    assert_non_null(strstr(diag.msg, "data.mdb"));
    assert_int_equal(count_entries(stores), 0);

    c.state_dir = NULL;
    c.tmp_parent = nodir; /* cannot make the private store */
    assert_int_equal(rk_replayer_open(&c, &r, &diag), RK_EIO);
    assert_non_null(strstr(diag.msg, "temporary"));
}

/* ---- --state: continuing from a backup ---- */

static int64_t live_clock(void)
{
    return T0;
}

static void test_state_from_backup(void **state)
{
    (void)state;
    /* A "live" engine scores the first part and is backed up. */
    char data[320], backup[320];
    snprintf(data, sizeof data, "%s/live", tmp);
    snprintf(backup, sizeof backup, "%s/backup", tmp);
    rk_engine_config ec;
    rk_engine_config_default(&ec);
    ec.rules_path = rules_path;
    ec.store.dir = data;
    ec.store.sweep_interval_ms = 0;
    ec.clock_ms = live_clock;
    rk_engine *e = NULL;
    rk_diag diag;
    assert_int_equal(rk_engine_open(&ec, &e, &diag), 0);
    rk_worker *w = NULL;
    assert_int_equal(rk_worker_new(e, &w), 0);
    for (int i = 0; i < 2; i++) {
        msgpack_sbuffer sb;
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        pack_txn(&sb, id, "acct", 100, T0 + i * MIN_MS, NULL);
        const uint8_t *reply;
        rk_pipeline_run(w, (const uint8_t *)sb.data, sb.size, false, &reply);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_int_equal(rk_store_backup(rk_engine_store(e), backup), 0);
    rk_worker_free(w);
    rk_engine_close(e);

    /* The replay continues where the backup left off: the third payment of
     * the hour is a burst, as it was live; from empty counters it is not. */
    rk_replayer *r = open_replayer(backup);
    assert_true(has_reason(r, run(r, "s2", "acct", 100, T0 + 2 * MIN_MS, T0), "burst"));
    /* The backup's decisions are remembered: a repeat is a retry. */
    assert_true(run(r, "s0", "acct", 100, T0, T0 + MIN_MS)->replayed);
    rk_replayer_close(r);
    r = open_replayer(NULL);
    assert_false(has_reason(r, run(r, "s2", "acct", 100, T0 + 2 * MIN_MS, T0), "burst"));
    rk_replayer_close(r);
    /* The backup itself is untouched (copied, not used in place). */
    assert_int_equal(count_entries(backup), 3); /* data.mdb, secret, one log segment */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_follow_event_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ts_and_retries_use_the_set_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_private_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_from_backup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
