/* riskctl test: run case files against the rule sets they name, without a
 * server, and report every case whose outcome differs from its expectation.
 *
 * A case goes through the server's own code: its txn (packed as a gateway
 * would, see cases.c) is decoded by rk_proto_decode with the rule set's
 * schema, counter and model-score overrides are written into their slots,
 * and rk_ruleset_eval decides. When the case gives no model score and the
 * rule set has a model, the score is computed as riskd computes it: the
 * feature vector from the case's fields and counters (rk_ruleset_features),
 * then the model (rk_ruleset_model_score). There is no state store here, so
 * a counter the case does not give is missing (a NaN feature), as is the
 * model score without a model, and `ts` when the txn has none (riskd would
 * use its clock; a test must not depend on when it runs), and a dynamic list
 * holds exactly the members the case's `lists:` gives it:
 * the evaluator's dyn_has look-up is answered from them, a str by its bytes
 * and an int by its decimal text, as the store hashes them.
 *
 * A case file is checked whole before any of its cases runs: a file with a
 * broken case (unknown key, undecodable txn, unknown counter) is reported as
 * `file:line:col: message` and none of its cases count, because a half-run
 * file reads as a pass in CI. Exit status: 0 all passed, 1 some case failed,
 * 2 some case file (or its rule file) is broken. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cases.h"
#include "cli/cli.h"
#include "lib/arena.h"
#include "lib/diag.h"
#include "lib/err.h"
#include "proto/proto.h"
#include "rules/ruleset.h"

#define SCRATCH_BYTES (64 * 1024) /* per-case arena for lower()/upper() results */

/* One `riskctl test` run: the evaluation scratch shared by every case (as a
 * riskd worker's is) and the running totals. Heap-allocated: the decision
 * alone holds two arrays of RK_MAX_RULES rule indices. */
typedef struct runner {
    rk_arena arena;       /* lower()/upper() results, reset per case */
    rk_eval_ctx ctx;      /* evaluation stack; points at arena */
    rk_decision decision; /* the outcome of the current case */
    float x[RK_FEATURES_MAX]; /* the current case's feature vector, when the model scores it */
    int passed;           /* cases whose outcome matched */
    int failed;           /* cases that ran and did not match */
    int broken;           /* case files (or their rule files) that could not be run */
} runner;

static void print_diag(rk_diag *d, const char *path, int rc)
{
    if (d->msg[0] == '\0')
        rk_diag_set(d, path, 0, 0, "%s", rk_strerror(rc));
    char line[1200];
    fprintf(stderr, "%s\n", rk_diag_format(d, line, sizeof line));
}

/* ---- Preparing a case: decode and overrides ---- */

/* Where a decode error belongs: at the txn key the decoder's message names
 * ("field 'amount': expected int, ..."), else at the txn itself. */
static rk_case_pos decode_error_pos(const rk_case *c, const char *msg)
{
    const char *p = strstr(msg, "field '");
    if (p) {
        p += strlen("field '");
        const char *end = strchr(p, '\'');
        size_t len = end ? (size_t)(end - p) : 0;
        for (int i = 0; end && i < c->ntxn_keys; i++)
            if (strlen(c->txn_keys[i].name) == len && memcmp(c->txn_keys[i].name, p, len) == 0)
                return c->txn_keys[i].at;
    }
    return c->txn_at;
}

/* "unknown KIND 'name'" with a "did you mean" among cands, for a case. */
static int unknown_name(rk_diag *diag, const rk_case_file *cf, const rk_case *c, rk_case_pos at,
                        const char *kind, const char *name, const char **cands, size_t n)
{
    const char *near = rk_suggest(name, cands, n);
    if (near)
        rk_diag_set(diag, cf->path, at.line, at.col,
                    "case '%s': unknown %s '%s' (did you mean '%s'?)", c->name, kind, name, near);
    else
        rk_diag_set(diag, cf->path, at.line, at.col, "case '%s': unknown %s '%s'", c->name, kind,
                    name);
    return RK_EINVAL;
}

/* Writes an override into its slot, converted to the slot's static type. */
static int apply_override(const rk_ruleset *rs, const rk_case_file *cf, const rk_case *c,
                          const rk_case_override *o, bool is_model, rk_txn *txn, rk_diag *diag)
{
    const rk_schema *schema = rk_ruleset_schema(rs);
    size_t len = strlen(o->name);
    bool is_field = rk_field_find(o->name, len) >= 0 || rk_schema_find(schema, o->name, len) >= 0;
    if (!is_model && is_field) {
        rk_diag_set(diag, cf->path, o->at.line, o->at.col,
                    "case '%s': '%s' is a request field, not a counter (set it in txn)", c->name,
                    o->name);
        return RK_EINVAL;
    }
    rk_type type;
    int slot = rk_ruleset_slot(rs, o->name, &type);
    if (slot < 0 || (!is_model && strcmp(o->name, "model.score") == 0)) {
        if (!is_model) {
            const rk_counters *cs = rk_ruleset_counters(rs);
            const char *names[RK_COUNTERS_MAX];
            int n = cs ? rk_counters_count(cs) : 0;
            for (int i = 0; i < n; i++)
                names[i] = rk_counters_def(cs, i)->name;
            return unknown_name(diag, cf, c, o->at, "counter", o->name, names, (size_t)n);
        }
        rk_diag_set(diag, cf->path, o->at.line, o->at.col, "case '%s': rule set has no model",
                    c->name);
        return RK_EINVAL;
    }
    rk_value v = o->value;
    if (v.type == RK_T_INT && type == RK_T_FLOAT) {
        v = rk_value_float((double)v.i);
    } else if (v.type == RK_T_FLOAT && type == RK_T_INT) {
        /* 7.0 is a fine way to write a count; 7.5 is not a count. */
        if (v.f != floor(v.f) || fabs(v.f) > 9007199254740992.0) {
            rk_diag_set(diag, cf->path, o->value_at.line, o->value_at.col,
                        "case '%s': %s '%s' takes an integer", c->name,
                        is_model ? "model score" : "counter", o->name);
            return RK_EINVAL;
        }
        v = rk_value_int((int64_t)v.f);
    } else if (v.type != RK_T_MISSING && type != RK_T_INT && type != RK_T_FLOAT) {
        rk_diag_set(diag, cf->path, o->value_at.line, o->value_at.col,
                    "case '%s': '%s' is a %s, not a number", c->name, o->name, rk_type_name(type));
        return RK_EINVAL;
    }
    txn->v[slot] = v;
    return 0;
}

/* A case may give members to the rule set's dynamic lists only: a static
 * list's members are in the rule file. */
static int check_lists(const rk_ruleset *rs, const rk_case_file *cf, const rk_case *c,
                       rk_diag *diag)
{
    for (int i = 0; i < c->nlists; i++) {
        const rk_case_list *l = &c->lists[i];
        if (rk_ruleset_dynlist_find(rs, l->name) >= 0)
            continue;
        if (rk_ruleset_has_list(rs, l->name)) {
            rk_diag_set(diag, cf->path, l->at.line, l->at.col,
                        "case '%s': list '%s' is not dynamic (its members are in the rule file)",
                        c->name, l->name);
            return RK_EINVAL;
        }
        int n = rk_ruleset_ndynlists(rs);
        const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
        if (!names)
            return RK_ENOMEM;
        for (int j = 0; j < n; j++)
            names[j] = rk_ruleset_dynlist(rs, j)->name;
        int rc = unknown_name(diag, cf, c, l->at, "dynamic list", l->name, names, (size_t)n);
        free(names);
        return rc;
    }
    return 0;
}

/* Builds the transaction a case describes. Strings in txn borrow c->txn. */
static int prepare_case(const rk_ruleset *rs, const rk_case_file *cf, const rk_case *c,
                        rk_txn *txn, rk_diag *diag)
{
    /* Everything not decoded or overridden (counters, model.score) is missing. */
    memset(txn, 0, sizeof *txn);
    rk_request req;
    rk_proto_err perr;
    if (rk_proto_decode(c->txn, c->txn_len, rk_ruleset_schema(rs), &req, txn, &perr) < 0) {
        rk_case_pos at = decode_error_pos(c, perr.msg);
        rk_diag_set(diag, cf->path, at.line, at.col, "case '%s': %s", c->name, perr.msg);
        return RK_EINVAL;
    }
    if (req.op != RK_OP_SCORE) {
        rk_diag_set(diag, cf->path, c->txn_at.line, c->txn_at.col,
                    "case '%s': txn is a '%s' request; cases are score requests", c->name,
                    rk_op_name(req.op));
        return RK_EINVAL;
    }
    for (int i = 0; i < c->ncounters; i++) {
        int rc = apply_override(rs, cf, c, &c->counters[i], false, txn, diag);
        if (rc < 0)
            return rc;
    }
    int rc = check_lists(rs, cf, c, diag);
    if (rc < 0)
        return rc;
    if (c->has_model_score)
        return apply_override(rs, cf, c, &c->model_score, true, txn, diag);
    return 0;
}

/* What the evaluator's dyn_has look-up sees while one case runs. */
typedef struct case_lists {
    const rk_ruleset *rs; /* whose dynamic list indices are asked */
    const rk_case *c;     /* whose `lists:` answer */
} case_lists;

/* rk_eval_ctx.dyn_has over a case's `lists:`: v (a str, or an int by its
 * decimal text, as the store hashes it) matches a member of the same text. */
static int case_dyn_has(void *ud, int list, const rk_value *v)
{
    const case_lists *cl = ud;
    const rk_dynlist_info *info = rk_ruleset_dynlist(cl->rs, list);
    char num[24];
    const char *s = v->s;
    size_t len = v->len;
    if (v->type == RK_T_INT) {
        len = (size_t)snprintf(num, sizeof num, "%" PRId64, v->i);
        s = num;
    } else if (v->type != RK_T_STR) {
        return 0;
    }
    for (int i = 0; info && i < cl->c->nlists; i++) {
        const rk_case_list *l = &cl->c->lists[i];
        if (strcmp(l->name, info->name) != 0)
            continue;
        for (int m = 0; m < l->nmembers; m++)
            if (l->lens[m] == len && memcmp(l->members[m], s, len) == 0)
                return 1;
    }
    return 0;
}

/* ---- Comparing ---- */

/* The shortest text that reads back as the same double: 40, 0.1, 1e+300. */
static const char *fmt_num(double v, char *buf, size_t size)
{
    /* %g would write 40 as 4e+01 at low precision; whole scores are common. */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void print_ids(FILE *f, const char *const *ids, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", ids[i]);
    fputc(']', f);
}

static void print_rules(FILE *f, const rk_ruleset *rs, const uint16_t *idx, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", rk_ruleset_rule_id(rs, idx[i]));
    fputc(']', f);
}

static bool same_ids(const rk_ruleset *rs, const char *const *want, int nwant,
                     const uint16_t *got, int ngot)
{
    if (nwant != ngot)
        return false;
    for (int i = 0; i < nwant; i++)
        if (strcmp(want[i], rk_ruleset_rule_id(rs, got[i])) != 0)
            return false;
    return true;
}

/* Scores are sums of doubles from the rule file, so compare with a tolerance
 * (1e-9, relative beyond 1); an infinite expectation must match exactly. */
static bool same_score(double want, double got)
{
    if (!isfinite(want) || !isfinite(got))
        return want == got;
    return fabs(want - got) <= 1e-9 * fmax(1.0, fabs(want));
}

/* Starts a new "part: " of a failure line, separated from the previous one. */
static void part(FILE *f, int *nparts, const char *name)
{
    fprintf(f, "%s%s: ", (*nparts)++ ? "; " : "", name);
}

/* Writes into f what differs between c's expectations and d; returns how many
 * parts differ (0: the case passed). */
static int compare(FILE *f, const rk_ruleset *rs, const rk_case *c, const rk_decision *d)
{
    int n = 0;
    if (c->decision != d->verdict) {
        part(f, &n, "decision");
        fprintf(f, "expected %s, got %s", rk_verdict_name(c->decision),
                rk_verdict_name(d->verdict));
    }
    if (c->has_reasons && !same_ids(rs, c->reasons, c->nreasons, d->reasons, d->nreasons)) {
        part(f, &n, "reasons");
        fputs("expected ", f);
        print_ids(f, c->reasons, c->nreasons);
        fputs(", got ", f);
        print_rules(f, rs, d->reasons, d->nreasons);
    }
    if (c->has_shadow && !same_ids(rs, c->shadow, c->nshadow, d->shadow, d->nshadow)) {
        part(f, &n, "shadow");
        fputs("expected ", f);
        print_ids(f, c->shadow, c->nshadow);
        fputs(", got ", f);
        print_rules(f, rs, d->shadow, d->nshadow);
    }
    /* Without shadow rules the shadow decision is the live one. */
    rk_verdict shadow = d->has_shadow_rules ? d->shadow_verdict : d->verdict;
    if (c->has_shadow_decision && c->shadow_decision != shadow) {
        part(f, &n, "shadow_decision");
        fprintf(f, "expected %s, got %s", rk_verdict_name(c->shadow_decision),
                rk_verdict_name(shadow));
    }
    if (c->has_score && !same_score(c->score, d->score)) {
        char want[32], got[32];
        part(f, &n, "score");
        fprintf(f, "expected %s, got %s", fmt_num(c->score, want, sizeof want),
                fmt_num(d->score, got, sizeof got));
    }
    return n;
}

/* Evaluates one prepared case — the model first, unless the case gives the
 * score — and prints its failure line if it fails. */
static bool run_case(runner *run, const rk_ruleset *rs, const rk_case_file *cf, const rk_case *c,
                     rk_txn *txn)
{
    case_lists cl = {rs, c};
    rk_arena_reset(&run->arena);
    run->ctx.dyn_has = case_dyn_has;
    run->ctx.dyn_ud = &cl;
    double score = NAN;
    if (!c->has_model_score && rk_ruleset_model(rs)) {
        rk_ruleset_features(rs, txn, &run->ctx, run->x);
        score = rk_ruleset_model_score(rs, run->x, txn);
    }
    rk_ruleset_eval(rs, txn, &run->ctx, &run->decision);
    run->ctx.dyn_has = NULL; /* cl goes out of scope */
    run->ctx.dyn_ud = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        rk_cli_fail("out of memory");
        return false;
    }
    int differ = compare(f, rs, c, &run->decision);
    if (differ && !isnan(score))
        fprintf(f, " (model_score %.6g, computed from the case's features)", score);
    fclose(f);
    if (differ)
        printf("%s:%d: case '%s': %s\n", cf->path, c->at.line, c->name, text);
    free(text);
    return differ == 0;
}

static void run_file(runner *run, const char *path)
{
    rk_diag diag;
    rk_diag_clear(&diag);
    rk_case_file *cf = NULL;
    rk_ruleset *rs = NULL;
    rk_txn *txns = NULL;
    int rc = rk_case_file_load(path, &cf, &diag);
    if (rc < 0) {
        print_diag(&diag, path, rc);
        goto broken;
    }
    rc = rk_ruleset_load(cf->rules, &rs, &diag);
    if (rc < 0) {
        print_diag(&diag, cf->rules, rc);
        goto broken;
    }
    txns = calloc((size_t)cf->ncases, sizeof *txns);
    if (!txns) {
        rk_cli_fail("out of memory");
        goto broken;
    }
    for (int i = 0; i < cf->ncases; i++) {
        rc = prepare_case(rs, cf, &cf->cases[i], &txns[i], &diag);
        if (rc < 0) {
            print_diag(&diag, path, rc);
            goto broken;
        }
    }
    for (int i = 0; i < cf->ncases; i++) {
        if (run_case(run, rs, cf, &cf->cases[i], &txns[i]))
            run->passed++;
        else
            run->failed++;
    }
    goto done;
broken:
    run->broken++;
done:
    free(txns);
    rk_ruleset_free(rs);
    rk_case_file_free(cf);
}

static int run_test(const rk_cli_cmd *cmd, int argc, char **argv)
{
    int npaths;
    int rc = rk_cli_parse(cmd, argc, argv, NULL, &npaths);
    char **paths = argv + 1;
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (npaths == 0)
        return rk_cli_usage(cmd, "test needs at least one case file");
    runner *run = calloc(1, sizeof *run);
    if (!run || rk_arena_init(&run->arena, SCRATCH_BYTES) < 0) {
        free(run);
        return rk_cli_fail("out of memory");
    }
    run->ctx.arena = &run->arena;
    for (int i = 0; i < npaths; i++)
        run_file(run, paths[i]);
    printf("%d passed, %d failed\n", run->passed, run->failed);
    int status = run->broken ? RK_CLI_USAGE : run->failed ? RK_CLI_FAIL : RK_CLI_OK;
    rk_arena_free(&run->arena);
    free(run);
    return status;
}

const rk_cli_cmd rk_cli_test = {
    .name = "test",
    .args = "CASES.yaml...",
    .summary = "run test cases against a rule set and report the ones that fail",
    .help =
        "Runs each case file's cases against the rule file it names, through the same\n"
        "decoder and evaluator riskd uses, and prints one line per failing case, then a\n"
        "total:\n"
        "\n"
        "  FILE:LINE: case 'NAME': decision: expected review, got allow; reasons: ...\n"
        "  N passed, N failed\n"
        "\n"
        "A case file:\n"
        "\n"
        "  rules: default.yaml                # relative to the case file\n"
        "  cases:\n"
        "    - name: large payment goes to review\n"
        "      txn: {id: t1, account: a1, amount: 250000}   # id: defaults to the name\n"
        "      counters: {acct_txn_1h: 7}     # optional: counter values (else missing)\n"
        "      lists: {blocked_cards: [tok_9]}  # optional: dynamic lists' members (else empty)\n"
        "      model_score: 0.93              # optional (else the model's, or missing)\n"
        "      expect:\n"
        "        decision: review             # required: allow | review | block\n"
        "        reasons: [large_amount]      # optional: matched live rules, in order\n"
        "        shadow: []                   # optional: matched shadow rules, in order\n"
        "        shadow_decision: review      # optional\n"
        "        score: 40                    # optional (within 1e-9)\n"
        "\n"
        "Plain YAML scalars in txn are typed as YAML 1.2 reads them (250000 is an int,\n"
        "0.5 a float, true a bool); quote a value to make it a string. A txn without\n"
        "`ts` has no event time: give one to test time-of-day rules. There is no store:\n"
        "a counter the case does not set is missing, and a dynamic list holds only the\n"
        "members `lists` gives it (compared as text; an int field by its decimal text).\n"
        "Without `model_score`, a rule set with a model file scores the case with it, from\n"
        "the features its `model:` section computes over the txn and `counters`.\n"
        "\n"
        "Exit status: 0 when every case passes, 1 when any fails, 2 when a case file or\n"
        "its rule file is broken (reported as FILE:LINE:COL: message; none of that\n"
        "file's cases run).\n",
    .run = run_test,
};
