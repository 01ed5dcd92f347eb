/* Inside the model module: the in-memory layout shared by the loader
 * (rmdl.c), the importer (import_xgb.c), the scorer (predict.c, explain.c) and
 * the tests. Not for other modules: they use model.h.
 *
 * Trees are packed into one array of 16-byte nodes, tree after tree, with
 * absolute child indices, so a prediction walks plain memory with no
 * per-tree offsets. A leaf's children are the leaf itself: stepping from a
 * leaf stays there, which lets the predictor walk several trees in lock-step
 * for a fixed number of steps with no data-dependent branch.
 *
 * Both the loader and the importer fill a model the same way: rk_model_add_tree
 * for each tree, then write the nodes with tree-relative child indices
 * (RK_NODE_NONE for "no child") as the file has them, and finally call
 * rk_model_finish, the one place where trees are validated and converted to
 * the packed form. */
#ifndef RK_MODEL_INT_H
#define RK_MODEL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/diag.h"
#include "model/model.h"

#define RK_NODE_DEFAULT_LEFT 0x80000000u /* in rk_node.feature: missing values go left */
#define RK_NODE_FEATURE_MASK 0x7fffffffu /* in rk_node.feature: the feature index */
#define RK_NODE_NONE UINT32_MAX          /* before rk_model_finish: no child (a leaf) */
#define RK_MODEL_GROUP 8                 /* trees the predictor walks in lock-step */

typedef struct rk_node {
    float value;       /* split: threshold, `x < value` goes left; leaf: the leaf value */
    uint32_t feature;  /* split: feature index | RK_NODE_DEFAULT_LEFT; leaf: 0 */
    uint32_t child[2]; /* left, right: absolute node indices; a leaf's are its own index */
} rk_node;

struct rk_model {
    rk_model_objective objective; /* trees or logistic regression */
    float base_margin;            /* the margin every prediction starts from (float32, as XGBoost) */
    uint32_t nfeatures;           /* length of feature vectors */
    char **names;                 /* nfeatures feature names, each malloc'd */

    uint32_t ntrees;      /* trees */
    uint32_t *root;       /* ntrees + 1: index of each tree's root; root[ntrees] = nnodes */
    uint8_t *depth;       /* ntrees: levels below each root (0: a lone leaf) */
    uint8_t *group_depth; /* one per RK_MODEL_GROUP trees: the deepest tree of the group */
    uint32_t nnodes;      /* nodes in all trees */
    uint32_t cap;         /* nodes allocated in nodes, mean and cover */
    rk_node *nodes;       /* nnodes, each tree's nodes contiguous, root first */
    float *mean;          /* nnodes: expected value of the node's subtree (a leaf's value) */
    float *cover;         /* nnodes: training cover (sum of hessians) reaching the node */
    uint32_t *splits;     /* nfeatures: splits on each feature (computed by finish) */
    bool finished;        /* rk_model_finish has run: child indices are absolute */

    float *weights; /* logistic regression: nfeatures weights */
    float bias;     /* logistic regression: the intercept */

    uint32_t nmeta;   /* meta entries */
    char **meta_key;  /* nmeta keys, each malloc'd */
    char **meta_val;  /* nmeta values, each malloc'd */
};

/* One step down a packed tree from node i: the node's feature value x[f] goes
 * left when `x[f] < threshold` in float32, exactly XGBoost's test; a missing
 * value (NaN) goes to the default side. From a leaf the step stays put. Used
 * by both the predictor and the explainer, so that they walk the same path. */
static inline uint32_t rk_model_step(const rk_node *nodes, const float *x, uint32_t i)
{
    const rk_node *nd = &nodes[i];
    float v = x[nd->feature & RK_NODE_FEATURE_MASK];
    /* Right when v >= threshold, or when v is NaN (the only case where the
     * two comparisons disagree) and the default is not left. Written as
     * arithmetic on two comparisons so that the compiler emits no branch: a
     * missing value is as common as 10% of inputs and would mispredict. */
    uint32_t ge = v >= nd->value, not_lt = !(v < nd->value);
    uint32_t right = ge | (not_lt & ~(nd->feature >> 31));
    return nd->child[right];
}

/* A zeroed model of the given objective. Returns NULL when out of memory. */
rk_model *rk_model_new(rk_model_objective objective);

/* Sets the feature count and allocates room for the names (all NULL). For
 * logistic regression also the weights (all 0). Returns 0, RK_ETOOBIG or
 * RK_ENOMEM. */
int rk_model_set_nfeatures(rk_model *m, uint32_t n);

/* Sets name i to a copy of the len bytes at s, after checking it (not empty,
 * at most RK_MODEL_MAX_NAME bytes, no control characters; duplicates are
 * found by rk_model_finish). Returns 0 or RK_EINVAL / RK_ENOMEM with diag set
 * to `file: feature I: ...`. */
int rk_model_set_name(rk_model *m, uint32_t i, const char *s, size_t len, const char *file,
                      rk_diag *diag);

/* Reserves the trees array for ntrees trees. Returns 0, RK_ETOOBIG or RK_ENOMEM. */
int rk_model_reserve_trees(rk_model *m, uint32_t ntrees);

/* Appends a tree of n nodes (zeroed, children RK_NODE_NONE) and returns the
 * index of its first node in *first. Trees must have been reserved. Returns 0,
 * RK_ETOOBIG (too many nodes) or RK_ENOMEM. */
int rk_model_add_tree(rk_model *m, uint32_t n, uint32_t *first);

/* Validates everything about a filled model and converts its trees to the
 * packed form: names all set and unique; for every node of every tree, children both
 * RK_NODE_NONE (a leaf) or both in range, feature index in range, finite
 * threshold, value and cover; every node but the root reached from exactly one
 * parent and from the root; depth at most RK_MODEL_MAX_DEPTH; a finite base
 * margin, weights and bias. Returns 0 or a negative code with diag set to
 * `file: tree T node N: ...`. */
int rk_model_finish(rk_model *m, const char *file, rk_diag *diag);

/* Sets diag to `file: <message>` (the message formatted from fmt and ap) and
 * returns code: the one formatter behind every loader's error paths. */
int rk_model_vfail(rk_diag *diag, const char *file, int code, const char *fmt, va_list ap);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t rk_model_crc32c(uint32_t crc, const void *p, size_t n);

/* The objective whose file name is the len bytes at s; -1 when none is. */
int rk_model_objective_find(const char *s, size_t len);

/* Reads a whole file into a malloc'd buffer with a NUL after the last byte.
 * Returns 0, RK_EIO or RK_ETOOBIG (more than max bytes) or RK_ENOMEM, with
 * diag set to `path: ...`. */
int rk_model_read_file(const char *path, size_t max, uint8_t **out, size_t *len, rk_diag *diag);

#endif
