/* Decisions: verdict names, the precedence function on its own, and the
 * precedence as rk_ruleset_eval applies it to matched rules (allow beats
 * block, block beats review, thresholds, negative scores, no match, missing
 * fields, shadow rules and shadow_decision). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/arena.h"
#include "rules/ruleset.h"
#include "rules/ruleset_int.h"

static void test_verdict_names(void **state)
{
    assert_string_equal(rk_verdict_name(RK_ALLOW), "allow");
    assert_string_equal(rk_verdict_name(RK_REVIEW), "review");
    assert_string_equal(rk_verdict_name(RK_BLOCK), "block");
    assert_string_equal(rk_verdict_name((rk_verdict)42), "?");
    for (int v = 0; v < RK_VERDICT__COUNT; v++)
        assert_int_equal(rk_verdict_from_name(rk_verdict_name((rk_verdict)v)), v);
    assert_int_equal(rk_verdict_from_name("deny"), -1);
    assert_int_equal(rk_verdict_from_name("Block"), -1);
    assert_int_equal(rk_verdict_from_name(""), -1);
    assert_int_equal(rk_verdict_from_name(NULL), -1);
    /* Severity order is what makes "most severe" a max. */
    assert_true(RK_ALLOW < RK_REVIEW && RK_REVIEW < RK_BLOCK);
}

static rk_verdict decide(bool allow, int action, double score, const rk_thresholds *th)
{
    rk_tally t = {.allow = allow, .action = action, .score = score};
    return rk_decide(&t, th);
}

static void test_precedence_function(void **state)
{
    const rk_thresholds none = {0};
    const rk_thresholds both = {.has_review = true, .review = 50, .has_block = true, .block = 90};
    const rk_thresholds review_only = {.has_review = true, .review = 50};
    const rk_thresholds block_only = {.has_block = true, .block = 90};
    const rk_thresholds equal = {.has_review = true, .review = 50, .has_block = true, .block = 50};

    assert_int_equal(decide(false, -1, 0, &none), RK_ALLOW);
    assert_int_equal(decide(false, -1, 1e9, &none), RK_ALLOW); /* no thresholds: never */
    assert_int_equal(decide(true, RK_BLOCK, 1e9, &both), RK_ALLOW);
    assert_int_equal(decide(false, RK_BLOCK, 0, &both), RK_BLOCK);
    assert_int_equal(decide(false, RK_REVIEW, 0, &both), RK_REVIEW);
    assert_int_equal(decide(false, RK_REVIEW, 90, &both), RK_BLOCK);
    assert_int_equal(decide(false, RK_BLOCK, 50, &both), RK_BLOCK);
    assert_int_equal(decide(false, -1, 49.999, &both), RK_ALLOW);
    assert_int_equal(decide(false, -1, 50, &both), RK_REVIEW);
    assert_int_equal(decide(false, -1, 89.999, &both), RK_REVIEW);
    assert_int_equal(decide(false, -1, 90, &both), RK_BLOCK);
    assert_int_equal(decide(false, -1, -500, &both), RK_ALLOW);
    assert_int_equal(decide(false, -1, 1e9, &review_only), RK_REVIEW);
    assert_int_equal(decide(false, -1, 60, &block_only), RK_ALLOW);
    assert_int_equal(decide(false, -1, 90, &block_only), RK_BLOCK);
    assert_int_equal(decide(false, -1, 50, &equal), RK_BLOCK);
}

/* ---- through rk_ruleset_eval ------------------------------------------ */

static const char policy[] =
    "ruleset: decide\n"
    "version: \"1\"\n"
    "thresholds: {review: 50, block: 90}\n"
    "rules:\n"
    "  - {id: score_a, when: \"mcc == 1\", score: 60}\n"
    "  - {id: review_b, when: \"country == 'R'\", action: review}\n"
    "  - {id: block_c, when: \"country == 'B' or card == 'B'\", action: block}\n"
    "  - {id: allow_d, when: \"account == 'vip'\", action: allow}\n"
    "  - {id: score_e, when: \"currency == 'EUR'\", score: 35}\n"
    "  - {id: minus_f, when: \"type == 'refund'\", score: -100}\n"
    "  - {id: shadow_g, when: \"channel == 'web'\", score: 40, shadow: true}\n"
    "  - {id: shadow_block_h, when: \"device == 'd1'\", action: block, shadow: true}\n"
    "  - {id: shadow_allow_i, when: \"merchant == 'm1'\", action: allow, shadow: true}\n";

typedef struct fixture {
    rk_ruleset *rs;   /* the rule set under test */
    rk_arena arena;   /* scratch for the evaluator */
    rk_eval_ctx ctx;  /* evaluation context */
    rk_txn txn;       /* the transaction being built */
    rk_decision d;    /* the last decision */
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    rk_diag diag;
    if (rk_ruleset_load_mem("decide.yaml", policy, sizeof policy - 1, &f.rs, &diag)) {
        char buf[1200];
        fprintf(stderr, "%s\n", rk_diag_format(&diag, buf, sizeof buf));
        return -1;
    }
    rk_arena_init(&f.arena, 1 << 16);
    f.ctx.arena = &f.arena;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rk_ruleset_free(f->rs);
    rk_arena_free(&f->arena);
    return 0;
}

static void put(fixture *f, int slot, const char *s)
{
    f->txn.v[slot] = rk_value_str(s, (uint32_t)strlen(s));
}

/* Starts a transaction with only the required fields. */
static void begin(fixture *f)
{
    memset(&f->txn, 0, sizeof f->txn);
    put(f, RK_F_ID, "t1");
    put(f, RK_F_ACCOUNT, "a1");
    f->txn.v[RK_F_AMOUNT] = rk_value_int(100);
}

static const rk_decision *run(fixture *f)
{
    rk_arena_reset(&f->arena);
    rk_ruleset_eval(f->rs, &f->txn, &f->ctx, &f->d);
    return &f->d;
}

static void assert_ids(const fixture *f, const uint16_t *idx, int n, const char *want)
{
    char got[512] = "";
    size_t off = 0;
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%s", i ? "," : "",
                                rk_ruleset_rule_id(f->rs, idx[i]));
    assert_string_equal(got, want);
}

static void test_no_match_allows(void **state)
{
    fixture *f = *state;
    begin(f);
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW);
    assert_int_equal(d->nreasons, 0);
    assert_int_equal(d->nshadow, 0);
    assert_true(d->score == 0);
    assert_true(d->has_shadow_rules);
    assert_int_equal(d->shadow_verdict, RK_ALLOW);
}

static void test_allow_beats_block(void **state)
{
    fixture *f = *state;
    begin(f);
    put(f, RK_F_COUNTRY, "B");
    put(f, RK_F_ACCOUNT, "vip");
    f->txn.v[RK_F_MCC] = rk_value_int(1);
    put(f, RK_F_CURRENCY, "EUR"); /* score 95: over the block threshold too */
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW);
    assert_ids(f, d->reasons, d->nreasons, "score_a,block_c,allow_d,score_e");
    assert_true(d->score == 95);
}

static void test_block_beats_review(void **state)
{
    fixture *f = *state;
    begin(f);
    put(f, RK_F_COUNTRY, "R");
    put(f, RK_F_CARD, "B");
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_BLOCK);
    assert_ids(f, d->reasons, d->nreasons, "review_b,block_c");

    begin(f);
    put(f, RK_F_COUNTRY, "R");
    d = run(f);
    assert_int_equal(d->verdict, RK_REVIEW);
    assert_ids(f, d->reasons, d->nreasons, "review_b");
}

static void test_thresholds(void **state)
{
    fixture *f = *state;
    begin(f);
    put(f, RK_F_CURRENCY, "EUR");
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW); /* 35 < 50 */
    assert_ids(f, d->reasons, d->nreasons, "score_e");
    assert_true(d->score == 35);

    f->txn.v[RK_F_MCC] = rk_value_int(1);
    d = run(f);
    assert_int_equal(d->verdict, RK_BLOCK); /* 95 >= 90 */
    assert_true(d->score == 95);

    begin(f);
    f->txn.v[RK_F_MCC] = rk_value_int(1);
    d = run(f);
    assert_int_equal(d->verdict, RK_REVIEW); /* 60 */

    put(f, RK_F_COUNTRY, "R"); /* a review action and a review score: still review */
    d = run(f);
    assert_int_equal(d->verdict, RK_REVIEW);
}

static void test_negative_scores(void **state)
{
    fixture *f = *state;
    begin(f);
    f->txn.v[RK_F_MCC] = rk_value_int(1);
    put(f, RK_F_CURRENCY, "EUR");
    put(f, RK_F_TYPE, "refund");
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW); /* 60 + 35 - 100 */
    assert_true(d->score == -5);
    assert_ids(f, d->reasons, d->nreasons, "score_a,score_e,minus_f");
}

static void test_missing_fields_do_not_match(void **state)
{
    fixture *f = *state;
    begin(f);
    /* country missing: "country == 'B' or card == 'B'" is unknown or false. */
    put(f, RK_F_CARD, "other");
    const rk_decision *d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW);
    assert_int_equal(d->nreasons, 0);
    /* unknown or true is true */
    put(f, RK_F_CARD, "B");
    d = run(f);
    assert_int_equal(d->verdict, RK_BLOCK);
}

static void test_shadow(void **state)
{
    fixture *f = *state;
    begin(f);
    put(f, RK_F_CHANNEL, "web");
    f->txn.v[RK_F_MCC] = rk_value_int(1);
    const rk_decision *d = run(f);
    /* Live: 60 → review. Shadow: 60 + 40 = 100 → block. */
    assert_int_equal(d->verdict, RK_REVIEW);
    assert_true(d->score == 60);
    assert_ids(f, d->reasons, d->nreasons, "score_a");
    assert_ids(f, d->shadow, d->nshadow, "shadow_g");
    assert_int_equal(d->shadow_verdict, RK_BLOCK);
    assert_true(d->shadow_score == 100);

    /* A shadow block rule never blocks live. */
    begin(f);
    put(f, RK_F_DEVICE, "d1");
    d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW);
    assert_int_equal(d->nreasons, 0);
    assert_ids(f, d->shadow, d->nshadow, "shadow_block_h");
    assert_int_equal(d->shadow_verdict, RK_BLOCK);

    /* A shadow allow rule outranks a live block in the shadow decision only. */
    put(f, RK_F_COUNTRY, "B");
    put(f, RK_F_MERCHANT, "m1");
    d = run(f);
    assert_int_equal(d->verdict, RK_BLOCK);
    assert_ids(f, d->reasons, d->nreasons, "block_c");
    assert_ids(f, d->shadow, d->nshadow, "shadow_block_h,shadow_allow_i");
    assert_int_equal(d->shadow_verdict, RK_ALLOW);

    /* A live allow also allows in the shadow decision. */
    begin(f);
    put(f, RK_F_ACCOUNT, "vip");
    put(f, RK_F_DEVICE, "d1");
    d = run(f);
    assert_int_equal(d->verdict, RK_ALLOW);
    assert_int_equal(d->shadow_verdict, RK_ALLOW);
}

static void test_no_shadow_rules(void **state)
{
    static const char text[] = "ruleset: plain\nversion: '1'\nthresholds: {review: 10}\n"
                               "rules:\n  - {id: a, when: 'amount > 5', score: 20}\n";
    rk_ruleset *rs = NULL;
    rk_diag diag;
    assert_int_equal(rk_ruleset_load_mem("plain.yaml", text, sizeof text - 1, &rs, &diag), 0);
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    txn.v[RK_F_AMOUNT] = rk_value_int(6);
    static rk_decision d;
    rk_ruleset_eval(rs, &txn, &ctx, &d);
    assert_false(d.has_shadow_rules);
    assert_int_equal(d.verdict, RK_REVIEW);
    assert_int_equal(d.shadow_verdict, RK_REVIEW); /* the same decision, computed the same way */
    assert_true(d.shadow_score == 20);
    assert_false(rk_ruleset_rule_shadow(rs, 0));
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_names),
        cmocka_unit_test(test_precedence_function),
        cmocka_unit_test(test_no_match_allows),
        cmocka_unit_test(test_allow_beats_block),
        cmocka_unit_test(test_block_beats_review),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_negative_scores),
        cmocka_unit_test(test_missing_fields_do_not_match),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_no_shadow_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
