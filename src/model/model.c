/* The model object: building one, validating it, and the questions one can
 * ask of it.
 *
 * Loaders (rmdl.c for .rmdl files, import_xgb.c for XGBoost and logistic
 * regression JSON) fill an rk_model with what their input says, trees with
 * tree-relative child links, and then hand it to rk_model_finish. That is the
 * single gate every model passes: it checks that each tree is a tree (every
 * node but the root has exactly one parent and is reachable from the root, so
 * there are no cycles; leaves have no children; depth is bounded), that
 * feature indices are in range and numbers finite, and only then rewrites the
 * links to the packed, absolute form the predictor walks. A model that fails
 * is freed by the caller; a model that passes is immutable from then on
 * (except for its meta strings, which only tools touch before saving). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/err.h"
#include "model/model_int.h"

int rk_model_vfail(rk_diag *diag, const char *file, int code, const char *fmt, va_list ap)
{
    char msg[sizeof diag->msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    rk_diag_set(diag, file, 0, 0, "%s", msg);
    return code;
}

static int fail(rk_diag *diag, const char *file, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(rk_diag *diag, const char *file, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rk_model_vfail(diag, file, code, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- Objectives ----------------------------------------------------------- */

static const char *const objective_names[] = {
#define XX(name, key, text) key,
    RK_MODEL_OBJECTIVE_MAP(XX)
#undef XX
};
static const char *const objective_texts[] = {
#define XX(name, key, text) text,
    RK_MODEL_OBJECTIVE_MAP(XX)
#undef XX
};
#define NOBJECTIVES (sizeof objective_names / sizeof objective_names[0])

const char *rk_model_objective_name(rk_model_objective o)
{
    return (unsigned)o < NOBJECTIVES ? objective_names[o] : "?";
}

const char *rk_model_objective_text(rk_model_objective o)
{
    return (unsigned)o < NOBJECTIVES ? objective_texts[o] : "?";
}

int rk_model_objective_find(const char *s, size_t len)
{
    for (size_t i = 0; i < NOBJECTIVES; i++)
        if (strlen(objective_names[i]) == len && memcmp(objective_names[i], s, len) == 0)
            return (int)i;
    return -1;
}

/* ---- Lifecycle ------------------------------------------------------------- */

rk_model *rk_model_new(rk_model_objective objective)
{
    rk_model *m = calloc(1, sizeof *m);
    if (m)
        m->objective = objective;
    return m;
}

static void free_strings(char **v, uint32_t n)
{
    if (!v)
        return;
    for (uint32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void rk_model_free(rk_model *m)
{
    if (!m)
        return;
    free_strings(m->names, m->nfeatures);
    free(m->root);
    free(m->depth);
    free(m->group_depth);
    free(m->nodes);
    free(m->mean);
    free(m->cover);
    free(m->splits);
    free(m->weights);
    free_strings(m->meta_key, m->nmeta);
    free_strings(m->meta_val, m->nmeta);
    free(m);
}

int rk_model_set_nfeatures(rk_model *m, uint32_t n)
{
    if (n > RK_MODEL_MAX_FEATURES)
        return RK_ETOOBIG;
    m->names = calloc(n ? n : 1, sizeof *m->names);
    m->splits = calloc(n ? n : 1, sizeof *m->splits);
    if (m->objective == RK_MODEL_LINEAR)
        m->weights = calloc(n ? n : 1, sizeof *m->weights);
    if (!m->names || !m->splits || (m->objective == RK_MODEL_LINEAR && !m->weights))
        return RK_ENOMEM;
    m->nfeatures = n;
    return 0;
}

/* Whether the len bytes at s are a printable name: no control characters
 * (bytes >= 0x80 pass: UTF-8 is welcome), not empty, not too long. */
static bool printable(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int rk_model_set_name(rk_model *m, uint32_t i, const char *s, size_t len, const char *file,
                      rk_diag *diag)
{
    if (!printable(s, len, RK_MODEL_MAX_NAME))
        return fail(diag, file, RK_EINVAL,
                    "feature %u: a name must be 1 to %u bytes without control characters", i,
                    RK_MODEL_MAX_NAME);
    char *copy = malloc(len + 1);
    if (!copy)
        return fail(diag, file, RK_ENOMEM, "out of memory");
    memcpy(copy, s, len);
    copy[len] = '\0';
    free(m->names[i]);
    m->names[i] = copy;
    return 0;
}

int rk_model_reserve_trees(rk_model *m, uint32_t ntrees)
{
    if (ntrees > RK_MODEL_MAX_TREES)
        return RK_ETOOBIG;
    size_t ngroups = ntrees / RK_MODEL_GROUP + 1;
    m->root = calloc(ntrees + 1, sizeof *m->root);
    m->depth = calloc(ntrees + 1, 1);
    m->group_depth = calloc(ngroups, 1);
    if (!m->root || !m->depth || !m->group_depth)
        return RK_ENOMEM;
    return 0;
}

static int grow_nodes(rk_model *m, uint32_t need)
{
    if (need <= m->cap)
        return 0;
    uint32_t cap = m->cap ? m->cap : 256;
    while (cap < need)
        cap = cap > RK_MODEL_MAX_NODES / 2 ? RK_MODEL_MAX_NODES : cap * 2;
    rk_node *nodes = realloc(m->nodes, (size_t)cap * sizeof *nodes);
    if (nodes)
        m->nodes = nodes;
    float *mean = realloc(m->mean, (size_t)cap * sizeof *mean);
    if (mean)
        m->mean = mean;
    float *cover = realloc(m->cover, (size_t)cap * sizeof *cover);
    if (cover)
        m->cover = cover;
    if (!nodes || !mean || !cover)
        return RK_ENOMEM;
    m->cap = cap;
    return 0;
}

int rk_model_add_tree(rk_model *m, uint32_t n, uint32_t *first)
{
    if (n == 0 || n > RK_MODEL_MAX_TREE_NODES || n > RK_MODEL_MAX_NODES - m->nnodes)
        return RK_ETOOBIG;
    int rc = grow_nodes(m, m->nnodes + n);
    if (rc < 0)
        return rc;
    uint32_t at = m->nnodes;
    for (uint32_t i = 0; i < n; i++) {
        m->nodes[at + i] = (rk_node){.child = {RK_NODE_NONE, RK_NODE_NONE}};
        m->mean[at + i] = 0;
        m->cover[at + i] = 0;
    }
    m->root[m->ntrees++] = at;
    m->nnodes += n;
    m->root[m->ntrees] = m->nnodes;
    *first = at;
    return 0;
}

/* ---- Validation ------------------------------------------------------------- */

/* Scratch for checking one tree, sized for the largest. */
typedef struct tree_scratch {
    uint32_t *parent; /* per node: its parent, or RK_NODE_NONE */
    uint32_t *stack;  /* depth-first walk: node indices */
    uint8_t *sdepth;  /* depth-first walk: their depths */
    uint8_t *seen;    /* per node: reached from the root */
} tree_scratch;

static const char *const side_name[2] = {"left", "right"};

/* The checks of one node that need no other node. */
static int check_node(const rk_model *m, uint32_t t, uint32_t i, uint32_t n, const char *file,
                      rk_diag *diag)
{
    uint32_t at = m->root[t] + i;
    const rk_node *nd = &m->nodes[at];
    if (!isfinite(m->mean[at]))
        return fail(diag, file, RK_ERANGE, "tree %u node %u: value is not a finite number", t, i);
    if (!isfinite(m->cover[at]) || m->cover[at] < 0)
        return fail(diag, file, RK_ERANGE,
                    "tree %u node %u: cover is not a finite number >= 0", t, i);
    bool has[2] = {nd->child[0] != RK_NODE_NONE, nd->child[1] != RK_NODE_NONE};
    if (!has[0] && !has[1])
        return 0;
    if (!has[0] || !has[1])
        return fail(diag, file, RK_ECORRUPT,
                    "tree %u node %u: has a %s child but no %s child (a node has two children "
                    "or none)",
                    t, i, side_name[has[1]], side_name[has[0]]);
    for (int s = 0; s < 2; s++)
        if (nd->child[s] >= n)
            return fail(diag, file, RK_ECORRUPT,
                        "tree %u node %u: %s child %u out of range (tree has %u nodes)", t, i,
                        side_name[s], nd->child[s], n);
    uint32_t f = nd->feature & RK_NODE_FEATURE_MASK;
    if (f >= m->nfeatures)
        return fail(diag, file, RK_ERANGE,
                    "tree %u node %u: split feature %u out of range (model has %u features)", t,
                    i, f, m->nfeatures);
    if (!isfinite(nd->value))
        return fail(diag, file, RK_ERANGE, "tree %u node %u: threshold is not a finite number",
                    t, i);
    return 0;
}

/* Checks that tree t is a tree: every node but the root has one parent, the
 * root none, and all are reachable from the root within the depth limit.
 * With one parent each and none for the root, what the root reaches is a
 * tree, so the walk visits each node once and needs no cycle detection of
 * its own. Sets the tree's depth. */
static int check_tree(rk_model *m, uint32_t t, tree_scratch *s, const char *file, rk_diag *diag)
{
    uint32_t first = m->root[t], n = m->root[t + 1] - first;
    int rc;
    for (uint32_t i = 0; i < n; i++) {
        s->parent[i] = RK_NODE_NONE;
        s->seen[i] = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = check_node(m, t, i, n, file, diag)) < 0)
            return rc;
        const rk_node *nd = &m->nodes[first + i];
        if (nd->child[0] == RK_NODE_NONE)
            continue;
        for (int side = 0; side < 2; side++) {
            uint32_t c = nd->child[side];
            if (c == 0)
                return fail(diag, file, RK_ECORRUPT,
                            "tree %u node %u: %s child is node 0, the root (a cycle)", t, i,
                            side_name[side]);
            if (s->parent[c] != RK_NODE_NONE)
                return fail(diag, file, RK_ECORRUPT,
                            "tree %u node %u: %s child %u is already a child of node %u (a "
                            "node has one parent)",
                            t, i, side_name[side], c, s->parent[c]);
            s->parent[c] = i;
        }
    }

    uint32_t top = 0, reached = 0;
    int depth = 0;
    s->stack[top] = 0;
    s->sdepth[top++] = 0;
    while (top > 0) {
        top--;
        uint32_t i = s->stack[top];
        int d = s->sdepth[top];
        if (d > RK_MODEL_MAX_DEPTH)
            return fail(diag, file, RK_ECORRUPT,
                        "tree %u node %u: deeper than %d levels below the root", t, i,
                        RK_MODEL_MAX_DEPTH);
        s->seen[i] = 1;
        reached++;
        if (d > depth)
            depth = d;
        const rk_node *nd = &m->nodes[first + i];
        if (nd->child[0] == RK_NODE_NONE)
            continue;
        for (int side = 1; side >= 0; side--) {
            s->stack[top] = nd->child[side];
            s->sdepth[top++] = (uint8_t)(d + 1);
        }
    }
    if (reached < n)
        for (uint32_t i = 0; i < n; i++)
            if (!s->seen[i])
                return fail(diag, file, RK_ECORRUPT,
                            "tree %u node %u: not reachable from the root (a cycle or a stray "
                            "node)",
                            t, i);
    m->depth[t] = (uint8_t)depth;
    return 0;
}

/* Rewrites tree t's links as absolute indices, leaves pointing at themselves
 * and holding their value, and counts splits per feature. */
static void pack_tree(rk_model *m, uint32_t t)
{
    uint32_t first = m->root[t], end = m->root[t + 1];
    for (uint32_t i = first; i < end; i++) {
        rk_node *nd = &m->nodes[i];
        if (nd->child[0] == RK_NODE_NONE) {
            *nd = (rk_node){.value = m->mean[i], .feature = 0, .child = {i, i}};
        } else {
            nd->child[0] += first;
            nd->child[1] += first;
            m->splits[nd->feature & RK_NODE_FEATURE_MASK]++;
        }
    }
}

static int finish_trees(rk_model *m, const char *file, rk_diag *diag)
{
    if (m->ntrees == 0)
        return fail(diag, file, RK_EPARSE, "model has no trees");
    uint32_t maxn = 0;
    for (uint32_t t = 0; t < m->ntrees; t++)
        if (m->root[t + 1] - m->root[t] > maxn)
            maxn = m->root[t + 1] - m->root[t];
    tree_scratch s = {
        .parent = malloc((size_t)maxn * sizeof *s.parent),
        .stack = malloc((size_t)maxn * sizeof *s.stack),
        .sdepth = malloc(maxn),
        .seen = malloc(maxn),
    };
    int rc = 0;
    if (!s.parent || !s.stack || !s.sdepth || !s.seen)
        rc = fail(diag, file, RK_ENOMEM, "out of memory");
    for (uint32_t t = 0; rc == 0 && t < m->ntrees; t++)
        rc = check_tree(m, t, &s, file, diag);
    free(s.parent);
    free(s.stack);
    free(s.sdepth);
    free(s.seen);
    if (rc < 0)
        return rc;
    for (uint32_t t = 0; t < m->ntrees; t++) {
        pack_tree(m, t);
        uint8_t *g = &m->group_depth[t / RK_MODEL_GROUP];
        if (m->depth[t] > *g)
            *g = m->depth[t];
    }
    return 0;
}

/* A feature name and its index, sorted by name then index. */
typedef struct named {
    const char *name; /* the feature's name */
    uint32_t index;   /* its position in the feature vector */
} named;

static int by_name(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Feature names must be unique (they are what rule files bind). Sorting
 * keeps a file with tens of thousands of names from costing a quadratic
 * number of comparisons. Of the duplicates, reports the one with the smallest
 * index, against the first feature of that name. */
static int check_unique(const rk_model *m, const char *file, rk_diag *diag)
{
    named *v = malloc(m->nfeatures * sizeof *v);
    if (!v)
        return fail(diag, file, RK_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < m->nfeatures; i++)
        v[i] = (named){m->names[i], i};
    qsort(v, m->nfeatures, sizeof *v, by_name);
    uint32_t dup = UINT32_MAX, first = 0, run = 0; /* run: start of the equal names */
    for (uint32_t k = 1; k < m->nfeatures; k++) {
        if (strcmp(v[k - 1].name, v[k].name) != 0)
            run = k;
        else if (v[k].index < dup) {
            dup = v[k].index;
            first = v[run].index;
        }
    }
    free(v);
    if (dup != UINT32_MAX)
        return fail(diag, file, RK_EEXISTS, "feature %u: name '%s' is also feature %u", dup,
                    m->names[dup], first);
    return 0;
}

int rk_model_finish(rk_model *m, const char *file, rk_diag *diag)
{
    if (m->finished)
        return 0;
    if (m->nfeatures == 0)
        return fail(diag, file, RK_EPARSE, "model has no features");
    for (uint32_t i = 0; i < m->nfeatures; i++)
        if (!m->names[i])
            return fail(diag, file, RK_EPARSE, "feature %u has no name", i);
    int rc = check_unique(m, file, diag);
    if (rc < 0)
        return rc;
    if (!isfinite(m->base_margin))
        return fail(diag, file, RK_ERANGE, "base margin is not a finite number");
    if (m->objective == RK_MODEL_TREES) {
        rc = finish_trees(m, file, diag);
    } else {
        if (m->ntrees)
            return fail(diag, file, RK_EPARSE, "a logistic regression has no trees");
        for (uint32_t i = 0; i < m->nfeatures; i++)
            if (!isfinite(m->weights[i]))
                return fail(diag, file, RK_ERANGE,
                            "weight %u (feature '%s') is not a finite number", i, m->names[i]);
        if (!isfinite(m->bias))
            return fail(diag, file, RK_ERANGE, "bias is not a finite number");
    }
    if (rc == 0)
        m->finished = true;
    return rc;
}

/* ---- Questions -------------------------------------------------------------- */

void rk_model_get_info(const rk_model *m, rk_model_info *info)
{
    *info = (rk_model_info){
        .objective = m->objective,
        .nfeatures = m->nfeatures,
        .ntrees = m->ntrees,
        .nnodes = m->nnodes,
        .base_margin = m->base_margin,
    };
    for (uint32_t i = 0; i < m->nnodes; i++)
        info->nleaves += m->nodes[i].child[0] == i;
    for (uint32_t t = 0; t < m->ntrees; t++)
        if (m->depth[t] > info->max_depth)
            info->max_depth = m->depth[t];
}

size_t rk_model_nfeatures(const rk_model *m) { return m->nfeatures; }

const char *rk_model_feature_name(const rk_model *m, size_t i)
{
    return i < m->nfeatures ? m->names[i] : NULL;
}

int rk_model_feature_find(const rk_model *m, const char *name)
{
    for (uint32_t i = 0; i < m->nfeatures; i++)
        if (strcmp(m->names[i], name) == 0)
            return (int)i;
    return -1;
}

size_t rk_model_feature_splits(const rk_model *m, size_t i)
{
    return i < m->nfeatures ? m->splits[i] : 0;
}

double rk_model_feature_weight(const rk_model *m, size_t i)
{
    return m->weights && i < m->nfeatures ? m->weights[i] : 0;
}

double rk_model_bias(const rk_model *m) { return m->bias; }

size_t rk_model_nmeta(const rk_model *m) { return m->nmeta; }

void rk_model_meta(const rk_model *m, size_t i, const char **key, const char **value)
{
    *key = i < m->nmeta ? m->meta_key[i] : NULL;
    *value = i < m->nmeta ? m->meta_val[i] : NULL;
}

int rk_model_set_meta(rk_model *m, const char *key, const char *value)
{
    if (!printable(key, strlen(key), RK_MODEL_MAX_META_LEN) ||
        (value[0] && !printable(value, strlen(value), RK_MODEL_MAX_META_LEN)))
        return RK_EINVAL;
    char *v = strdup(value);
    if (!v)
        return RK_ENOMEM;
    for (uint32_t i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_key[i], key) == 0) {
            free(m->meta_val[i]);
            m->meta_val[i] = v;
            return 0;
        }
    if (m->nmeta >= RK_MODEL_MAX_META) {
        free(v);
        return RK_ETOOBIG;
    }
    char *k = strdup(key);
    char **keys = realloc(m->meta_key, (m->nmeta + 1) * sizeof *keys);
    if (keys)
        m->meta_key = keys;
    char **vals = realloc(m->meta_val, (m->nmeta + 1) * sizeof *vals);
    if (vals)
        m->meta_val = vals;
    if (!k || !keys || !vals) {
        free(k);
        free(v);
        return RK_ENOMEM;
    }
    m->meta_key[m->nmeta] = k;
    m->meta_val[m->nmeta++] = v;
    return 0;
}

/* ---- Files and checksums ---------------------------------------------------- */

int rk_model_read_file(const char *path, size_t max, uint8_t **out, size_t *len, rk_diag *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(diag, path, RK_EIO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return fail(diag, path, RK_EIO, "not a regular file");
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return fail(diag, path, RK_ETOOBIG, "file is %lld bytes; the limit is %zu",
                    (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return fail(diag, path, RK_ENOMEM, "out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return fail(diag, path, RK_EIO, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* CRC-32C (reflected polynomial 0x82f63b78), a bit at a time. A model is
 * read once per reload, a few hundred kilobytes, so a table (and the shared
 * state to build it) would buy milliseconds nobody waits for. */
uint32_t rk_model_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= b[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}
