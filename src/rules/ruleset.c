/* The compiled rule set as the request path sees it: accessors, name look-up
 * for `riskctl test`, the model step (feature vector, score, explanation) and
 * evaluation.
 *
 * Loading lives in load.c; this file only reads a finished rk_ruleset, which
 * is immutable, so any number of workers may evaluate it at once, each with
 * its own rk_eval_ctx. Evaluation walks the rules in file order, allocates
 * nothing (the decision lives in the caller's scratch; string results of
 * lower()/upper() go to ctx->arena, which the caller resets per request), and
 * cannot fail: a rule whose condition is unknown simply does not match. The
 * model step is the same: features are evaluated into the caller's vector,
 * and the model reads it in place or through a gather into a stack buffer
 * when its feature order differs from the vector's. */
#include "rules/ruleset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/ruleset_int.h"

void rk_ruleset_free(rk_ruleset *rs)
{
    if (!rs)
        return;
    /* Compiled expressions may point at the lists, so they go first. */
    for (int i = 0; i < rs->nrules; i++) {
        rk_expr_free(rs->rules[i].when);
        free(rs->rules[i].id);
        free(rs->rules[i].reason);
    }
    free(rs->rules);
    for (int i = 0; i < rs->nfeatures; i++) {
        rk_expr_free(rs->features[i].expr);
        free(rs->features[i].name);
    }
    free(rs->features);
    free(rs->model_input);
    rk_model_free(rs->model);
    for (int i = 0; rs->counter_when && i < rs->ncounters; i++)
        rk_expr_free(rs->counter_when[i]);
    free(rs->counter_when);
    rk_counters_free(rs->counters);
    free(rs->dynlists);
    for (int i = 0; i < rs->nlists; i++) {
        rk_list_free(rs->lists[i].list);
        free(rs->lists[i].name);
    }
    free(rs->lists);
    free(rs->list_env);
    free(rs->syms);
    for (int i = 0; i < rs->nfiles; i++)
        free(rs->files[i]);
    free(rs->files);
    free(rs->name);
    free(rs->version);
    free(rs->label);
    free(rs);
}

const char *rk_ruleset_name(const rk_ruleset *rs) { return rs->name; }
const char *rk_ruleset_version(const rk_ruleset *rs) { return rs->version; }
const char *rk_ruleset_label(const rk_ruleset *rs) { return rs->label; }
const rk_schema *rk_ruleset_schema(const rk_ruleset *rs) { return &rs->schema; }
int rk_ruleset_nrules(const rk_ruleset *rs) { return rs->nrules; }

const char *rk_ruleset_rule_id(const rk_ruleset *rs, int i)
{
    return i >= 0 && i < rs->nrules ? rs->rules[i].id : NULL;
}

bool rk_ruleset_rule_shadow(const rk_ruleset *rs, int i)
{
    return i >= 0 && i < rs->nrules && rs->rules[i].shadow;
}

/* The symbol table is exactly what rule expressions could read (fields,
 * counters, model.score), so looking a name up there keeps `riskctl test`
 * overrides and the compiler in step. */
int rk_ruleset_slot(const rk_ruleset *rs, const char *name, rk_type *type)
{
    if (!name)
        return -1;
    for (int i = 0; i < rs->nsyms; i++) {
        if (i == rs->model_slot && !rs->model)
            continue; /* a name rules cannot read without a model file */
        if (strcmp(rs->syms[i].name, name) == 0) {
            if (type)
                *type = rs->syms[i].type;
            return rs->syms[i].slot;
        }
    }
    return -1;
}

const rk_counters *rk_ruleset_counters(const rk_ruleset *rs) { return rs->counters; }
int rk_ruleset_counter_base(const rk_ruleset *rs) { return rs->counter_base; }

/* The filters read request fields only (the loader refuses counters in
 * them), so they can run before the counters are known. */
void rk_ruleset_counter_when(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx,
                             bool *when)
{
    for (int i = 0; i < rs->ncounters; i++) {
        const rk_expr *e = rs->counter_when[i];
        rk_value v = e ? rk_expr_eval(e, txn->v, ctx) : rk_value_bool(true);
        when[i] = v.type == RK_T_BOOL && v.b;
    }
}

int rk_ruleset_ndynlists(const rk_ruleset *rs) { return rs->ndynlists; }

const rk_dynlist_info *rk_ruleset_dynlist(const rk_ruleset *rs, int i)
{
    return i >= 0 && i < rs->ndynlists ? &rs->dynlists[i] : NULL;
}

int rk_ruleset_dynlist_find(const rk_ruleset *rs, const char *name)
{
    for (int i = 0; name && i < rs->ndynlists; i++)
        if (strcmp(rs->dynlists[i].name, name) == 0)
            return i;
    return -1;
}

bool rk_ruleset_has_list(const rk_ruleset *rs, const char *name)
{
    for (int i = 0; name && i < rs->nlists; i++)
        if (strcmp(rs->lists[i].name, name) == 0)
            return true;
    return false;
}

/* ---- The model --------------------------------------------------------- */

const rk_model *rk_ruleset_model(const rk_ruleset *rs) { return rs->model; }
int rk_ruleset_nfeatures(const rk_ruleset *rs) { return rs->nfeatures; }
int rk_ruleset_explain_top(const rk_ruleset *rs) { return rs->explain_top; }

const char *rk_ruleset_feature_name(const rk_ruleset *rs, int i)
{
    return i >= 0 && i < rs->nfeatures ? rs->features[i].name : NULL;
}

/* A value as the model reads it: float32, a bool as 0 or 1, NaN when missing
 * (or of a type a feature cannot have, which the loader rules out). */
static float feature_value(rk_value v)
{
    switch (v.type) {
    case RK_T_INT: return (float)v.i;
    case RK_T_FLOAT: return (float)v.f;
    case RK_T_BOOL: return v.b ? 1.0f : 0.0f;
    default: return NAN;
    }
}

void rk_ruleset_features(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx, float *x)
{
    for (int i = 0; i < rs->nfeatures; i++) {
        const rk_feature *f = &rs->features[i];
        x[i] = feature_value(f->expr ? rk_expr_eval(f->expr, txn->v, ctx) : txn->v[f->slot]);
    }
}

/* The model's input for feature vector x: x itself when the model's features
 * are its first entries in order, else gathered into buf (RK_FEATURES_MAX
 * floats: the loader bounds the model's features by the vector's length). */
static const float *model_input(const rk_ruleset *rs, const float *x, float *buf)
{
    if (rs->model_in_order)
        return x;
    size_t n = rk_model_nfeatures(rs->model);
    for (size_t j = 0; j < n; j++)
        buf[j] = x[rs->model_input[j]];
    return buf;
}

double rk_ruleset_model_score(const rk_ruleset *rs, const float *x, rk_txn *txn)
{
    if (!rs->model)
        return NAN;
    float buf[RK_FEATURES_MAX];
    double p = rk_model_predict(rs->model, model_input(rs, x, buf), NULL);
    txn->v[rs->model_slot] = rk_value_float(p);
    return p;
}

int rk_ruleset_model_explain(const rk_ruleset *rs, const float *x, double *contrib,
                             rk_model_contrib *top, double *bias)
{
    *bias = 0;
    if (!rs->model)
        return 0;
    float buf[RK_FEATURES_MAX];
    size_t n = rk_model_nfeatures(rs->model);
    rk_model_explain(rs->model, model_input(rs, x, buf), contrib);
    *bias = contrib[n];
    size_t k = rk_model_top(rs->model, contrib, (size_t)rs->explain_top, top);
    for (size_t i = 0; i < k; i++)
        top[i].feature = (uint32_t)rs->model_input[top[i].feature];
    return (int)k;
}

/* ---- Rules ----------------------------------------------------------------- */

/* Adds one matched rule to a tally. */
static void tally_add(rk_tally *t, const rk_rule *r)
{
    if (r->action == RK_RULE_SCORE)
        t->score += r->score;
    else if (r->action == RK_ALLOW)
        t->allow = true;
    else if (r->action > t->action)
        t->action = r->action;
}

void rk_ruleset_eval(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx,
                     rk_decision *out)
{
    rk_tally live = {.action = -1}, shadow = {.action = -1};
    out->nreasons = 0;
    out->nshadow = 0;
    for (int i = 0; i < rs->nrules; i++) {
        const rk_rule *r = &rs->rules[i];
        rk_value v = rk_expr_eval(r->when, txn->v, ctx);
        if (v.type != RK_T_BOOL || !v.b)
            continue;
        /* The shadow tally counts every matched rule: it is the decision
         * had the shadow rules been live. */
        tally_add(&shadow, r);
        if (r->shadow) {
            out->shadow[out->nshadow++] = (uint16_t)i;
        } else {
            tally_add(&live, r);
            out->reasons[out->nreasons++] = (uint16_t)i;
        }
    }
    out->verdict = rk_decide(&live, &rs->thresholds);
    out->score = live.score;
    out->has_shadow_rules = rs->has_shadow;
    out->shadow_verdict = rk_decide(&shadow, &rs->thresholds);
    out->shadow_score = shadow.score;
}
