/* Import: XGBoost's JSON models (and riskd's logistic regression JSON) to an
 * rk_model, ready to save as .rmdl.
 *
 * The JSON is converted to msgpack by the proto layer's converter and walked
 * with the rk_mp cursor; no second JSON parser. What XGBoost 1.x writes with
 * `save_model("m.json")` and what we take from it:
 *
 *   learner.learner_model_param  base_score (a probability, as a string),
 *                                num_feature, num_class (0 or 1), num_target
 *   learner.objective.name       binary:logistic (or reg:logistic, the same
 *                                link function)
 *   learner.feature_names        names, or f0, f1, ... when it has none
 *   learner.gradient_booster     gbtree: model.trees[] with left_children,
 *                                right_children, split_indices,
 *                                split_conditions (threshold at a split, leaf
 *                                value at a leaf), default_left, sum_hessian,
 *                                split_type; gblinear: model.weights, the
 *                                per-feature weights then the bias
 *
 * The base margin is XGBoost's own ProbToMargin for the logistic link,
 * computed as it computes it, in float32: -logf(1/base_score - 1). So
 * base_score 0.5 is margin 0.
 *
 * XGBoost keeps the slots of pruned nodes in its arrays; they are unreachable
 * from the root. The importer walks each tree from the root and renumbers the
 * nodes it reaches in breadth-first order, so the .rmdl has no holes, and it
 * computes each split's expected value for explanations the way XGBoost's
 * FillNodeMeanValues does (float32, children's values weighted by their
 * hessian sums, divided by the node's). Every number is then validated again
 * by rk_model_finish, like a loaded file.
 *
 * Numbers arrive as float64 from the converter and are rounded to float32;
 * XGBoost writes each float32 in the shortest decimal form that reads back
 * to it, which the float64-then-float32 rounding reproduces (the parity test
 * checks thresholds against XGBoost's predictions on every row). */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lib/err.h"
#include "model/model_int.h"
#include "proto/json.h"
#include "proto/mp.h"

typedef struct imp {
    const char *file; /* name for diagnostics */
    rk_diag *diag;    /* where problems go */
    rk_model *m;      /* the model being built */
} imp;

static int ifail(imp *im, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ifail(imp *im, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rk_model_vfail(im->diag, im->file, code, fmt, ap);
    va_end(ap);
    return code;
}

static const char *type_want(rk_mp_type t)
{
    switch (t) {
    case RK_MP_MAP:
        return "an object";
    case RK_MP_ARRAY:
        return "an array";
    case RK_MP_STR:
        return "a string";
    default:
        return "a number";
    }
}

/* Finds key in the map whose header is at the cursor map and reads the
 * header of its value into *it. The value must be of type want
 * (RK_MP_FLOAT64: any number). *val (may be NULL) is left where the value
 * is read from next: at the header of a map (so that it can be searched in
 * turn), after the header of an array (at its first element). path is the
 * map's place in the document for messages ("learner"). */
static int get(imp *im, const rk_mp *map, const char *path, const char *key, rk_mp_type want,
               rk_mp_item *it, rk_mp *val)
{
    rk_mp r = *map;
    rk_mp_item m, k;
    if (rk_mp_read(&r, &m) < 0 || m.type != RK_MP_MAP)
        return ifail(im, RK_EPARSE, "%s: expected an object", path[0] ? path : "the document");
    uint32_t i = 0;
    for (; i < m.n; i++) {
        if (rk_mp_read(&r, &k) < 0)
            return ifail(im, RK_EPARSE, "%s: malformed", path);
        if (rk_mp_str_eq(&k, key))
            break;
        if (rk_mp_skip(&r, RK_MP_DEPTH_MAX) < 0)
            return ifail(im, RK_EPARSE, "%s: malformed", path);
    }
    if (i == m.n)
        return ifail(im, RK_EPARSE, "%s%s%s: missing", path, path[0] ? "." : "", key);
    rk_mp at = r;
    if (rk_mp_read(&r, it) < 0)
        return ifail(im, RK_EPARSE, "%s.%s: malformed", path, key);
    bool ok = it->type == want;
    if (want == RK_MP_FLOAT64)
        ok = it->type == RK_MP_UINT || it->type == RK_MP_INT || it->type == RK_MP_FLOAT64;
    if (!ok)
        return ifail(im, RK_EPARSE, "%s%s%s: expected %s, not %s", path, path[0] ? "." : "", key,
                     type_want(want), rk_mp_type_name(it->type));
    if (val)
        *val = it->type == RK_MP_MAP ? at : r;
    return 0;
}

/* Whether the map at the cursor has key. */
static bool has(const rk_mp *map, const char *key)
{
    rk_mp r = *map;
    rk_mp_item m, k;
    if (rk_mp_read(&r, &m) < 0 || m.type != RK_MP_MAP)
        return false;
    for (uint32_t i = 0; i < m.n; i++) {
        if (rk_mp_read(&r, &k) < 0)
            return false;
        if (rk_mp_str_eq(&k, key))
            return true;
        if (rk_mp_skip(&r, RK_MP_DEPTH_MAX) < 0)
            return false;
    }
    return false;
}

/* A number written as a string, as XGBoost writes its parameters ("5E-1"). */
static int get_param(imp *im, const rk_mp *map, const char *path, const char *key, double *out)
{
    rk_mp_item it;
    int rc = get(im, map, path, key, RK_MP_STR, &it, NULL);
    if (rc < 0)
        return rc;
    char buf[64], *end;
    snprintf(buf, sizeof buf, "%.*s", (int)(it.raw.len < 63 ? it.raw.len : 63),
             (const char *)it.raw.p);
    *out = strtod(buf, &end);
    if (end == buf || *end != '\0' || !isfinite(*out))
        return ifail(im, RK_EPARSE, "%s.%s: '%s' is not a number", path, key, buf);
    return 0;
}

static int to_f32(imp *im, double d, const char *what, uint32_t i, float *out)
{
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return ifail(im, RK_ERANGE, "%s[%u]: %g is not a finite float32", what, i, d);
    *out = (float)d;
    return 0;
}

/* The n numbers of the array at key: as float32 (f32), as integers in
 * [lo, hi] (i64), or as 0/1 or booleans (b). Exactly one of the outputs is
 * not NULL. */
static int get_numbers(imp *im, const rk_mp *map, const char *path, const char *key, uint32_t n,
                       float *f32, int64_t *i64, int64_t lo, int64_t hi, uint8_t *b)
{
    char what[96];
    snprintf(what, sizeof what, "%s%s%s", path, path[0] ? "." : "", key);
    rk_mp_item it;
    rk_mp r;
    int rc = get(im, map, path, key, RK_MP_ARRAY, &it, &r);
    if (rc < 0)
        return rc;
    if (it.n != n)
        return ifail(im, RK_EPARSE, "%s: has %u entries, expected %u", what, it.n, n);
    for (uint32_t i = 0; i < n; i++) {
        rk_mp_item e;
        double d;
        int64_t v;
        if (rk_mp_read(&r, &e) < 0)
            return ifail(im, RK_EPARSE, "%s[%u]: malformed", what, i);
        if (b && e.type == RK_MP_BOOL) {
            b[i] = e.b;
            continue;
        }
        if (f32) {
            if (rk_mp_double(&e, &d) < 0)
                return ifail(im, RK_EPARSE, "%s[%u]: expected a number, not %s", what, i,
                             rk_mp_type_name(e.type));
            if ((rc = to_f32(im, d, what, i, &f32[i])) < 0)
                return rc;
            continue;
        }
        if (rk_mp_int64(&e, &v) < 0 || v < lo || v > hi)
            return ifail(im, RK_EPARSE, "%s[%u]: expected %s%lld to %lld", what, i,
                         b ? "true, false or " : "an integer from ", (long long)lo,
                         (long long)hi);
        if (b)
            b[i] = (uint8_t)v;
        else
            i64[i] = v;
    }
    return 0;
}

/* Feature names: from an array of strings, or f0, f1, ... (XGBoost's own
 * names) when the array is empty or absent. */
static int set_names(imp *im, const rk_mp *names, uint32_t given, const char *path)
{
    rk_model *m = im->m;
    rk_mp r = names ? *names : (rk_mp){0};
    for (uint32_t i = 0; i < m->nfeatures; i++) {
        char buf[24];
        const char *s = buf;
        size_t len;
        if (given) {
            rk_mp_item e;
            if (rk_mp_read(&r, &e) < 0 || e.type != RK_MP_STR)
                return ifail(im, RK_EPARSE, "%s[%u]: expected a string", path, i);
            s = (const char *)e.raw.p;
            len = e.raw.len;
        } else {
            len = (size_t)snprintf(buf, sizeof buf, "f%u", i);
        }
        int rc = rk_model_set_name(m, i, s, len, im->file, im->diag);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- XGBoost gbtree ------------------------------------------------------- */

/* One XGBoost tree's arrays, indexed by XGBoost's node ids. */
typedef struct xtree {
    uint32_t n;       /* num_nodes */
    int64_t *left;    /* left_children, -1 at a leaf */
    int64_t *right;   /* right_children */
    int64_t *feature; /* split_indices */
    int64_t *stype;   /* split_type: 0 numeric, 1 categorical */
    float *cond;      /* split_conditions: threshold, or leaf value */
    float *hess;      /* sum_hessian */
    uint8_t *dleft;   /* default_left */
    uint32_t *order;  /* breadth-first order of the reachable nodes */
    uint32_t *newid;  /* XGBoost id -> our id, UINT32_MAX when unreached */
    float *mean;      /* per XGBoost id: expected value */
} xtree;

static void xtree_free(xtree *x)
{
    free(x->left);
    free(x->right);
    free(x->feature);
    free(x->stype);
    free(x->cond);
    free(x->hess);
    free(x->dleft);
    free(x->order);
    free(x->newid);
    free(x->mean);
}

static int xtree_read(imp *im, const rk_mp *tree, const char *path, xtree *x)
{
    rk_mp_item it;
    rk_mp tp;
    double nn;
    int rc;
    if ((rc = get(im, tree, path, "tree_param", RK_MP_MAP, &it, &tp)) < 0)
        return rc;
    char tpath[80];
    snprintf(tpath, sizeof tpath, "%s.tree_param", path);
    if ((rc = get_param(im, &tp, tpath, "num_nodes", &nn)) < 0)
        return rc;
    if (nn < 1 || nn > RK_MODEL_MAX_TREE_NODES || nn != floor(nn))
        return ifail(im, RK_ETOOBIG, "%s.num_nodes: %g is not a node count from 1 to %u", tpath,
                     nn, RK_MODEL_MAX_TREE_NODES);
    /* Allocate for what the arrays hold, not for what a number claims: an
     * array of n entries takes at least n bytes of the document. */
    rk_mp_item arr;
    if ((rc = get(im, tree, path, "left_children", RK_MP_ARRAY, &arr, NULL)) < 0)
        return rc;
    if (arr.n != nn)
        return ifail(im, RK_EPARSE, "%s.left_children: has %u entries, expected %g", path,
                     arr.n, nn);
    uint32_t n = x->n = (uint32_t)nn;
    x->left = malloc(n * sizeof *x->left);
    x->right = malloc(n * sizeof *x->right);
    x->feature = malloc(n * sizeof *x->feature);
    x->stype = calloc(n, sizeof *x->stype);
    x->cond = malloc(n * sizeof *x->cond);
    x->hess = malloc(n * sizeof *x->hess);
    x->dleft = malloc(n);
    x->order = malloc(n * sizeof *x->order);
    x->newid = malloc(n * sizeof *x->newid);
    x->mean = malloc(n * sizeof *x->mean);
    if (!x->left || !x->right || !x->feature || !x->stype || !x->cond || !x->hess ||
        !x->dleft || !x->order || !x->newid || !x->mean)
        return ifail(im, RK_ENOMEM, "out of memory");
    int64_t big = INT32_MAX;
    if ((rc = get_numbers(im, tree, path, "left_children", n, NULL, x->left, -1, big, NULL)) < 0 ||
        (rc = get_numbers(im, tree, path, "right_children", n, NULL, x->right, -1, big, NULL)) <
            0 ||
        (rc = get_numbers(im, tree, path, "split_indices", n, NULL, x->feature, 0, UINT32_MAX,
                          NULL)) < 0 ||
        (rc = get_numbers(im, tree, path, "split_conditions", n, x->cond, NULL, 0, 0, NULL)) <
            0 ||
        (rc = get_numbers(im, tree, path, "sum_hessian", n, x->hess, NULL, 0, 0, NULL)) < 0 ||
        (rc = get_numbers(im, tree, path, "default_left", n, NULL, NULL, 0, 1, x->dleft)) < 0)
        return rc;
    /* split_type arrived in XGBoost 1.5; older models are all numeric. */
    if (has(tree, "split_type") &&
        (rc = get_numbers(im, tree, path, "split_type", n, NULL, x->stype, 0, 1, NULL)) < 0)
        return rc;
    return 0;
}

/* Walks the tree from the root in breadth-first order: checks each link
 * before following it, numbers the nodes reached, then computes the expected
 * values bottom-up (reverse breadth-first order visits children first). */
static int xtree_walk(imp *im, xtree *x, const char *path)
{
    uint32_t n = x->n, head = 0, tail = 0;
    for (uint32_t i = 0; i < n; i++)
        x->newid[i] = UINT32_MAX;
    x->newid[0] = 0;
    x->order[tail++] = 0;
    while (head < tail) {
        uint32_t u = x->order[head++];
        if (x->left[u] < 0 && x->right[u] < 0)
            continue;
        if (x->stype[u] != 0)
            return ifail(im, RK_EUNSUPPORTED,
                         "%s node %u: a categorical split (on feature '%s'); only numeric "
                         "splits are supported",
                         path, u,
                         x->feature[u] < im->m->nfeatures ? im->m->names[x->feature[u]] : "?");
        if (x->feature[u] >= im->m->nfeatures)
            return ifail(im, RK_ERANGE, "%s node %u: split feature %lld out of range (model has "
                                        "%u features)",
                         path, u, (long long)x->feature[u], im->m->nfeatures);
        int64_t kids[2] = {x->left[u], x->right[u]};
        for (int s = 0; s < 2; s++) {
            if (kids[s] < 0 || kids[s] >= n)
                return ifail(im, RK_ECORRUPT, "%s node %u: %s child %lld out of range (tree has "
                                              "%u nodes)",
                             path, u, s ? "right" : "left", (long long)kids[s], n);
            if (x->newid[kids[s]] != UINT32_MAX)
                return ifail(im, RK_ECORRUPT, "%s node %u: %s child %lld is reached twice (a "
                                              "cycle?)",
                             path, u, s ? "right" : "left", (long long)kids[s]);
            x->newid[kids[s]] = tail;
            x->order[tail++] = (uint32_t)kids[s];
        }
    }
    for (uint32_t k = tail; k-- > 0;) {
        uint32_t u = x->order[k];
        if (x->left[u] < 0) {
            x->mean[u] = x->cond[u];
            continue;
        }
        uint32_t l = (uint32_t)x->left[u], r = (uint32_t)x->right[u];
        float v = x->mean[l] * x->hess[l];
        v += x->mean[r] * x->hess[r];
        /* A node without hessian (min_child_weight 0) has no weighting to
         * offer: take the plain mean of its children. */
        x->mean[u] = x->hess[u] > 0 ? v / x->hess[u] : (x->mean[l] + x->mean[r]) / 2;
    }
    x->n = tail;
    return 0;
}

/* Copies the reached nodes of x, renumbered, into a new tree of the model. */
static int xtree_add(imp *im, const xtree *x, const char *path)
{
    rk_model *m = im->m;
    uint32_t first;
    int rc = rk_model_add_tree(m, x->n, &first);
    if (rc == RK_ETOOBIG)
        return ifail(im, rc, "%s: the trees have more than %u nodes in all", path,
                     RK_MODEL_MAX_NODES);
    if (rc < 0)
        return ifail(im, rc, "out of memory");
    for (uint32_t k = 0; k < x->n; k++) {
        uint32_t u = x->order[k];
        rk_node *nd = &m->nodes[first + k];
        m->mean[first + k] = x->mean[u];
        m->cover[first + k] = x->hess[u];
        if (x->left[u] < 0)
            continue; /* a leaf: children stay RK_NODE_NONE */
        nd->value = x->cond[u];
        nd->feature = (uint32_t)x->feature[u] | (x->dleft[u] ? RK_NODE_DEFAULT_LEFT : 0);
        nd->child[0] = x->newid[x->left[u]];
        nd->child[1] = x->newid[x->right[u]];
    }
    return 0;
}

static int import_gbtree(imp *im, const rk_mp *gb)
{
    rk_mp_item it;
    rk_mp model, trees;
    int rc;
    if ((rc = get(im, gb, "learner.gradient_booster", "model", RK_MP_MAP, &it, &model)) < 0)
        return rc;
    const char *mpath = "learner.gradient_booster.model";
    rk_mp info;
    if ((rc = get(im, &model, mpath, "tree_info", RK_MP_ARRAY, &it, &info)) < 0)
        return rc;
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item e;
        int64_t g;
        if (rk_mp_read(&info, &e) < 0 || rk_mp_int64(&e, &g) < 0 || g != 0)
            return ifail(im, RK_EUNSUPPORTED, "%s.tree_info[%u]: tree of output group other "
                                              "than 0 (multi-class models are not supported)",
                         mpath, i);
    }
    if ((rc = get(im, &model, mpath, "trees", RK_MP_ARRAY, &it, &trees)) < 0)
        return rc;
    if (it.n > RK_MODEL_MAX_TREES)
        return ifail(im, RK_ETOOBIG, "%s.trees: %u trees is too many (the limit is %u)", mpath,
                     it.n, RK_MODEL_MAX_TREES);
    if ((rc = rk_model_reserve_trees(im->m, it.n)) < 0)
        return ifail(im, rc, "out of memory");
    uint32_t ntrees = it.n;
    for (uint32_t t = 0; t < ntrees; t++) {
        char path[64];
        snprintf(path, sizeof path, "%s.trees[%u]", mpath, t);
        rk_mp tree = trees;
        if (rk_mp_skip(&trees, RK_MP_DEPTH_MAX) < 0)
            return ifail(im, RK_EPARSE, "%s: malformed", path);
        xtree x = {0};
        rc = xtree_read(im, &tree, path, &x);
        if (rc == 0)
            rc = xtree_walk(im, &x, path);
        if (rc == 0)
            rc = xtree_add(im, &x, path);
        xtree_free(&x);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- XGBoost gblinear ----------------------------------------------------- */

/* A linear booster with the logistic link is a logistic regression:
 * model.weights holds the feature weights, then the bias. */
static int import_gblinear(imp *im, const rk_mp *gb)
{
    rk_model *m = im->m;
    rk_mp_item it;
    rk_mp model;
    const char *mpath = "learner.gradient_booster.model";
    int rc = get(im, gb, "learner.gradient_booster", "model", RK_MP_MAP, &it, &model);
    if (rc < 0)
        return rc;
    if ((rc = get(im, &model, mpath, "weights", RK_MP_ARRAY, &it, NULL)) < 0)
        return rc;
    if (it.n != m->nfeatures + 1)
        return ifail(im, RK_EUNSUPPORTED,
                     "%s.weights: %u entries for %u features (multi-class linear models are "
                     "not supported)",
                     mpath, it.n, m->nfeatures);
    float *w = malloc((m->nfeatures + 1) * sizeof *w);
    if (!w)
        return ifail(im, RK_ENOMEM, "out of memory");
    rc = get_numbers(im, &model, mpath, "weights", m->nfeatures + 1, w, NULL, 0, 0, NULL);
    if (rc == 0) {
        memcpy(m->weights, w, m->nfeatures * sizeof *w);
        m->bias = w[m->nfeatures];
    }
    free(w);
    return rc;
}

/* ---- XGBoost's learner ---------------------------------------------------- */

static int import_xgboost(imp *im, const rk_mp *root)
{
    rk_mp_item it;
    rk_mp learner, obj, lmp, gb, names;
    int rc;
    if ((rc = get(im, root, "", "learner", RK_MP_MAP, &it, &learner)) < 0 ||
        (rc = get(im, &learner, "learner", "objective", RK_MP_MAP, &it, &obj)) < 0 ||
        (rc = get(im, &obj, "learner.objective", "name", RK_MP_STR, &it, NULL)) < 0)
        return rc;
    if (!rk_mp_str_eq(&it, "binary:logistic") && !rk_mp_str_eq(&it, "reg:logistic"))
        return ifail(im, RK_EUNSUPPORTED,
                     "learner.objective.name: '%.*s' is not supported (train with objective "
                     "binary:logistic)",
                     (int)(it.raw.len < 64 ? it.raw.len : 64), (const char *)it.raw.p);

    const char *ppath = "learner.learner_model_param";
    double base_score, nfeat, nclass = 0, ntarget = 1;
    if ((rc = get(im, &learner, "learner", "learner_model_param", RK_MP_MAP, &it, &lmp)) < 0 ||
        (rc = get_param(im, &lmp, ppath, "base_score", &base_score)) < 0 ||
        (rc = get_param(im, &lmp, ppath, "num_feature", &nfeat)) < 0 ||
        (has(&lmp, "num_class") && (rc = get_param(im, &lmp, ppath, "num_class", &nclass)) < 0) ||
        (has(&lmp, "num_target") && (rc = get_param(im, &lmp, ppath, "num_target", &ntarget)) < 0))
        return rc;
    if (nclass > 1 || ntarget > 1)
        return ifail(im, RK_EUNSUPPORTED,
                     "%s: multi-class and multi-target models are not supported (num_class "
                     "%g, num_target %g)",
                     ppath, nclass, ntarget);
    if (!(base_score > 0 && base_score < 1))
        return ifail(im, RK_ERANGE, "%s.base_score: %g is not a probability in (0, 1)", ppath,
                     base_score);
    if (nfeat < 1 || nfeat > RK_MODEL_MAX_FEATURES || nfeat != floor(nfeat))
        return ifail(im, RK_ETOOBIG, "%s.num_feature: %g is not a feature count from 1 to %u",
                     ppath, nfeat, RK_MODEL_MAX_FEATURES);

    if ((rc = get(im, &learner, "learner", "gradient_booster", RK_MP_MAP, &it, &gb)) < 0 ||
        (rc = get(im, &gb, "learner.gradient_booster", "name", RK_MP_STR, &it, NULL)) < 0)
        return rc;
    bool linear = rk_mp_str_eq(&it, "gblinear");
    if (!linear && !rk_mp_str_eq(&it, "gbtree"))
        return ifail(im, RK_EUNSUPPORTED,
                     "learner.gradient_booster.name: booster '%.*s' is not supported (gbtree or "
                     "gblinear)",
                     (int)(it.raw.len < 64 ? it.raw.len : 64), (const char *)it.raw.p);

    im->m = rk_model_new(linear ? RK_MODEL_LINEAR : RK_MODEL_TREES);
    if (!im->m || rk_model_set_nfeatures(im->m, (uint32_t)nfeat) < 0)
        return ifail(im, RK_ENOMEM, "out of memory");
    /* XGBoost's ProbToMargin for the logistic link, in its float32. */
    float bs = (float)base_score;
    im->m->base_margin = -logf(1.0f / bs - 1.0f);
    if (im->m->base_margin == 0)
        im->m->base_margin = 0; /* not -0: base_score 0.5 prints as margin 0 */

    uint32_t nnames = 0;
    if (has(&learner, "feature_names")) {
        if ((rc = get(im, &learner, "learner", "feature_names", RK_MP_ARRAY, &it, &names)) < 0)
            return rc;
        nnames = it.n;
        if (nnames && nnames != im->m->nfeatures)
            return ifail(im, RK_EPARSE, "learner.feature_names: %u names for %u features",
                         nnames, im->m->nfeatures);
    }
    if ((rc = set_names(im, nnames ? &names : NULL, nnames, "learner.feature_names")) < 0)
        return rc;
    if (has(&learner, "feature_types")) {
        rk_mp types;
        if ((rc = get(im, &learner, "learner", "feature_types", RK_MP_ARRAY, &it, &types)) < 0)
            return rc;
        for (uint32_t i = 0; i < it.n && i < im->m->nfeatures; i++) {
            rk_mp_item e;
            if (rk_mp_read(&types, &e) == 0 && rk_mp_str_eq(&e, "c"))
                return ifail(im, RK_EUNSUPPORTED,
                             "learner.feature_types[%u]: feature '%s' is categorical; only "
                             "numeric features are supported",
                             i, im->m->names[i]);
        }
    }
    return linear ? import_gblinear(im, &gb) : import_gbtree(im, &gb);
}

/* "xgboost 1.7.4" from the document's version array, for the meta. */
static void xgboost_source(const rk_mp *root, char *buf, size_t size)
{
    rk_mp r = *root, v;
    rk_mp_item m, k, e;
    snprintf(buf, size, "xgboost");
    if (rk_mp_read(&r, &m) < 0)
        return;
    for (uint32_t i = 0; i < m.n; i++) {
        if (rk_mp_read(&r, &k) < 0)
            return;
        v = r;
        if (rk_mp_skip(&r, RK_MP_DEPTH_MAX) < 0)
            return;
        if (!rk_mp_str_eq(&k, "version") || rk_mp_read(&v, &e) < 0 || e.type != RK_MP_ARRAY)
            continue;
        size_t at = strlen(buf);
        for (uint32_t j = 0; j < e.n && j < 4 && at < size; j++) {
            rk_mp_item d;
            int64_t x;
            if (rk_mp_read(&v, &d) < 0 || rk_mp_int64(&d, &x) < 0)
                return;
            at += (size_t)snprintf(buf + at, size - at, "%s%lld", j ? "." : " ", (long long)x);
        }
        return;
    }
}

/* ---- riskd's logistic regression ------------------------------------------ */

static int import_linear(imp *im, const rk_mp *root)
{
    static const char *const keys[] = {"objective", "features", "weights", "bias"};
    rk_mp r = *root;
    rk_mp_item m, k, it;
    int rc;
    rk_mp_read(&r, &m);
    for (uint32_t i = 0; i < m.n; i++) {
        if (rk_mp_read(&r, &k) < 0 || k.type != RK_MP_STR)
            return ifail(im, RK_EPARSE, "malformed object");
        size_t j = 0;
        while (j < 4 && !rk_mp_str_eq(&k, keys[j]))
            j++;
        if (j == 4) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(k.raw.len < 60 ? k.raw.len : 60),
                     (const char *)k.raw.p);
            const char *near = rk_suggest(name, keys, 4);
            return ifail(im, RK_EPARSE, "unknown key '%s'%s%s%s", name,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        }
        rk_mp_skip(&r, RK_MP_DEPTH_MAX);
    }
    if ((rc = get(im, root, "", "objective", RK_MP_STR, &it, NULL)) < 0)
        return rc;
    if (!rk_mp_str_eq(&it, "logistic_regression"))
        return ifail(im, RK_EUNSUPPORTED,
                     "objective '%.*s' is not supported (logistic_regression; XGBoost models "
                     "have a 'learner')",
                     (int)(it.raw.len < 64 ? it.raw.len : 64), (const char *)it.raw.p);
    rk_mp names;
    if ((rc = get(im, root, "", "features", RK_MP_ARRAY, &it, &names)) < 0)
        return rc;
    if (it.n == 0 || it.n > RK_MODEL_MAX_FEATURES)
        return ifail(im, RK_ETOOBIG, "features: %u names; a model has 1 to %u", it.n,
                     RK_MODEL_MAX_FEATURES);
    im->m = rk_model_new(RK_MODEL_LINEAR);
    if (!im->m || rk_model_set_nfeatures(im->m, it.n) < 0)
        return ifail(im, RK_ENOMEM, "out of memory");
    if ((rc = set_names(im, &names, it.n, "features")) < 0 ||
        (rc = get_numbers(im, root, "", "weights", im->m->nfeatures, im->m->weights, NULL, 0, 0,
                          NULL)) < 0 ||
        (rc = get(im, root, "", "bias", RK_MP_FLOAT64, &it, NULL)) < 0)
        return rc;
    double bias;
    rk_mp_double(&it, &bias);
    return to_f32(im, bias, "bias", 0, &im->m->bias);
}

/* ---- Entry points --------------------------------------------------------- */

int rk_model_import_mem(const char *name, const char *text, size_t len, rk_model **out,
                        rk_diag *diag)
{
    imp im = {.file = name, .diag = diag};
    if (len > RK_MODEL_JSON_MAX)
        return ifail(&im, RK_ETOOBIG, "file is %zu bytes; the limit is %u", len,
                     RK_MODEL_JSON_MAX);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char err[200];
    int rc = rk_json_to_msgpack(text, len, &sb, err, sizeof err);
    if (rc == RK_EPARSE) {
        msgpack_sbuffer_destroy(&sb);
        return ifail(&im, rc, "%s", err);
    }
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return ifail(&im, rc, "out of memory");
    }
    rk_mp root;
    rk_mp_init(&root, (const uint8_t *)sb.data, sb.size);
    rk_mp_item top;
    rk_mp peek = root;
    char source[64];
    if (rk_mp_read(&peek, &top) < 0 || top.type != RK_MP_MAP) {
        rc = ifail(&im, RK_EPARSE, "expected a JSON object (an XGBoost model or a logistic "
                                   "regression)");
    } else if (has(&root, "learner")) {
        rc = import_xgboost(&im, &root);
        xgboost_source(&root, source, sizeof source);
    } else if (has(&root, "objective")) {
        rc = import_linear(&im, &root);
        snprintf(source, sizeof source, "riskd json");
    } else {
        rc = ifail(&im, RK_EPARSE,
                   "neither an XGBoost model (no 'learner') nor a logistic regression (no "
                   "'objective')");
    }
    if (rc == 0)
        rc = rk_model_finish(im.m, name, diag);
    if (rc == 0 && rk_model_set_meta(im.m, "source", source) < 0)
        rc = ifail(&im, RK_ENOMEM, "out of memory");
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        rk_model_free(im.m);
        return rc;
    }
    *out = im.m;
    return 0;
}

int rk_model_import(const char *path, rk_model **out, rk_diag *diag)
{
    uint8_t *buf;
    size_t len;
    int rc = rk_model_read_file(path, RK_MODEL_JSON_MAX, &buf, &len, diag);
    if (rc < 0)
        return rc;
    rc = rk_model_import_mem(path, (const char *)buf, len, out, diag);
    free(buf);
    return rc;
}
