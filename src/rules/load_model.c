/* Loading a rule file's `model:` section (DESIGN.md section 5): the scoring
 * model's file, the feature vector it is fed, and how many contributions an
 * explanation lists.
 *
 * Phase one (the top-level file only) loads and validates the model file, so
 * a broken model fails the load like a broken rule, positioned at `file:`
 * with the model loader's own message; and it keeps each declared feature's
 * name and expression. Phase two, once every field, counter and model.score
 * has a slot, compiles the declared expressions (int, float or bool; they may
 * read fields and counters but not model.score, which they feed) and builds
 * the feature vector: the declared features in order, then every model
 * feature not declared, bound to the field, schema extra or counter of the
 * same name. A declared feature the model does not use stays in the vector:
 * it is what `riskctl backtest --emit-features` writes for training the next
 * model. Last, each model input is mapped to its index in the vector, so
 * scoring passes values across without looking anything up.
 *
 * Everything built here belongs to the rule set (rs->model, rs->features,
 * rs->model_input); what phase one keeps for phase two is freed by
 * rk_load_model_free whatever the outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "rules/load_int.h"

#define NO_SCORE_WHY "a model feature reads fields and counters, not the model's own score"

/* The model file: read (a regular file only, as every file a rule set names),
 * then validated by the model loader, whose message is kept whole. */
static int model_file(loader *L, file_ctx *f, yaml_node_t *n)
{
    const char *rel = rk_yn_str(n);
    if (!rel || rk_yn_is_null(n) || strlen(rel) != n->data.scalar.length)
        return rk_yn_fail(&f->doc, n, L->diag, RK_EPARSE, "model: 'file' must be a path, found %s",
                          rel ? "nothing" : rk_yn_kind(n));
    char *path = rk_load_join_path(f->dir, rel), *text = NULL;
    if (!path)
        return RK_ENOMEM;
    size_t len = 0;
    const char *why = NULL;
    int rc = rk_load_read_file(path, RK_MODEL_FILE_MAX, &text, &len, &why);
    if (rc == RK_EIO)
        rc = rk_yn_fail(&f->doc, n, L->diag, RK_EIO, "cannot read model file '%s': %s", rel, why);
    rk_diag md;
    rk_diag_clear(&md);
    if (rc == 0 &&
        (rc = rk_model_load_mem(path, (const uint8_t *)text, len, &L->rs->model, &md)) != 0 &&
        rc != RK_ENOMEM) {
        char msg[sizeof md.file + sizeof md.msg + 8];
        rk_yn_fail(&f->doc, n, L->diag, rc, "cannot load model %s",
                   rk_diag_format(&md, msg, sizeof msg));
    }
    free(text);
    free(path);
    if (rc == 0)
        L->model.file_pos = rk_load_pos(f, n);
    return rc;
}

/* Keeps a declared feature for phase two. */
static int keep_feature(loader *L, file_ctx *f, yaml_node_t *kn, yaml_node_t *vn)
{
    model_src *m = &L->model;
    if (rk_load_grow((void **)&m->decl, &m->cap_decl, m->ndecl, sizeof *m->decl))
        return RK_ENOMEM;
    feature_src *d = &m->decl[m->ndecl++]; /* counted first: freed whatever happens */
    *d = (feature_src){.name = strdup(rk_yn_str(kn)), .pos = rk_load_pos(f, kn)};
    if (!d->name)
        return RK_ENOMEM;
    return rk_load_keep_expr(f, vn, &d->expr);
}

/* `features:` — a mapping of feature names to expressions. */
static int model_features(loader *L, file_ctx *f, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "model: 'features' must be a mapping of feature names to expressions");
    model_src *m = &L->model;
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = rk_yn_node(&f->doc, p->key), *vn = rk_yn_node(&f->doc, p->value);
        const char *name = rk_yn_str(kn);
        if (!name)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EPARSE,
                              "expected a feature name, found %s", rk_yn_kind(kn));
        size_t len = kn->data.scalar.length;
        if (!rk_load_is_ident(name, len))
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "invalid model feature name '%s' (use letters, digits and _, not "
                              "starting with a digit)",
                              name);
        if (len >= RK_NAME_MAX)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                              "model feature name '%s' is too long (at most %d bytes)", name,
                              RK_NAME_MAX - 1);
        for (int i = 0; i < m->ndecl; i++) {
            if (strcmp(m->decl[i].name, name) == 0) {
                rk_srcpos first = m->decl[i].pos;
                return rk_yn_fail(&f->doc, kn, L->diag, RK_EEXISTS,
                                  "duplicate model feature '%s' (first defined at %s:%d:%d)",
                                  name, rk_load_file_name(L, first.file), first.line, first.col);
            }
        }
        if (m->ndecl >= RK_FEATURES_MAX)
            return rk_yn_fail(&f->doc, kn, L->diag, RK_ETOOBIG,
                              "too many model features (at most %d)", RK_FEATURES_MAX);
        if (vn->type != YAML_SCALAR_NODE)
            return rk_yn_fail(&f->doc, vn, L->diag, RK_EPARSE,
                              "model feature '%s' must be an expression, found %s", name,
                              rk_yn_kind(vn));
        if (rk_yn_is_null(vn))
            return rk_yn_fail(&f->doc, vn, L->diag, RK_EPARSE,
                              "model feature '%s': the expression is empty", name);
        int rc = keep_feature(L, f, kn, vn);
        if (rc)
            return rc;
    }
    return 0;
}

int rk_load_model(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    static const char *const keys[] = {"file", "features", "explain_top"};
    (void)key;
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'model' must be a mapping with 'file', 'features' and/or "
                          "'explain_top'");
    int rc = rk_yn_check_keys(&f->doc, val, keys, sizeof keys / sizeof *keys, L->diag);
    if (rc)
        return rc;
    yaml_node_t *file = rk_yn_get(&f->doc, val, "file", NULL);
    if (file && (rc = model_file(L, f, file)))
        return rc;
    yaml_node_t *features = rk_yn_get(&f->doc, val, "features", NULL);
    if (features && (rc = model_features(L, f, features)))
        return rc;
    yaml_node_t *top = rk_yn_get(&f->doc, val, "explain_top", NULL);
    if (!top)
        return 0;
    int64_t k;
    if (!rk_yn_int(top, &k))
        return rk_yn_fail(&f->doc, top, L->diag, RK_EINVAL,
                          "model: 'explain_top' must be a whole number");
    if (k < 1 || k > RK_FEATURES_MAX)
        return rk_yn_fail(&f->doc, top, L->diag, RK_ERANGE,
                          "model: explain_top %lld is out of range (1 to %d)", (long long)k,
                          RK_FEATURES_MAX);
    L->model.explain_top = (int)k;
    return 0;
}

/* ---- phase two ------------------------------------------------------------ */

/* Compiles declared feature d into the next entry of rs->features. */
static int compile_declared(loader *L, const feature_src *d)
{
    rk_ruleset *rs = L->rs;
    rk_feature *ft = &rs->features[rs->nfeatures++]; /* counted first: freed whatever happens */
    *ft = (rk_feature){.name = strdup(d->name), .slot = -1};
    if (!ft->name)
        return RK_ENOMEM;
    int rc = rk_load_compile(L, &d->expr, RK_T_MISSING, rs->model_slot, NO_SCORE_WHY, NULL,
                             &ft->expr);
    if (rc == 0 && rk_expr_type(ft->expr) == RK_T_STR)
        rc = rk_load_fail_at(L, (rk_srcpos){d->expr.file, d->expr.line, d->expr.col}, RK_ETYPE,
                             "model feature '%s' is str; a feature must be int, float or bool",
                             d->name);
    return rc;
}

/* Index of the declared feature called name, or -1. */
static int declared(const model_src *m, const char *name)
{
    for (int i = 0; i < m->ndecl; i++)
        if (strcmp(m->decl[i].name, name) == 0)
            return i;
    return -1;
}

/* "no field or counter named 'x' (did you mean 'y'?)", the suggestion taken
 * from the fields, counters and declared features. */
static int no_binding(loader *L, const char *name)
{
    const rk_ruleset *rs = L->rs;
    const char *cands[RK_F__STD + RK_SCHEMA_MAX + RK_COUNTERS_MAX + RK_FEATURES_MAX];
    size_t n = 0;
    for (int i = 0; i < rs->model_slot; i++)
        cands[n++] = rs->syms[i].name;
    for (int i = 0; i < L->model.ndecl; i++)
        cands[n++] = L->model.decl[i].name;
    const char *near = rk_suggest(name, cands, n);
    char hint[RK_NAME_MAX + 32] = "";
    if (near)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    return rk_load_fail_at(L, L->model.file_pos, RK_ENOTFOUND,
                           "model feature '%s' has no binding: no field or counter named '%s'%s",
                           name, name, hint);
}

/* Binds model feature j, which no `features:` entry declares, to the field or
 * counter of its name, appending it to the feature vector. */
static int bind_default(loader *L, int j)
{
    rk_ruleset *rs = L->rs;
    const char *name = rk_model_feature_name(rs->model, (size_t)j);
    int sym = -1;
    for (int i = 0; i < rs->model_slot && sym < 0; i++)
        if (strcmp(rs->syms[i].name, name) == 0)
            sym = i;
    if (sym < 0)
        return no_binding(L, name);
    if (rs->syms[sym].type == RK_T_STR)
        return rk_load_fail_at(L, L->model.file_pos, RK_ETYPE,
                               "model feature '%s' has no binding: field '%s' is str (bind it "
                               "under 'features:' to an int, float or bool expression)",
                               name, name);
    rk_feature *ft = &rs->features[rs->nfeatures];
    *ft = (rk_feature){.name = strdup(name), .slot = rs->syms[sym].slot};
    if (!ft->name)
        return RK_ENOMEM;
    rs->model_input[j] = rs->nfeatures++;
    return 0;
}

int rk_load_model_compile(loader *L)
{
    rk_ruleset *rs = L->rs;
    const model_src *m = &L->model;
    rs->explain_top = m->explain_top ? m->explain_top : RK_EXPLAIN_TOP_DEFAULT;
    if (m->ndecl == 0 && !rs->model)
        return 0;
    int nmodel = rs->model ? (int)rk_model_nfeatures(rs->model) : 0, extra = 0;
    for (int j = 0; j < nmodel; j++)
        extra += declared(m, rk_model_feature_name(rs->model, (size_t)j)) < 0;
    if (m->ndecl + extra > RK_FEATURES_MAX)
        return rk_load_fail_at(L, m->file_pos, RK_ETOOBIG,
                               "too many model features: %d declared and %d more the model "
                               "uses (at most %d)",
                               m->ndecl, extra, RK_FEATURES_MAX);
    rs->features = calloc((size_t)(m->ndecl + extra) + 1, sizeof *rs->features);
    rs->model_input = calloc((size_t)nmodel + 1, sizeof *rs->model_input);
    if (!rs->features || !rs->model_input)
        return RK_ENOMEM;
    for (int i = 0; i < m->ndecl; i++) {
        int rc = compile_declared(L, &m->decl[i]);
        if (rc)
            return rc;
    }
    rs->model_in_order = true;
    for (int j = 0; j < nmodel; j++) {
        int i = declared(m, rk_model_feature_name(rs->model, (size_t)j)), rc = 0;
        if (i >= 0)
            rs->model_input[j] = i;
        else if ((rc = bind_default(L, j)))
            return rc;
        rs->model_in_order &= rs->model_input[j] == j;
    }
    return 0;
}

void rk_load_model_free(loader *L)
{
    model_src *m = &L->model;
    for (int i = 0; i < m->ndecl; i++) {
        free(m->decl[i].name);
        free(m->decl[i].expr.text);
    }
    free(m->decl);
}
