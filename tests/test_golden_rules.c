/* Golden rule files: every tests/golden/rules/bad_*.yaml must fail to load
 * with exactly the diagnostic written on its first line, and every
 * good_*.yaml must load and decide its cases as written in its comments.
 *
 * The format, in the rule files' leading comments:
 *   # expect: FILE:LINE:COL: MESSAGE       (bad_*: the whole rk_diag_format text)
 *   # order: ID,ID,...                     (good_*: every rule id, in evaluation order)
 *   # case: FIELD=VALUE ... -> VERDICT [reasons=ID,...] [score=N] [shadow=ID,...]
 *           [shadow_decision=VERDICT|-] [shadow_score=N]
 * Values take the type of the field (standard, schema or counter); `-` as the
 * shadow decision means "the rule set has no shadow rule". `@LIST=A,B` gives a
 * dynamic list its members for the case (text; an int is looked up by its
 * decimal text, as the store does); dynamic lists not given are empty. Adding
 * a case is adding a line; adding a file needs no change here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/arena.h"
#include "lib/err.h"
#include "rules/ruleset.h"

#define GOLDEN_DIR "tests/golden/rules"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_bad(void **state)
{
    const char *path = *state;
    char *text = slurp(path), want[1024];
    assert_non_null(text);
    const char *tag = "# expect: ";
    bool tagged = strncmp(text, tag, strlen(tag)) == 0;
    const char *w = tagged ? text + strlen(tag) : "";
    snprintf(want, sizeof want, "%.*s", (int)strcspn(w, "\n"), w);
    free(text); /* before any failure: cmocka's failures do not return */
    if (!tagged)
        fail_msg("%s: first line must be '# expect: <diagnostic>'", path);

    rk_ruleset *rs = NULL;
    rk_diag d;
    int rc = rk_ruleset_load(path, &rs, &d);
    if (rc == 0) {
        rk_ruleset_free(rs);
        fail_msg("%s: loaded, but expected: %s", path, want);
    }
    assert_null(rs);
    char got[1200];
    rk_diag_format(&d, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("%s (%s):\n  expected: %s\n  got:      %s", path, rk_strerror(rc), want, got);
}

/* "a,b" of the rule ids at idx[0..n). */
static void id_list(const rk_ruleset *rs, const uint16_t *idx, int n, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "",
                                rk_ruleset_rule_id(rs, idx[i]));
}

#define CASE_LISTS_MAX 8 /* `@LIST=...` assignments on one case line */

/* The dynamic lists one case line fills: `@NAME=A,B`, pointing into the line. */
typedef struct case_lists {
    const rk_ruleset *rs;              /* whose dynamic list indices are asked */
    int n;                             /* assignments */
    const char *name[CASE_LISTS_MAX];  /* list names */
    const char *members[CASE_LISTS_MAX]; /* comma-separated members */
} case_lists;

/* rk_eval_ctx.dyn_has over a case line's `@NAME=A,B` assignments. */
static int case_dyn_has(void *ud, int list, const rk_value *v)
{
    const case_lists *cl = ud;
    const rk_dynlist_info *info = rk_ruleset_dynlist(cl->rs, list);
    char buf[32];
    const char *s = v->s;
    size_t len = v->len;
    if (v->type == RK_T_INT) {
        len = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)v->i);
        s = buf;
    }
    assert_non_null(info);
    for (int i = 0; i < cl->n; i++) {
        if (strcmp(cl->name[i], info->name) != 0)
            continue;
        for (const char *m = cl->members[i]; *m;) {
            size_t mlen = strcspn(m, ",");
            if (mlen == len && memcmp(m, s, len) == 0)
                return 1;
            m += mlen + (m[mlen] == ',');
        }
    }
    return 0;
}

static void set_field(const rk_ruleset *rs, rk_txn *txn, case_lists *cl, char *assign,
                      const char *where)
{
    if (assign[0] == '@') {
        char *eq = strchr(assign, '=');
        if (!eq || cl->n == CASE_LISTS_MAX)
            fail_msg("%s: expected @LIST=A,B (at most %d), got '%s'", where, CASE_LISTS_MAX,
                     assign);
        *eq = '\0';
        if (rk_ruleset_dynlist_find(rs, assign + 1) < 0)
            fail_msg("%s: no dynamic list '%s'", where, assign + 1);
        cl->name[cl->n] = assign + 1;
        cl->members[cl->n++] = eq + 1;
        return;
    }
    char *eq = strchr(assign, '=');
    if (!eq)
        fail_msg("%s: expected FIELD=VALUE, got '%s'", where, assign);
    *eq = '\0';
    const char *v = eq + 1;
    rk_type type;
    int slot = rk_ruleset_slot(rs, assign, &type);
    if (slot < 0)
        fail_msg("%s: unknown field '%s'", where, assign);
    char *end;
    switch (type) {
    case RK_T_INT:
        txn->v[slot] = rk_value_int(strtoll(v, &end, 10));
        break;
    case RK_T_FLOAT:
        txn->v[slot] = rk_value_float(strtod(v, &end));
        break;
    case RK_T_BOOL:
        txn->v[slot] = rk_value_bool(strcmp(v, "true") == 0);
        end = (char *)v + (strcmp(v, "true") == 0 || strcmp(v, "false") == 0 ? strlen(v) : 0);
        break;
    default:
        txn->v[slot] = rk_value_str(v, (uint32_t)strlen(v));
        end = (char *)v + strlen(v);
        break;
    }
    if (*end)
        fail_msg("%s: bad %s value '%s' for '%s'", where, rk_type_name(type), v, assign);
}

static void check_expectation(const rk_ruleset *rs, const rk_decision *d, char *tok,
                              const char *where)
{
    char *eq = strchr(tok, '=');
    if (!eq)
        fail_msg("%s: expected KEY=VALUE after the verdict, got '%s'", where, tok);
    *eq = '\0';
    const char *want = eq + 1;
    char got[4096];
    if (strcmp(tok, "reasons") == 0) {
        id_list(rs, d->reasons, d->nreasons, got, sizeof got);
    } else if (strcmp(tok, "shadow") == 0) {
        id_list(rs, d->shadow, d->nshadow, got, sizeof got);
    } else if (strcmp(tok, "shadow_decision") == 0) {
        snprintf(got, sizeof got, "%s",
                 d->has_shadow_rules ? rk_verdict_name(d->shadow_verdict) : "-");
    } else if (strcmp(tok, "score") == 0 || strcmp(tok, "shadow_score") == 0) {
        double g = strcmp(tok, "score") == 0 ? d->score : d->shadow_score;
        if (fabs(g - strtod(want, NULL)) > 1e-9)
            fail_msg("%s: %s: expected %s, got %g", where, tok, want, g);
        return;
    } else {
        fail_msg("%s: unknown expectation '%s'", where, tok);
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s: %s: expected '%s', got '%s'", where, tok, want, got);
}

/* One `# case:` line: builds the transaction, evaluates, compares. */
static void run_case(const rk_ruleset *rs, char *spec, const char *where, rk_eval_ctx *ctx)
{
    char *arrow = strstr(spec, " -> ");
    if (!arrow)
        fail_msg("%s: a case needs ' -> '", where);
    *arrow = '\0';
    static rk_txn txn;
    memset(&txn, 0, sizeof txn);
    case_lists cl = {.rs = rs};
    char *save = NULL;
    for (char *t = strtok_r(spec, " ", &save); t; t = strtok_r(NULL, " ", &save))
        set_field(rs, &txn, &cl, t, where);

    static rk_decision d;
    rk_arena_reset(ctx->arena);
    ctx->dyn_has = case_dyn_has;
    ctx->dyn_ud = &cl;
    rk_ruleset_eval(rs, &txn, ctx, &d);
    ctx->dyn_ud = NULL;
    char *verdict = strtok_r(arrow + 4, " ", &save);
    if (!verdict || rk_verdict_from_name(verdict) < 0)
        fail_msg("%s: expected a verdict after ' -> '", where);
    if ((int)d.verdict != rk_verdict_from_name(verdict)) {
        char reasons[4096];
        id_list(rs, d.reasons, d.nreasons, reasons, sizeof reasons);
        fail_msg("%s: expected %s, got %s (reasons %s, score %g)", where, verdict,
                 rk_verdict_name(d.verdict), reasons, d.score);
    }
    for (char *t = strtok_r(NULL, " ", &save); t; t = strtok_r(NULL, " ", &save))
        check_expectation(rs, &d, t, where);
}

static void test_good(void **state)
{
    const char *path = *state;
    rk_ruleset *rs = NULL;
    rk_diag d;
    int rc = rk_ruleset_load(path, &rs, &d);
    if (rc) {
        char msg[1200];
        fail_msg("%s: %s", path, rk_diag_format(&d, msg, sizeof msg));
    }
    rk_arena arena;
    assert_int_equal(rk_arena_init(&arena, 1 << 16), 0);
    static rk_eval_ctx ctx;
    ctx.arena = &arena;

    char *text = slurp(path);
    assert_non_null(text);
    int lineno = 0, ncases = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++; /* blank lines are skipped by strtok: numbers are of non-blank lines */
        char where[600];
        snprintf(where, sizeof where, "%s, comment line %d", path, lineno);
        if (strncmp(line, "# case: ", 8) == 0) {
            run_case(rs, line + 8, where, &ctx);
            ncases++;
        } else if (strncmp(line, "# order:", 8) == 0) {
            char got[4096] = "";
            size_t off = 0;
            for (int i = 0; i < rk_ruleset_nrules(rs); i++)
                off += (size_t)snprintf(got + off, sizeof got - off, "%s%s", i ? "," : "",
                                        rk_ruleset_rule_id(rs, i));
            const char *want = line[8] == ' ' ? line + 9 : line + 8;
            if (strcmp(got, want) != 0)
                fail_msg("%s: order: expected '%s', got '%s'", where, want, got);
        } else if (line[0] != '#') {
            break; /* the header comment is over */
        }
    }
    if (ncases == 0)
        fail_msg("%s: a good_*.yaml file needs at least one '# case:' line", path);
    free(text);
    rk_arena_free(&arena);
    rk_ruleset_free(rs);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    if (chdir(RK_SOURCE_DIR) != 0) {
        perror(RK_SOURCE_DIR);
        return 1;
    }
    DIR *dir = opendir(GOLDEN_DIR);
    if (!dir) {
        perror(GOLDEN_DIR);
        return 1;
    }
    char **paths = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        bool bad = strncmp(e->d_name, "bad_", 4) == 0, good = strncmp(e->d_name, "good_", 5) == 0;
        if ((!bad && !good) || len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        paths = realloc(paths, (n + 1) * sizeof *paths);
        size_t size = sizeof GOLDEN_DIR + len + 1;
        paths[n] = malloc(size);
        snprintf(paths[n], size, "%s/%s", GOLDEN_DIR, e->d_name);
        n++;
    }
    closedir(dir);
    if (n == 0) {
        fprintf(stderr, "no golden rule files in %s\n", GOLDEN_DIR);
        return 1;
    }
    qsort(paths, n, sizeof *paths, by_name);
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        bool bad = strstr(paths[i], "/bad_") != NULL;
        tests[i] = (struct CMUnitTest){
            .name = paths[i] + sizeof GOLDEN_DIR,
            .test_func = bad ? test_bad : test_good,
            .initial_state = paths[i],
        };
    }
    int failed = _cmocka_run_group_tests("golden_rules", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(tests);
    return failed;
}
