/* Rule sets: loading (from files and memory), accessors, symbol look-up,
 * positions of expression errors in each YAML scalar style, includes (depth
 * limit), list files, counters and dynamic lists, limits, the model section
 * (feature vectors, default bindings, scoring and explaining through the rule
 * set, the feature limit), and the shipped rules/default.yaml run against
 * every case of rules/default.test.yaml (with its counter, dynamic-list and
 * model-score overrides, the model scoring the others) through
 * rk_ruleset_eval.
 *
 * Loader diagnostics for each kind of mistake are in the golden files
 * (tests/golden/rules, test_golden_rules.c); this file tests what needs code
 * around it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/arena.h"
#include "lib/err.h"
#include "rules/ruleset.h"
#include "rules/yamlnode.h"

/* Loads text from memory; returns the code and, on failure, the formatted diagnostic. */
static int load(const char *text, rk_ruleset **rs, char *msg, size_t size)
{
    rk_diag d;
    *rs = NULL;
    int rc = rk_ruleset_load_mem("mem.yaml", text, strlen(text), rs, &d);
    if (rc)
        rk_diag_format(&d, msg, size);
    else
        snprintf(msg, size, "(loaded)");
    return rc;
}

/* Asserts that text fails with exactly code and message. */
static void assert_load_error(const char *text, int code, const char *want)
{
    rk_ruleset *rs;
    char msg[1200];
    int rc = load(text, &rs, msg, sizeof msg);
    assert_null(rs);
    if (rc != code || strcmp(msg, want) != 0)
        fail_msg("expected %s '%s'\n got %s '%s'", rk_strerror(code), want, rk_strerror(rc), msg);
}

static rk_ruleset *load_ok(const char *text)
{
    rk_ruleset *rs;
    char msg[1200];
    if (load(text, &rs, msg, sizeof msg))
        fail_msg("%s", msg);
    return rs;
}

static const char basic[] =
    "ruleset: shop.eu-1\n"
    "version: 2026.11.1 beta\n"
    "schema:\n"
    "  account_age_days: int\n"
    "  ipRisk: float\n"
    "  is_3ds: bool\n"
    "  segment: str\n"
    "lists:\n"
    "  codes: [7995, '4829']\n"
    "  names: [x, 'y z', 12]\n"
    "rules:\n"
    "  - id: r1\n"
    "    when: amount > 10\n"
    "    score: 12.5\n"
    "    reason: big\n"
    "  - id: r_2\n"
    "    when: mcc in @codes or account in @names\n"
    "    action: block\n"
    "    shadow: true\n";

static void test_accessors(void **state)
{
    rk_ruleset *rs = load_ok(basic);
    assert_string_equal(rk_ruleset_name(rs), "shop.eu-1");
    assert_string_equal(rk_ruleset_version(rs), "2026.11.1 beta");
    assert_string_equal(rk_ruleset_label(rs), "shop.eu-1@2026.11.1 beta");
    assert_int_equal(rk_ruleset_nrules(rs), 2);
    assert_string_equal(rk_ruleset_rule_id(rs, 0), "r1");
    assert_string_equal(rk_ruleset_rule_id(rs, 1), "r_2");
    assert_null(rk_ruleset_rule_id(rs, 2));
    assert_null(rk_ruleset_rule_id(rs, -1));
    assert_false(rk_ruleset_rule_shadow(rs, 0));
    assert_true(rk_ruleset_rule_shadow(rs, 1));
    assert_false(rk_ruleset_rule_shadow(rs, 7));
    const rk_schema *sc = rk_ruleset_schema(rs);
    assert_int_equal(sc->n, 4);
    assert_string_equal(sc->f[0].name, "account_age_days");
    assert_int_equal(sc->f[0].type, RK_T_INT);
    assert_string_equal(sc->f[1].name, "ipRisk");
    assert_int_equal(sc->f[1].type, RK_T_FLOAT);
    assert_int_equal(sc->f[2].type, RK_T_BOOL);
    assert_int_equal(sc->f[3].type, RK_T_STR);
    rk_ruleset_free(rs);
    rk_ruleset_free(NULL);
}

static void test_slot(void **state)
{
    rk_ruleset *rs = load_ok(basic);
    rk_type t;
    for (int f = 0; f < RK_F__STD; f++) {
        t = RK_T_MISSING;
        assert_int_equal(rk_ruleset_slot(rs, rk_field_name(f), &t), f);
        assert_int_equal(t, rk_field_type(f));
    }
    assert_int_equal(rk_ruleset_slot(rs, "account_age_days", &t), RK_F__STD);
    assert_int_equal(t, RK_T_INT);
    assert_int_equal(rk_ruleset_slot(rs, "segment", &t), RK_F__STD + 3);
    assert_int_equal(t, RK_T_STR);
    assert_int_equal(rk_ruleset_slot(rs, "ipRisk", NULL), RK_F__STD + 1);
    t = RK_T_BOOL;
    assert_int_equal(rk_ruleset_slot(rs, "amout", &t), -1);
    assert_int_equal(t, RK_T_BOOL); /* untouched */
    assert_int_equal(rk_ruleset_slot(rs, "model.score", &t), -1); /* no model file */
    assert_int_equal(rk_ruleset_slot(rs, "acct_txn_1h", &t), -1); /* no counters yet */
    assert_int_equal(rk_ruleset_slot(rs, "", &t), -1);
    assert_int_equal(rk_ruleset_slot(rs, NULL, &t), -1);
    rk_ruleset_free(rs);
}

/* Inline lists: plain ints are ints, quoted text that reads as one matches too
 * (members are stored as text), other text is text. */
static void test_inline_list_values(void **state)
{
    rk_ruleset *rs = load_ok(basic);
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    static rk_decision d;
    int64_t mccs[] = {7995, 4829, 1};
    int want[] = {1, 1, 0};
    for (int i = 0; i < 3; i++) {
        txn.v[RK_F_MCC] = rk_value_int(mccs[i]);
        rk_ruleset_eval(rs, &txn, &ctx, &d);
        assert_int_equal(d.nshadow, want[i]);
        assert_int_equal(d.shadow_verdict, want[i] ? RK_BLOCK : RK_ALLOW);
        assert_int_equal(d.verdict, RK_ALLOW);
    }
    txn.v[RK_F_MCC] = rk_value_missing();
    const char *accounts[] = {"x", "y z", "12", "w"};
    for (int i = 0; i < 4; i++) {
        txn.v[RK_F_ACCOUNT] = rk_value_str(accounts[i], (uint32_t)strlen(accounts[i]));
        rk_ruleset_eval(rs, &txn, &ctx, &d);
        assert_int_equal(d.nshadow, i < 3);
    }
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

static void test_load_file_errors(void **state)
{
    rk_ruleset *rs = NULL;
    rk_diag d;
    char msg[1200];
    assert_int_equal(rk_ruleset_load("tests/golden/rules/no/such.yaml", &rs, &d), RK_EIO);
    assert_null(rs);
    assert_string_equal(rk_diag_format(&d, msg, sizeof msg),
                        "tests/golden/rules/no/such.yaml: cannot read rule file: No such file or "
                        "directory");
    assert_int_equal(rk_ruleset_load("tests/golden/rules", &rs, &d), RK_EIO);
    assert_string_equal(rk_diag_format(&d, msg, sizeof msg),
                        "tests/golden/rules: cannot read rule file: Is a directory");
    assert_load_error("ruleset: x\nversion: '1'\nlists:\n  l: {file: tests/golden/rules}\n",
                      RK_EIO,
                      "mem.yaml:4:13: cannot read list file 'tests/golden/rules': Is a directory");
    assert_load_error("ruleset: x\nversion: '1'\ninclude: [/dev/null]\n", RK_EIO,
                      "mem.yaml:3:11: cannot read included file '/dev/null': not a regular file");
}

/* Error codes, for callers that act on them (riskctl exit codes, reload). */
static void test_error_codes(void **state)
{
    const char *head = "ruleset: x\nversion: '1'\n";
    char text[512];
    struct {
        const char *body;
        int code;
    } cases[] = {
        {"rulez: []\n", RK_EPARSE},
        {"rules:\n  - {id: a, when: amount > 1, score: 1}\n  - {id: a, when: amount > 1, score: 1}\n",
         RK_EEXISTS},
        {"lists: {a: [1], b: [2]}\nschema: {z: int}\nrules: []\n", 0},
        {"counters: {c: {by: account, window: 1h}}\n", 0},
        {"model: {file: m.rmdl}\n", RK_EIO},
        {"model: {file: tests/golden/rules/models/corrupt.rmdl}\n", RK_ECORRUPT},
        {"model: {file: tests/golden/rules/models/tiny.rmdl}\n", RK_ENOTFOUND},
        {"model: {features: {x: amount}}\nrules: [{id: a, when: model.score > 0, score: 1}]\n",
         RK_EINVAL},
        {"model: {features: {x: email}}\n", RK_ETYPE},
        {"model: {features: {x: amount, x: mcc}}\n", RK_EEXISTS},
        {"model: {explain_top: 257}\n", RK_ERANGE},
        {"lists: {a: {dynamic: true}}\n", 0},
        {"counters: {c: {by: acount, window: 1h}}\n", RK_ENOTFOUND},
        {"counters: {c: {by: account, window: 91d}}\n", RK_ERANGE},
        {"counters: {c: {by: account, window: 1w}}\n", RK_EINVAL},
        {"counters: {c: {by: account, window: 1h, sum: card}}\n", RK_ETYPE},
        {"counters: {c: {by: account, window: 1h, when: c > 1}}\n", RK_EINVAL},
        {"counters: {c: {by: account, window: 1h, wen: amount > 1}}\n", RK_EPARSE},
        {"counters: {amount: {by: account, window: 1h}}\n", RK_EEXISTS},
        {"schema: {c: int}\ncounters: {c: {by: account, window: 1h}}\n", RK_EEXISTS},
        {"lists: {a: {dynamic: true, add_on_fraud: cad}}\n", RK_ENOTFOUND},
        {"lists: {a: {dynamic: true, add_on_fraud: card, ttl: 9999d}}\n", RK_ERANGE},
        {"rules:\n  - {id: a, when: amout > 1, score: 1}\n", RK_ENOTFOUND},
        {"rules:\n  - {id: a, when: amount > 'x', score: 1}\n", RK_ETYPE},
        {"rules:\n  - {id: a, when: amount >, score: 1}\n", RK_EPARSE},
        {"rules:\n  - {id: a, when: card in @nope, score: 1}\n", RK_ENOTFOUND},
        {"rules:\n  - {id: a, when: amount > 1, action: deny}\n", RK_EINVAL},
        {"rules:\n  - {id: a, when: amount > 1, score: 1e10}\n", RK_ERANGE},
        {"thresholds: {review: 9, block: 8}\n", RK_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].body);
        rk_ruleset *rs;
        char msg[1200];
        int rc = load(text, &rs, msg, sizeof msg);
        if (rc != cases[i].code)
            fail_msg("case %zu: expected %s, got %s: %s", i, rk_strerror(cases[i].code),
                     rk_strerror(rc), msg);
        rk_ruleset_free(rs);
    }
}

/* Counters: definitions as the store gets them, slots after the fields in
 * load order (an include's first), `when` filters, and the rule set owning
 * it all. */
static void test_counters(void **state)
{
    rk_ruleset *rs = load_ok(
        "ruleset: x\nversion: '1'\n"
        "include: [tests/golden/rules/inc/velocity_counters.yaml]\n"
        "counters:\n"
        "  dev_cards_24h: {by: device, window: 24h, distinct: card}\n"
        "  acct_amt_24h: {by: account, window: 24h, sum: amount}\n"
        "  acct_merch_1h: {by: [account, merchant, segment], window: 1h}\n"
        "  acct_big_7d: {by: account, window: 7d, when: amount >= 50000 and lower(channel) != 'pos'}\n"
        "  acct_legit_30d: {by: account, window: 30d, feedback: legit, sum: amount}\n"
        "schema:\n  segment: str\n"
        "rules:\n  - {id: r, when: acct_merch_1h > 3 or acct_txn_1h > 9, score: 1}\n");
    const rk_counters *cs = rk_ruleset_counters(rs);
    assert_non_null(cs);
    assert_int_equal(rk_counters_count(cs), 7);
    int base = rk_ruleset_counter_base(rs);
    assert_int_equal(base, RK_F__STD + 1);
    static const char *const names[] = {"acct_txn_1h",  "card_fraud_90d", "dev_cards_24h",
                                        "acct_amt_24h", "acct_merch_1h",  "acct_big_7d",
                                        "acct_legit_30d"};
    for (int i = 0; i < 7; i++) {
        rk_type t = RK_T_MISSING;
        assert_string_equal(rk_counters_def(cs, i)->name, names[i]);
        assert_int_equal(rk_ruleset_slot(rs, names[i], &t), base + i);
        assert_int_equal(t, RK_T_INT);
    }
    const rk_counter_def *d = rk_counters_def(cs, 0);
    assert_int_equal(d->nby, 1);
    assert_int_equal(d->by_slot[0], RK_F_ACCOUNT);
    assert_string_equal(d->by_name[0], "account");
    assert_int_equal(d->window_ms, 3600000);
    assert_int_equal(d->agg, RK_AGG_COUNT);
    assert_int_equal(d->field_slot, -1);
    assert_int_equal(d->feedback, RK_LABEL_NONE);
    d = rk_counters_def(cs, 1);
    assert_int_equal(d->by_slot[0], RK_F_CARD);
    assert_int_equal(d->window_ms, 90LL * 86400000);
    assert_int_equal(d->feedback, RK_LABEL_FRAUD);
    d = rk_counters_def(cs, 2);
    assert_int_equal(d->agg, RK_AGG_DISTINCT);
    assert_int_equal(d->field_slot, RK_F_CARD);
    assert_string_equal(d->field_name, "card");
    d = rk_counters_def(cs, 3);
    assert_int_equal(d->agg, RK_AGG_SUM);
    assert_int_equal(d->field_slot, RK_F_AMOUNT);
    d = rk_counters_def(cs, 4);
    assert_int_equal(d->nby, 3);
    assert_int_equal(d->by_slot[1], RK_F_MERCHANT);
    assert_int_equal(d->by_slot[2], RK_F__STD); /* the schema field */
    assert_string_equal(d->by_name[2], "segment");
    d = rk_counters_def(cs, 6);
    assert_int_equal(d->feedback, RK_LABEL_LEGIT);
    assert_int_equal(d->agg, RK_AGG_SUM);

    /* Filters: true without one; false when false or unknown. */
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    bool when[RK_COUNTERS_MAX];
    memset(when, 0, sizeof when);
    rk_ruleset_counter_when(rs, &txn, &ctx, when); /* amount missing: unknown */
    for (int i = 0; i < 7; i++)
        assert_int_equal(when[i], i != 5);
    txn.v[RK_F_AMOUNT] = rk_value_int(60000);
    txn.v[RK_F_CHANNEL] = rk_value_str("WEB", 3);
    rk_ruleset_counter_when(rs, &txn, &ctx, when);
    assert_true(when[5]);
    txn.v[RK_F_CHANNEL] = rk_value_str("POS", 3);
    rk_ruleset_counter_when(rs, &txn, &ctx, when);
    assert_false(when[5]);
    txn.v[RK_F_AMOUNT] = rk_value_int(100);
    txn.v[RK_F_CHANNEL] = rk_value_missing();
    rk_ruleset_counter_when(rs, &txn, &ctx, when);
    assert_false(when[5]);

    /* Rules read counters from their slots. */
    static rk_decision dec;
    rk_ruleset_eval(rs, &txn, &ctx, &dec);
    assert_int_equal(dec.nreasons, 0);
    txn.v[base + 4] = rk_value_int(4);
    rk_ruleset_eval(rs, &txn, &ctx, &dec);
    assert_int_equal(dec.nreasons, 1);
    assert_int_equal(dec.reasons[0], 1); /* after the include's rule */
    rk_arena_free(&arena);
    rk_ruleset_free(rs);

    /* No counters: no set, and the base is still where counters would go. */
    rs = load_ok(basic);
    assert_null(rk_ruleset_counters(rs));
    assert_int_equal(rk_ruleset_counter_base(rs), RK_F__STD + 4);
    rk_ruleset_counter_when(rs, &txn, &ctx, when); /* nothing to do */
    rk_ruleset_free(rs);
}

/* Dynamic lists: their information for the pipeline, and `in` asking the
 * evaluation context's dyn_has with the list's index. */
static int dyn_member(void *ud, int list, const rk_value *v)
{
    const rk_ruleset *rs = ud;
    const char *name = rk_ruleset_dynlist(rs, list)->name;
    if (strcmp(name, "blocked_devices") == 0)
        return v->type == RK_T_STR && v->len == 3 && memcmp(v->s, "d_9", 3) == 0;
    return -1; /* the other list's look-up fails */
}

static void test_dynamic_lists(void **state)
{
    rk_ruleset *rs = load_ok("ruleset: x\nversion: '1'\n"
                             "schema: {device_hash: str}\n"
                             "lists:\n"
                             "  static: [a, b]\n"
                             "  blocked_cards: {dynamic: true}\n"
                             "  blocked_devices: {dynamic: true, add_on_fraud: device_hash, ttl: 180d}\n"
                             "  not_dynamic: {dynamic: false, file: tests/golden/rules/lists/blocked_cards.txt}\n"
                             "rules:\n"
                             "  - {id: card, when: card in @blocked_cards, action: block}\n"
                             "  - {id: device, when: device in @blocked_devices, action: block}\n"
                             "  - {id: plain, when: card in @static, score: 1}\n");
    assert_int_equal(rk_ruleset_ndynlists(rs), 2);
    const rk_dynlist_info *a = rk_ruleset_dynlist(rs, 0), *b = rk_ruleset_dynlist(rs, 1);
    assert_string_equal(a->name, "blocked_cards");
    assert_int_equal(a->fraud_slot, -1);
    assert_int_equal(a->fraud_ttl_ms, 0);
    assert_string_equal(b->name, "blocked_devices");
    assert_int_equal(b->fraud_slot, RK_F__STD);
    assert_int_equal(b->fraud_ttl_ms, 180LL * 86400000);
    assert_null(rk_ruleset_dynlist(rs, 2));
    assert_null(rk_ruleset_dynlist(rs, -1));
    assert_int_equal(rk_ruleset_dynlist_find(rs, "blocked_devices"), 1);
    assert_int_equal(rk_ruleset_dynlist_find(rs, "static"), -1);
    assert_int_equal(rk_ruleset_dynlist_find(rs, "nope"), -1);
    assert_int_equal(rk_ruleset_dynlist_find(rs, NULL), -1);
    assert_true(rk_ruleset_has_list(rs, "static"));
    assert_true(rk_ruleset_has_list(rs, "blocked_cards"));
    assert_true(rk_ruleset_has_list(rs, "not_dynamic"));
    assert_false(rk_ruleset_has_list(rs, "nope"));

    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    static rk_decision d;
    txn.v[RK_F_CARD] = rk_value_str("a", 1);
    txn.v[RK_F_DEVICE] = rk_value_str("d_9", 3);
    rk_ruleset_eval(rs, &txn, &ctx, &d); /* no store: dynamic lists are empty */
    assert_int_equal(d.verdict, RK_ALLOW);
    assert_int_equal(d.nreasons, 1);
    ctx.dyn_has = dyn_member;
    ctx.dyn_ud = rs;
    rk_ruleset_eval(rs, &txn, &ctx, &d); /* the card's look-up fails: unknown */
    assert_int_equal(d.verdict, RK_BLOCK);
    assert_int_equal(d.nreasons, 2);
    assert_string_equal(rk_ruleset_rule_id(rs, d.reasons[0]), "device");
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

/* The column of an expression error in each scalar style. */
static void test_expression_positions(void **state)
{
    const char *head = "ruleset: x\nversion: '1'\nrules:\n  - id: r\n    score: 1\n";
    struct {
        const char *when;
        const char *want;
    } cases[] = {
        /* plain */
        {"    when: amount > 1 and amout > 2\n",
         "mem.yaml:6:26: unknown field 'amout' (did you mean 'amount'?)"},
        /* plain, continued on the next line: joined with a space, approximate */
        {"    when: amount > 1\n      and amout > 2\n",
         "mem.yaml:6:26: unknown field 'amout' (did you mean 'amount'?)"},
        /* single-quoted: one column for the quote */
        {"    when: 'amount > 1 and amout > 2'\n",
         "mem.yaml:6:27: unknown field 'amout' (did you mean 'amount'?)"},
        /* double-quoted */
        {"    when: \"amount > 1 and amout > 2\"\n",
         "mem.yaml:6:27: unknown field 'amout' (did you mean 'amount'?)"},
        /* literal block, error on the first line */
        {"    when: |\n      amout > 2\n", "mem.yaml:7:7: unknown field 'amout' (did you mean 'amount'?)"},
        /* literal block, error on a more-indented continuation line */
        {"    when: |\n      amount > 1\n         and amout > 2\n",
         "mem.yaml:8:14: unknown field 'amout' (did you mean 'amount'?)"},
        /* literal block with a comment after the indicator and a blank first line */
        {"    when: |-   # a comment\n\n      amount > 1 and\n      amout > 2\n",
         "mem.yaml:9:7: unknown field 'amout' (did you mean 'amount'?)"},
        /* literal block with an explicit indentation indicator and kept spaces */
        {"    when: |2\n        amout > 2\n", "mem.yaml:7:9: unknown field 'amout' (did you mean 'amount'?)"},
        /* folded block, error on the first line: exact */
        {"    when: >-\n      amout > 2\n      and amount > 1\n",
         "mem.yaml:7:7: unknown field 'amout' (did you mean 'amount'?)"},
        /* CRLF line ends */
        {"    when: |\r\n      amount > 1\r\n      and amout > 2\r\n",
         "mem.yaml:8:11: unknown field 'amout' (did you mean 'amount'?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512], msg[1200];
        snprintf(text, sizeof text, "%s%s", head, cases[i].when);
        rk_ruleset *rs;
        int rc = load(text, &rs, msg, sizeof msg);
        if (rc == 0 || strcmp(msg, cases[i].want) != 0)
            fail_msg("case %zu:\n  expected %s\n  got      %s", i, cases[i].want, msg);
    }
}

/* Includes nest at most 16 levels below the top file. */
static void test_include_depth(void **state)
{
    char dir[] = "/tmp/rk_test_ruleset_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600];
    for (int i = 0; i <= 17; i++) {
        snprintf(path, sizeof path, "%s/d%02d.yaml", dir, i);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        if (i == 0)
            fprintf(f, "ruleset: deep\nversion: '1'\n");
        if (i < 17)
            fprintf(f, "include: [d%02d.yaml]\n", i + 1);
        fprintf(f, "rules:\n  - {id: r%02d, when: amount > %d, score: 1}\n", i, i);
        fclose(f);
    }
    rk_ruleset *rs = NULL;
    rk_diag d;
    char msg[1200], want[1200];
    snprintf(path, sizeof path, "%s/d00.yaml", dir);
    assert_int_equal(rk_ruleset_load(path, &rs, &d), RK_ETOOBIG);
    snprintf(want, sizeof want, "%s/d16.yaml:1:11: includes are nested too deeply (at most 16 levels)",
             dir);
    assert_string_equal(rk_diag_format(&d, msg, sizeof msg), want);

    /* 16 levels are fine: cut the chain at d16, which then includes nothing. */
    snprintf(path, sizeof path, "%s/d16.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "rules:\n  - {id: r16, when: amount > 16, score: 1}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/d00.yaml", dir);
    if (rk_ruleset_load(path, &rs, &d))
        fail_msg("%s", rk_diag_format(&d, msg, sizeof msg));
    assert_int_equal(rk_ruleset_nrules(rs), 17);
    assert_string_equal(rk_ruleset_rule_id(rs, 0), "r16"); /* deepest first */
    assert_string_equal(rk_ruleset_rule_id(rs, 16), "r00");
    rk_ruleset_free(rs);

    for (int i = 0; i <= 17; i++) {
        snprintf(path, sizeof path, "%s/d%02d.yaml", dir, i);
        unlink(path);
    }
    rmdir(dir);
}

/* A file that includes itself is a cycle of one. */
static void test_include_self(void **state)
{
    char dir[] = "/tmp/rk_test_ruleset_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[600], want[2000], msg[1200];
    snprintf(path, sizeof path, "%s/self.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "ruleset: self\nversion: '1'\ninclude: [self.yaml]\n");
    fclose(f);
    rk_ruleset *rs = NULL;
    rk_diag d;
    assert_int_equal(rk_ruleset_load(path, &rs, &d), RK_EINVAL);
    unlink(path);
    rmdir(dir);
    snprintf(want, sizeof want, "%s:3:11: include cycle: %s -> %s", path, path, path);
    assert_string_equal(rk_diag_format(&d, msg, sizeof msg), want);
}

/* From memory, list files resolve from the current directory. */
static void test_mem_relative_paths(void **state)
{
    rk_ruleset *rs = load_ok("ruleset: x\nversion: '1'\n"
                             "lists:\n  cards: {file: tests/golden/rules/lists/blocked_cards.txt}\n"
                             "include: [tests/golden/rules/inc/common_lists.yaml]\n"
                             "rules:\n  - {id: c, when: card in @cards, action: block}\n");
    assert_int_equal(rk_ruleset_nrules(rs), 2);
    assert_string_equal(rk_ruleset_rule_id(rs, 0), "common_high_risk_country");
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    static rk_decision d;
    txn.v[RK_F_CARD] = rk_value_str("tok_999", 7);
    rk_ruleset_eval(rs, &txn, &ctx, &d);
    assert_int_equal(d.verdict, RK_BLOCK);
    txn.v[RK_F_CARD] = rk_value_str("# No", 4);
    rk_ruleset_eval(rs, &txn, &ctx, &d);
    assert_int_equal(d.verdict, RK_ALLOW);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

/* Text need not be NUL-terminated, and NULs inside are YAML errors. */
static void test_mem_buffers(void **state)
{
    static const char text[] = "ruleset: x\nversion: '1'\nrules: []\nGARBAGE";
    rk_ruleset *rs = NULL;
    rk_diag d;
    assert_int_equal(rk_ruleset_load_mem("m", text, sizeof text - 1 - 7, &rs, &d), 0);
    rk_ruleset_free(rs);
    static const char nul[] = "ruleset: x\nversion: '1'\0\n";
    rs = NULL;
    assert_int_equal(rk_ruleset_load_mem("m", nul, sizeof nul - 1, &rs, &d), RK_EPARSE);
    assert_null(rs);
    char msg[1200];
    assert_string_equal(rk_diag_format(&d, msg, sizeof msg),
                        "m:2:13: invalid YAML: control characters are not allowed");
}

static void test_limits(void **state)
{
    size_t cap = 200000;
    char *text = malloc(cap);
    char msg[1200];
    rk_ruleset *rs;
    for (int n = RK_MAX_RULES; n <= RK_MAX_RULES + 1; n++) {
        size_t off = (size_t)snprintf(text, cap, "ruleset: x\nversion: '1'\nrules:\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(text + off, cap - off,
                                    "  - {id: r%d, when: amount > %d, score: 1}\n", i, i);
        int rc = load(text, &rs, msg, sizeof msg);
        if (n == RK_MAX_RULES) {
            assert_int_equal(rc, 0);
            assert_int_equal(rk_ruleset_nrules(rs), RK_MAX_RULES);
            rk_ruleset_free(rs);
        } else {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_string_equal(msg, "mem.yaml:1028:5: too many rules (at most 1024)");
        }
    }
    for (int n = RK_SCHEMA_MAX; n <= RK_SCHEMA_MAX + 1; n++) {
        size_t off = (size_t)snprintf(text, cap, "ruleset: x\nversion: '1'\nschema:\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(text + off, cap - off, "  f%d: int\n", i);
        int rc = load(text, &rs, msg, sizeof msg);
        if (n == RK_SCHEMA_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(rk_ruleset_schema(rs)->n, RK_SCHEMA_MAX);
            rk_ruleset_free(rs);
        } else {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_string_equal(msg, "mem.yaml:68:3: too many schema fields (at most 64)");
        }
    }
    for (int n = RK_COUNTERS_MAX; n <= RK_COUNTERS_MAX + 1; n++) {
        size_t off = (size_t)snprintf(text, cap, "ruleset: x\nversion: '1'\ncounters:\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(text + off, cap - off, "  c%d: {by: account, window: %ds}\n",
                                    i, 30 + i);
        int rc = load(text, &rs, msg, sizeof msg);
        if (n == RK_COUNTERS_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(rk_counters_count(rk_ruleset_counters(rs)), RK_COUNTERS_MAX);
            assert_int_equal(rk_ruleset_slot(rs, "c63", NULL), RK_F__STD + 63);
            rk_ruleset_free(rs);
        } else {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_string_equal(msg, "mem.yaml:68:3: too many counters (at most 64)");
        }
    }
    /* Feedback counters and add_on_fraud lists share a transaction's 32 keys. */
    for (int n = RK_FBKEY_MAX; n <= RK_FBKEY_MAX + 1; n++) {
        size_t off = (size_t)snprintf(text, cap, "ruleset: x\nversion: '1'\ncounters:\n");
        for (int i = 0; i < n - 1; i++)
            off += (size_t)snprintf(text + off, cap - off,
                                    "  f%d: {by: card, window: %ds, feedback: fraud}\n", i, 30 + i);
        snprintf(text + off, cap - off, "lists:\n  l: {dynamic: true, add_on_fraud: device}\n");
        int rc = load(text, &rs, msg, sizeof msg);
        if (n == RK_FBKEY_MAX) {
            assert_int_equal(rc, 0);
            rk_ruleset_free(rs);
        } else {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_string_equal(msg, "mem.yaml:37:36: too many feedback counters and add_on_fraud "
                                     "lists (at most 32)");
        }
    }
    free(text);
    /* Counter names: shorter than RK_NAME_MAX, as schema fields. */
    char cname[RK_NAME_MAX + 1];
    memset(cname, 'c', sizeof cname);
    cname[RK_NAME_MAX - 1] = '\0';
    char cbuf[512], cwant[512];
    snprintf(cbuf, sizeof cbuf, "ruleset: x\nversion: '1'\ncounters: {%s: {by: card, window: 1h}}\n",
             cname);
    rs = load_ok(cbuf);
    rk_ruleset_free(rs);
    cname[RK_NAME_MAX - 1] = 'c';
    cname[RK_NAME_MAX] = '\0';
    snprintf(cbuf, sizeof cbuf, "ruleset: x\nversion: '1'\ncounters: {%s: {by: card, window: 1h}}\n",
             cname);
    snprintf(cwant, sizeof cwant, "mem.yaml:3:12: counter name '%s' is too long (at most 63 bytes)",
             cname);
    assert_load_error(cbuf, RK_EINVAL, cwant);
    /* Rule ids and list names: up to RK_NAME_MAX bytes. */
    char id[RK_NAME_MAX + 2];
    memset(id, 'a', sizeof id);
    id[RK_NAME_MAX] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf, "ruleset: x\nversion: '1'\nrules: [{id: %s, when: 'true', score: 1}]\n",
             id);
    rs = load_ok(buf);
    rk_ruleset_free(rs);
    id[RK_NAME_MAX] = 'a';
    id[RK_NAME_MAX + 1] = '\0';
    snprintf(buf, sizeof buf, "ruleset: x\nversion: '1'\nrules: [{id: %s, when: 'true', score: 1}]\n",
             id);
    char want[512];
    snprintf(want, sizeof want, "mem.yaml:3:14: rule id '%s' is too long (at most 64 bytes)", id);
    assert_load_error(buf, RK_EINVAL, want);
}

/* Small loader behaviours not worth a golden file each. */
static void test_loader_details(void **state)
{
    const char *h = "ruleset: x\nversion: '1'\n";
    char text[512];
#define TRY(body, code, msg)                             \
    do {                                                 \
        snprintf(text, sizeof text, "%s%s", h, body);    \
        assert_load_error(text, code, msg);              \
    } while (0)
    TRY("schema: {in: int}\n", RK_EINVAL,
        "mem.yaml:3:10: 'in' is a reserved word and cannot name a schema field");
    TRY("schema: {2fa: bool}\n", RK_EINVAL,
        "mem.yaml:3:10: invalid schema field name '2fa' (use letters, digits and _, not starting "
        "with a digit)");
    TRY("lists: {bad-name: [a]}\n", RK_EINVAL,
        "mem.yaml:3:9: invalid list name 'bad-name' (use letters, digits and _, not starting with "
        "a digit)");
    TRY("lists: {l: [a, ~]}\n", RK_EINVAL, "mem.yaml:3:16: list 'l': empty entry");
    TRY("lists: {l: {}}\n", RK_EPARSE,
        "mem.yaml:3:12: list 'l' needs 'file' (or an inline sequence of values)");
    TRY("lists: {l: {dynamic: false, fille: x}}\n", RK_EPARSE,
        "mem.yaml:3:29: unknown key 'fille' (did you mean 'file'?)");
    TRY("include: inc.yaml\n", RK_EPARSE, "mem.yaml:3:10: 'include' must be a sequence of file paths");
    TRY("thresholds: {review: 1e999}\n", RK_EINVAL, "mem.yaml:3:22: 'review' must be a number");
    TRY("thresholds: {block: .nan}\n", RK_EINVAL, "mem.yaml:3:21: 'block' must be a number");
    TRY("rules:\n  - {id: a, when: '', score: 1}\n", RK_EPARSE,
        "mem.yaml:4:20: unexpected end of expression");
    TRY("rules:\n  - {id: a, when: , score: 1}\n", RK_EPARSE, "mem.yaml:4:19: rule 'a': 'when' is empty");
    TRY("rules:\n  - {id: a, when: 'true', score: 1, reason: [x]}\n", RK_EPARSE,
        "mem.yaml:4:45: rule 'a': 'reason' must be text, found a sequence");
    TRY("rules:\n  - {id: [a], when: 'true', score: 1}\n", RK_EPARSE,
        "mem.yaml:4:10: rule 'id' must be text, found a sequence");
    TRY("rules:\n  - {id: a, when: 'true', score: '5'}\n", RK_EINVAL,
        "mem.yaml:4:34: rule 'a': 'score' must be a number");
    TRY("rules:\n  - {score: 1, id: a, when: 'true', action: block}\n", RK_EPARSE,
        "mem.yaml:4:37: rule 'a': has both 'action' and 'score'");
    TRY("version: '2'\n", RK_EPARSE,
        "mem.yaml:3:1: duplicate key 'version' (first defined at mem.yaml:2:1)");
    TRY("? [a]\n: b\n", RK_EPARSE, "mem.yaml:3:3: expected a key name, found a sequence");
    /* User text quoted in a message cannot break it over lines. */
    TRY("\"ru\\nles\\x01\": []\n", RK_EPARSE,
        "mem.yaml:3:1: unknown key 'ru\\nles\\x01' (did you mean 'rules'?)");
#undef TRY
    assert_load_error("ruleset: x\nversion: \"a\\tb\"\n", RK_EINVAL,
                      "mem.yaml:2:10: 'version' must be printable text on one line");
    assert_load_error("", RK_EPARSE,
                      "mem.yaml: the rule file is empty (it needs at least 'ruleset' and 'version')");

    /* Aliases are followed; the same rule twice is a duplicate id. */
    assert_load_error("ruleset: x\nversion: '1'\nrules:\n  - &r {id: a, when: 'true', score: 1}\n  - *r\n",
                      RK_EEXISTS,
                      "mem.yaml:4:13: duplicate rule id 'a' (first defined at mem.yaml:4:13)");
    /* Reasons are optional; a null reason is none. Shadow false is live. */
    rk_ruleset *rs = load_ok("ruleset: x\nversion: 7\nrules:\n"
                             "  - {id: a, when: 'true', score: -1.5, reason: ~, shadow: false}\n");
    assert_string_equal(rk_ruleset_label(rs), "x@7");
    assert_false(rk_ruleset_rule_shadow(rs, 0));
    rk_ruleset_free(rs);
}

/* ---- the model section --------------------------------------------------- */

#define TINY "tests/golden/rules/models/tiny.rmdl" /* features amount, count (3 trees) */
#define LINEAR "tests/golden/rules/models/linear.rmdl" /* amount, acct_txn_1h, is_new_device */

/* The checked-in fixtures are what `riskctl model import` makes of the JSON
 * models in tests/model/, byte for byte: they cannot drift from the format. */
static void test_model_fixtures(void **state)
{
    static const char *const pairs[][2] = {{"tests/model/tiny_xgb.json", TINY},
                                           {"tests/model/linear.json", LINEAR}};
    for (size_t i = 0; i < 2; i++) {
        rk_model *m = NULL;
        rk_diag d;
        assert_int_equal(rk_model_import(pairs[i][0], &m, &d), 0);
        uint8_t *bytes = NULL;
        size_t len = 0;
        assert_int_equal(rk_model_encode(m, &bytes, &len), 0);
        FILE *f = fopen(pairs[i][1], "rb");
        assert_non_null(f);
        static uint8_t file[4096];
        size_t n = fread(file, 1, sizeof file, f);
        fclose(f);
        if (n != len || memcmp(file, bytes, len) != 0)
            fail_msg("%s is not `riskctl model import %s`", pairs[i][1], pairs[i][0]);
        free(bytes);
        rk_model_free(m);
    }
}

static const char model_rules[] =
    "ruleset: m\nversion: '1'\n"
    "schema: {is_new_device: bool, ratio: float}\n"
    "counters: {acct_txn_1h: {by: account, window: 1h}}\n"
    "model:\n"
    "  file: " TINY "\n"
    "  features:\n"
    "    count: acct_txn_1h\n"
    "    log_amount: log(amount + 1)\n"
    "    foreign_ip: ip_country != card_country\n"
    "    new_device: is_new_device\n"
    "    ratio: ratio\n"
    "rules:\n"
    "  - {id: high, when: model.score >= 0.6, action: review}\n";

/* The feature vector: declared features in order, then the model's features
 * nobody declared, bound to the field or counter of their name; values as
 * floats, bools 0/1, missing NaN; the model fed in its own order. */
static void test_model_features(void **state)
{
    rk_ruleset *rs = load_ok(model_rules);
    const rk_model *m = rk_ruleset_model(rs);
    assert_non_null(m);
    assert_int_equal(rk_ruleset_nfeatures(rs), 6);
    static const char *const names[] = {"count",      "log_amount", "foreign_ip",
                                        "new_device", "ratio",      "amount"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(rk_ruleset_feature_name(rs, i), names[i]);
    assert_null(rk_ruleset_feature_name(rs, 6));
    assert_null(rk_ruleset_feature_name(rs, -1));
    assert_int_equal(rk_ruleset_explain_top(rs), RK_EXPLAIN_TOP_DEFAULT);
    rk_type t = RK_T_MISSING;
    int base = rk_ruleset_counter_base(rs);
    assert_int_equal(rk_ruleset_slot(rs, "model.score", &t), base + 1); /* after the counter */
    assert_int_equal(t, RK_T_FLOAT);

    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    memset(&txn, 0, sizeof txn);
    float x[RK_FEATURES_MAX];
    rk_ruleset_features(rs, &txn, &ctx, x); /* everything missing */
    for (int i = 0; i < 6; i++)
        assert_true(isnan(x[i]));
    txn.v[RK_F_AMOUNT] = rk_value_int(250);
    txn.v[RK_F_IP_COUNTRY] = rk_value_str("FR", 2);
    txn.v[RK_F_CARD_COUNTRY] = rk_value_str("US", 2);
    txn.v[RK_F__STD] = rk_value_bool(true);
    txn.v[RK_F__STD + 1] = rk_value_float(0.25);
    txn.v[base] = rk_value_int(4);
    rk_ruleset_features(rs, &txn, &ctx, x);
    assert_true(x[0] == 4.0f);
    assert_true(x[1] == (float)log(251.0));
    assert_true(x[2] == 1.0f);
    assert_true(x[3] == 1.0f);
    assert_true(x[4] == 0.25f);
    assert_true(x[5] == 250.0f);

    /* The model reads (amount, count): x[5], x[0]. */
    float in[2] = {x[5], x[0]};
    double margin, want = rk_model_predict(m, in, &margin);
    assert_true(fabs(margin - 0.85) < 1e-6); /* 0.5 + 0.1 + 0.25 */
    assert_true(rk_ruleset_model_score(rs, x, &txn) == want);
    assert_int_equal(txn.v[base + 1].type, RK_T_FLOAT);
    assert_true(txn.v[base + 1].f == want);
    static rk_decision dec;
    rk_ruleset_eval(rs, &txn, &ctx, &dec);
    assert_int_equal(dec.verdict, RK_REVIEW);

    /* Explanation: feature vector indices, largest first; all of them plus
     * the bias give the margin. */
    double contrib[RK_FEATURES_MAX + 1], bias = -1;
    rk_model_contrib top[RK_FEATURES_MAX];
    int n = rk_ruleset_model_explain(rs, x, contrib, top, &bias);
    assert_int_equal(n, 2);
    double sum = bias;
    for (int i = 0; i < n; i++) {
        assert_true(top[i].feature == 0 || top[i].feature == 5);
        if (i)
            assert_true(fabs(top[i].value) <= fabs(top[i - 1].value));
        sum += top[i].value;
    }
    assert_true(fabs(sum - margin) < 1e-6);

    /* A missing count goes to each split's default side. */
    txn.v[base] = rk_value_missing();
    rk_ruleset_features(rs, &txn, &ctx, x);
    assert_true(isnan(x[0]));
    in[1] = NAN;
    assert_true(rk_ruleset_model_score(rs, x, &txn) == rk_model_predict(m, in, NULL));
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

/* Defaults only, in the model's own order: x goes to the model as it is. A
 * model feature named like a str field cannot bind to it. */
static void test_model_default_bindings(void **state)
{
    rk_ruleset *rs = load_ok("ruleset: m\nversion: '1'\n"
                             "schema: {is_new_device: bool}\n"
                             "counters: {acct_txn_1h: {by: account, window: 1h}}\n"
                             "model: {file: " LINEAR ", explain_top: 1}\n");
    assert_int_equal(rk_ruleset_nfeatures(rs), 3);
    assert_string_equal(rk_ruleset_feature_name(rs, 0), "amount");
    assert_string_equal(rk_ruleset_feature_name(rs, 1), "acct_txn_1h");
    assert_string_equal(rk_ruleset_feature_name(rs, 2), "is_new_device");
    assert_int_equal(rk_ruleset_explain_top(rs), 1);
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    memset(&txn, 0, sizeof txn);
    txn.v[RK_F_AMOUNT] = rk_value_int(1000);
    txn.v[RK_F__STD] = rk_value_bool(false);
    txn.v[rk_ruleset_counter_base(rs)] = rk_value_int(3);
    float x[RK_FEATURES_MAX];
    rk_ruleset_features(rs, &txn, &ctx, x);
    assert_true(x[0] == 1000.0f && x[1] == 3.0f && x[2] == 0.0f);
    double margin, p = rk_model_predict(rk_ruleset_model(rs), x, &margin);
    assert_true(fabs(margin - (-3.0 + 2.0 + 1.5)) < 1e-6);
    assert_true(rk_ruleset_model_score(rs, x, &txn) == p);
    double contrib[RK_FEATURES_MAX + 1], bias;
    rk_model_contrib top[1];
    assert_int_equal(rk_ruleset_model_explain(rs, x, contrib, top, &bias), 1);
    assert_int_equal(top[0].feature, 0); /* amount: 2.0 */
    assert_true(fabs(top[0].value - 2.0) < 1e-6);
    assert_true(fabs(bias + 3.0) < 1e-6);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);

    /* A model feature named like a str field. */
    char dir[] = "/tmp/rk_test_ruleset_XXXXXX", path[64], text[512];
    assert_non_null(mkdtemp(dir));
    static const char json[] = "{\"objective\": \"logistic_regression\", \"features\": "
                               "[\"amount\", \"country\"], \"weights\": [1, 2], \"bias\": 0}";
    rk_model *m = NULL;
    rk_diag d;
    assert_int_equal(rk_model_import_mem("c.json", json, strlen(json), &m, &d), 0);
    snprintf(path, sizeof path, "%s/c.rmdl", dir);
    assert_int_equal(rk_model_save(m, path, &d), 0);
    rk_model_free(m);
    snprintf(text, sizeof text, "ruleset: m\nversion: '1'\nmodel:\n  file: %s\n", path);
    char want[512];
    snprintf(want, sizeof want,
             "mem.yaml:4:9: model feature 'country' has no binding: field 'country' is str (bind "
             "it under 'features:' to an int, float or bool expression)");
    assert_load_error(text, RK_ETYPE, want);
    snprintf(text, sizeof text,
             "ruleset: m\nversion: '1'\nmodel:\n  file: %s\n  features: {country: country == "
             "'US'}\n",
             path);
    rs = load_ok(text);
    assert_int_equal(rk_ruleset_nfeatures(rs), 2);
    assert_string_equal(rk_ruleset_feature_name(rs, 1), "amount");
    rk_ruleset_free(rs);
    unlink(path);
    rmdir(dir);
}

/* Without a model file: features are built, nothing is scored. */
static void test_model_features_only(void **state)
{
    rk_ruleset *rs = load_ok("ruleset: m\nversion: '1'\n"
                             "model: {features: {amount: amount, big: amount > 100, "
                             "r: amount / 3}}\n");
    assert_null(rk_ruleset_model(rs));
    assert_int_equal(rk_ruleset_nfeatures(rs), 3);
    assert_int_equal(rk_ruleset_slot(rs, "model.score", NULL), -1);
    rk_arena arena;
    rk_arena_init(&arena, 4096);
    rk_eval_ctx ctx = {.arena = &arena};
    static rk_txn txn;
    memset(&txn, 0, sizeof txn);
    txn.v[RK_F_AMOUNT] = rk_value_int(300);
    float x[RK_FEATURES_MAX];
    rk_ruleset_features(rs, &txn, &ctx, x);
    assert_true(x[0] == 300.0f && x[1] == 1.0f && x[2] == 100.0f);
    static rk_txn before;
    memcpy(&before, &txn, sizeof txn);
    assert_true(isnan(rk_ruleset_model_score(rs, x, &txn)));
    assert_memory_equal(&before, &txn, sizeof txn);
    double contrib[RK_FEATURES_MAX + 1], bias = 7;
    rk_model_contrib top[RK_FEATURES_MAX];
    assert_int_equal(rk_ruleset_model_explain(rs, x, contrib, top, &bias), 0);
    assert_true(bias == 0);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);

    /* No model section at all. */
    rs = load_ok(basic);
    assert_int_equal(rk_ruleset_nfeatures(rs), 0);
    assert_null(rk_ruleset_model(rs));
    assert_int_equal(rk_ruleset_explain_top(rs), RK_EXPLAIN_TOP_DEFAULT);
    rk_ruleset_free(rs);
}

/* RK_FEATURES_MAX, declared or brought in by the model. */
static void test_model_feature_limits(void **state)
{
    size_t cap = 200000;
    char *text = malloc(cap);
    char msg[1200];
    rk_ruleset *rs;
    for (int n = RK_FEATURES_MAX; n <= RK_FEATURES_MAX + 1; n++) {
        size_t off =
            (size_t)snprintf(text, cap, "ruleset: x\nversion: '1'\nmodel:\n  features:\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(text + off, cap - off, "    f%d: amount + %d\n", i, i);
        int rc = load(text, &rs, msg, sizeof msg);
        if (n == RK_FEATURES_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(rk_ruleset_nfeatures(rs), RK_FEATURES_MAX);
            rk_ruleset_free(rs);
        } else {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_string_equal(msg, "mem.yaml:261:5: too many model features (at most 256)");
        }
    }
    /* A model of 200 features (m0..m199), declared; then 100 more. */
    char dir[] = "/tmp/rk_test_ruleset_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    size_t off = (size_t)snprintf(text, cap,
                                  "{\"objective\": \"logistic_regression\", \"features\": [");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(text + off, cap - off, "%s\"m%d\"", i ? ", " : "", i);
    off += (size_t)snprintf(text + off, cap - off, "], \"weights\": [");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(text + off, cap - off, "%s0.5", i ? ", " : "");
    snprintf(text + off, cap - off, "], \"bias\": 0}");
    rk_model *m = NULL;
    rk_diag d;
    assert_int_equal(rk_model_import_mem("wide.json", text, strlen(text), &m, &d), 0);
    snprintf(path, sizeof path, "%s/wide.rmdl", dir);
    assert_int_equal(rk_model_save(m, path, &d), 0);
    rk_model_free(m);
    static const char head[] = "ruleset: x\nversion: '1'\nmodel:\n  file: %s\n  features:\n";
    off = (size_t)snprintf(text, cap, head, path);
    for (int i = 0; i < 200; i++) /* the model's own, declared out of order */
        off += (size_t)snprintf(text + off, cap - off, "    m%d: amount\n", 199 - i);
    rs = load_ok(text);
    assert_int_equal(rk_ruleset_nfeatures(rs), 200);
    rk_ruleset_free(rs);
    for (int i = 0; i < 100; i++) /* 100 more it does not use: 300 */
        off += (size_t)snprintf(text + off, cap - off, "    extra%d: mcc\n", i);
    assert_int_equal(load(text, &rs, msg, sizeof msg), RK_ETOOBIG);
    assert_string_equal(msg, "mem.yaml:262:5: too many model features (at most 256)");
    /* Declared 100, the model's 200 by default: too many, said at `file:`. */
    off = (size_t)snprintf(text, cap, head, path);
    for (int i = 0; i < 100; i++)
        off += (size_t)snprintf(text + off, cap - off, "    extra%d: mcc\n", i);
    assert_int_equal(load(text, &rs, msg, sizeof msg), RK_ETOOBIG);
    assert_string_equal(msg, "mem.yaml:4:9: too many model features: 100 declared and 200 more "
                             "the model uses (at most 256)");
    unlink(path);
    rmdir(dir);
    free(text);
}

/* ---- the shipped rule set and its case file ----------------------------- */

typedef struct case_run {
    rk_yn_doc doc;          /* the case file */
    const rk_ruleset *rs;   /* the rule set under test */
    rk_eval_ctx *ctx;       /* evaluation context */
    int *hits;              /* per rule: cases in which it matched */
    yaml_node_t *lists;     /* the current case's `lists:`, or NULL */
} case_run;

/* Sets the slots a mapping of names (fields or counters) gives. */
static void fill_slots(case_run *cr, yaml_node_t *txnmap, rk_txn *txn, const char *name)
{
    assert_int_equal(txnmap->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = txnmap->data.mapping.pairs.start;
         p < txnmap->data.mapping.pairs.top; p++) {
        yaml_node_t *k = rk_yn_node(&cr->doc, p->key), *v = rk_yn_node(&cr->doc, p->value);
        rk_type type;
        int slot = rk_ruleset_slot(cr->rs, rk_yn_str(k), &type);
        if (slot < 0)
            fail_msg("case '%s': unknown field '%s'", name, rk_yn_str(k));
        int64_t i;
        double f;
        bool b;
        if (type == RK_T_INT && rk_yn_int(v, &i))
            txn->v[slot] = rk_value_int(i);
        else if (type == RK_T_FLOAT && rk_yn_number(v, &f))
            txn->v[slot] = rk_value_float(f);
        else if (type == RK_T_BOOL && rk_yn_bool(v, &b))
            txn->v[slot] = rk_value_bool(b);
        else if (type == RK_T_STR && rk_yn_str(v))
            txn->v[slot] = rk_value_str(rk_yn_str(v), (uint32_t)v->data.scalar.length);
        else
            fail_msg("case '%s': bad value for '%s'", name, rk_yn_str(k));
    }
}

/* rk_eval_ctx.dyn_has over a case's `lists:` mapping (ud: the case_run;
 * cr->lists is the mapping, or NULL). Members compare as text. */
static int case_dyn_has(void *ud, int list, const rk_value *v)
{
    case_run *cr = ud;
    const char *name = rk_ruleset_dynlist(cr->rs, list)->name;
    yaml_node_t *seq = cr->lists ? rk_yn_get(&cr->doc, cr->lists, name, NULL) : NULL;
    char num[24];
    const char *s = v->s;
    size_t len = v->len;
    if (v->type == RK_T_INT) {
        len = (size_t)snprintf(num, sizeof num, "%lld", (long long)v->i);
        s = num;
    }
    for (yaml_node_item_t *it = seq ? seq->data.sequence.items.start : NULL;
         seq && it < seq->data.sequence.items.top; it++) {
        yaml_node_t *m = rk_yn_node(&cr->doc, *it);
        if (m->data.scalar.length == len && memcmp(rk_yn_str(m), s, len) == 0)
            return 1;
    }
    return 0;
}

/* An expected list of rule ids (when the case gives one) against the decision's. */
static void check_ids(case_run *cr, const char *name, const char *what, yaml_node_t *seq,
                      const uint16_t *idx, int n)
{
    if (!seq)
        return;
    char got[2048] = "", want[2048] = "";
    size_t off = 0;
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%s", i ? "," : "",
                                rk_ruleset_rule_id(cr->rs, idx[i]));
    off = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++)
        off += (size_t)snprintf(want + off, sizeof want - off, "%s%s",
                                it == seq->data.sequence.items.start ? "" : ",",
                                rk_yn_str(rk_yn_node(&cr->doc, *it)));
    if (strcmp(got, want) != 0)
        fail_msg("case '%s': %s: expected [%s], got [%s]", name, what, want, got);
}

static void check_case(case_run *cr, yaml_node_t *c)
{
    const char *name = rk_yn_str(rk_yn_get(&cr->doc, c, "name", NULL));
    assert_non_null(name);
    yaml_node_t *expect = rk_yn_get(&cr->doc, c, "expect", NULL);
    assert_non_null(expect);
    static rk_txn txn;
    static rk_decision d;
    memset(&txn, 0, sizeof txn);
    fill_slots(cr, rk_yn_get(&cr->doc, c, "txn", NULL), &txn, name);
    yaml_node_t *counters = rk_yn_get(&cr->doc, c, "counters", NULL);
    if (counters)
        fill_slots(cr, counters, &txn, name);
    cr->lists = rk_yn_get(&cr->doc, c, "lists", NULL);
    for (yaml_node_pair_t *p = cr->lists ? cr->lists->data.mapping.pairs.start : NULL;
         cr->lists && p < cr->lists->data.mapping.pairs.top; p++)
        if (rk_ruleset_dynlist_find(cr->rs, rk_yn_str(rk_yn_node(&cr->doc, p->key))) < 0)
            fail_msg("case '%s': no dynamic list '%s'", name,
                     rk_yn_str(rk_yn_node(&cr->doc, p->key)));
    rk_arena_reset(cr->ctx->arena);
    /* model.score as riskctl test sets it: given by the case, else the model's
     * over the case's features. */
    double ms;
    yaml_node_t *msn = rk_yn_get(&cr->doc, c, "model_score", NULL);
    if (msn) {
        int slot = rk_ruleset_slot(cr->rs, "model.score", NULL);
        bool null = rk_yn_is_null(msn);
        if (slot < 0 || (!null && !rk_yn_number(msn, &ms)))
            fail_msg("case '%s': model_score needs a model and a number", name);
        txn.v[slot] = null ? rk_value_missing() : rk_value_float(ms);
    } else if (rk_ruleset_model(cr->rs)) {
        static float x[RK_FEATURES_MAX];
        rk_ruleset_features(cr->rs, &txn, cr->ctx, x);
        rk_ruleset_model_score(cr->rs, x, &txn);
    }
    rk_ruleset_eval(cr->rs, &txn, cr->ctx, &d);
    for (int i = 0; i < d.nreasons; i++)
        cr->hits[d.reasons[i]]++;
    for (int i = 0; i < d.nshadow; i++)
        cr->hits[d.shadow[i]]++;

    char got[2048] = "";
    size_t off = 0;
    for (int i = 0; i < d.nreasons; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%s", i ? "," : "",
                                rk_ruleset_rule_id(cr->rs, d.reasons[i]));
    const char *decision = rk_yn_str(rk_yn_get(&cr->doc, expect, "decision", NULL));
    if (!decision || strcmp(decision, rk_verdict_name(d.verdict)) != 0)
        fail_msg("case '%s': expected %s, got %s (reasons %s, score %g)", name,
                 decision ? decision : "?", rk_verdict_name(d.verdict), got, d.score);
    check_ids(cr, name, "reasons", rk_yn_get(&cr->doc, expect, "reasons", NULL), d.reasons,
              d.nreasons);
    check_ids(cr, name, "shadow", rk_yn_get(&cr->doc, expect, "shadow", NULL), d.shadow,
              d.nshadow);
    double score;
    yaml_node_t *sn = rk_yn_get(&cr->doc, expect, "score", NULL);
    if (sn) {
        assert_true(rk_yn_number(sn, &score));
        if (fabs(score - d.score) > 1e-9)
            fail_msg("case '%s': score: expected %g, got %g", name, score, d.score);
    }
    const char *sd = rk_yn_str(rk_yn_get(&cr->doc, expect, "shadow_decision", NULL));
    if (sd && strcmp(sd, rk_verdict_name(d.shadow_verdict)) != 0)
        fail_msg("case '%s': shadow_decision: expected %s, got %s", name, sd,
                 rk_verdict_name(d.shadow_verdict));
}

static void test_default_ruleset_cases(void **state)
{
    rk_ruleset *rs = NULL;
    rk_diag diag;
    char msg[1200];
    if (rk_ruleset_load("rules/default.yaml", &rs, &diag))
        fail_msg("%s", rk_diag_format(&diag, msg, sizeof msg));
    assert_true(rk_ruleset_nrules(rs) >= 30);
    assert_string_equal(rk_ruleset_label(rs), "default@2026.11.1");

    FILE *f = fopen("rules/default.test.yaml", "rb");
    assert_non_null(f);
    static char text[1 << 17];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    rk_arena arena;
    rk_arena_init(&arena, 1 << 16);
    rk_eval_ctx ctx = {.arena = &arena, .dyn_has = case_dyn_has};
    case_run cr = {.rs = rs, .ctx = &ctx, .hits = calloc(RK_MAX_RULES, sizeof(int))};
    ctx.dyn_ud = &cr;
    assert_int_equal(rk_yn_parse(&cr.doc, "rules/default.test.yaml", text, len, &diag), 0);
    yaml_node_t *root = rk_yn_root(&cr.doc);
    assert_string_equal(rk_yn_str(rk_yn_get(&cr.doc, root, "rules", NULL)), "default.yaml");
    yaml_node_t *cases = rk_yn_get(&cr.doc, root, "cases", NULL);
    assert_non_null(cases);
    int ncases = 0;
    for (yaml_node_item_t *it = cases->data.sequence.items.start;
         it < cases->data.sequence.items.top; it++, ncases++)
        check_case(&cr, rk_yn_node(&cr.doc, *it));
    assert_true(ncases >= 30);
    /* Every rule is exercised by at least one case. */
    for (int i = 0; i < rk_ruleset_nrules(rs); i++)
        if (cr.hits[i] == 0)
            fail_msg("no case of rules/default.test.yaml matches rule '%s'",
                     rk_ruleset_rule_id(rs, i));
    free(cr.hits);
    rk_yn_free(&cr.doc);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

/* Every ```yaml block of docs/rules.md loads, unless the line after it says
 * `<!-- untested: why -->`. Fragments without `ruleset:` get a name and a
 * version; paths resolve from rules/, as they would for rules/default.yaml. */
static void test_docs_examples(void **state)
{
    FILE *f = fopen("docs/rules.md", "rb");
    assert_non_null(f);
    static char doc[1 << 17];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[len] = '\0';
    assert_int_equal(chdir("rules"), 0);
    int tested = 0, lineno = 0;
    char *block = NULL, *save = NULL;
    static char text[1 << 15];
    size_t off = 0;
    int start = 0;
    bool pending = false; /* a block just closed: the next line may exempt it */
    for (char *line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++; /* strtok skips blank lines: count only for messages */
        if (pending) {
            pending = false;
            if (strncmp(line, "<!-- untested", 13) != 0) {
                rk_ruleset *rs = NULL;
                rk_diag d;
                char msg[1200];
                if (rk_ruleset_load_mem("docs/rules.md", text, off, &rs, &d)) {
                    assert_int_equal(chdir(".."), 0);
                    fail_msg("docs/rules.md block %d (non-blank line %d): %s\n%s", tested + 1,
                             start, rk_diag_format(&d, msg, sizeof msg), text);
                }
                rk_ruleset_free(rs);
                tested++;
            }
        }
        if (!block && strcmp(line, "```yaml") == 0) {
            block = line;
            start = lineno;
            off = 0;
            text[0] = '\0';
        } else if (block && strcmp(line, "```") == 0) {
            if (!strstr(text, "\nruleset:") && strncmp(text, "ruleset:", 8) != 0) {
                char body[sizeof text];
                snprintf(body, sizeof body, "%s", text);
                off = (size_t)snprintf(text, sizeof text, "ruleset: doc\nversion: '1'\n%s", body);
            }
            block = NULL;
            pending = true;
        } else if (block) {
            off += (size_t)snprintf(text + off, sizeof text - off, "%s\n", line);
        }
    }
    assert_int_equal(chdir(".."), 0);
    assert_true(tested >= 9);
}

int main(void)
{
    if (chdir(RK_SOURCE_DIR) != 0) {
        perror(RK_SOURCE_DIR);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_inline_list_values),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_dynamic_lists),
        cmocka_unit_test(test_expression_positions),
        cmocka_unit_test(test_include_depth),
        cmocka_unit_test(test_include_self),
        cmocka_unit_test(test_mem_relative_paths),
        cmocka_unit_test(test_mem_buffers),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_loader_details),
        cmocka_unit_test(test_model_fixtures),
        cmocka_unit_test(test_model_features),
        cmocka_unit_test(test_model_default_bindings),
        cmocka_unit_test(test_model_features_only),
        cmocka_unit_test(test_model_feature_limits),
        cmocka_unit_test(test_default_ruleset_cases),
        cmocka_unit_test(test_docs_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
