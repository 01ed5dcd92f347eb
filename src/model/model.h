/* The scoring model (DESIGN.md section 5): a gradient-boosted tree ensemble
 * or a logistic regression that turns a vector of numeric features into a
 * fraud probability, `model.score` in rules.
 *
 * Models are stored as `.rmdl` files (compact, checksummed msgpack; layout in
 * docs/model.md and src/model/rmdl.c) and made from XGBoost's JSON models by
 * rk_model_import (`riskctl model import`). A loaded rk_model is immutable:
 * any number of threads may predict and explain with it at once. It carries no
 * reference count of its own; the rule set that binds its features owns it
 * and frees it with the snapshot.
 *
 * Features are float32, as in XGBoost: the caller converts its values (ints,
 * floats, booleans as 0/1) and passes NaN for a missing one. Prediction
 * reproduces XGBoost 1.7's arithmetic exactly (float32 comparisons `x <
 * threshold`, NaN to the node's default side, float32 sum of leaf values in
 * tree order starting from the base margin), so margins are bit-identical to
 * `Booster.predict(output_margin=True)`. Scoring never allocates. */
#ifndef RK_MODEL_H
#define RK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/diag.h"

typedef struct rk_model rk_model;

/* The kinds of model, with their name in .rmdl files and `riskctl model info`. */
#define RK_MODEL_OBJECTIVE_MAP(XX)                                       \
    XX(TREES, "binary:logistic", "gradient-boosted trees")              \
    XX(LINEAR, "logistic_regression", "logistic regression")

typedef enum rk_model_objective {
#define XX(name, key, text) RK_MODEL_##name,
    RK_MODEL_OBJECTIVE_MAP(XX)
#undef XX
} rk_model_objective;

/* Limits on what a model may hold; larger files are rejected before anything
 * is allocated for them. */
#define RK_MODEL_FILE_MAX (256u << 20)    /* bytes in an .rmdl file */
#define RK_MODEL_JSON_MAX (1024u << 20)   /* bytes in a JSON file to import */
#define RK_MODEL_MAX_FEATURES 65536u      /* features (inputs) */
#define RK_MODEL_MAX_NAME 255u            /* bytes in a feature name */
#define RK_MODEL_MAX_TREES 65536u         /* trees in an ensemble */
#define RK_MODEL_MAX_TREE_NODES (1u << 20) /* nodes in one tree */
#define RK_MODEL_MAX_NODES (1u << 24)     /* nodes in all trees together */
#define RK_MODEL_MAX_DEPTH 32             /* levels below a tree's root */
#define RK_MODEL_MAX_META 64u             /* entries in the `meta` map */
#define RK_MODEL_MAX_META_LEN 1024u       /* bytes in a meta key or value */

/* ---- Loading, importing, saving ------------------------------------------ */

/* Loads and validates the .rmdl file at path. Returns 0 and sets *out, or a
 * negative code with diag set to `path: message` (RK_EIO: unreadable;
 * RK_ETOOBIG: larger than a limit; RK_EPARSE: not an rmdl file, truncated,
 * malformed msgpack, wrong type or missing key; RK_EUNSUPPORTED: another
 * format version or objective; RK_ECORRUPT: checksum mismatch, or trees that
 * are not trees — out-of-range or repeated child links, cycles, unreachable
 * nodes, depth over RK_MODEL_MAX_DEPTH; RK_ERANGE: a feature index out of
 * range or a number that is not finite; RK_EEXISTS: a duplicate feature name
 * or key; RK_ENOMEM). Problems in a tree are reported as
 * `tree T node N: ...` with 0-based indices as in the file. */
int rk_model_load(const char *path, rk_model **out, rk_diag *diag);

/* rk_model_load on len bytes in memory; name stands for the path in diag. */
int rk_model_load_mem(const char *name, const uint8_t *buf, size_t len, rk_model **out,
                      rk_diag *diag);

/* Builds a model from a JSON file: a model saved by XGBoost 1.x
 * (`Booster.save_model("m.json")`: booster gbtree with objective
 * binary:logistic and numeric splits, or booster gblinear with
 * binary:logistic), or riskd's logistic regression
 * `{"objective": "logistic_regression", "features": [...], "weights": [...],
 * "bias": b}`. The result is validated exactly as rk_model_load validates a
 * file. Returns 0 and sets *out, or a negative code with diag set (as
 * rk_model_load, plus RK_EPARSE with `path: line L, column C: ...` for JSON
 * that does not parse and RK_EUNSUPPORTED for another objective, booster,
 * multi-class models or categorical splits). */
int rk_model_import(const char *path, rk_model **out, rk_diag *diag);

/* rk_model_import on JSON text in memory; name stands for the path in diag. */
int rk_model_import_mem(const char *name, const char *text, size_t len, rk_model **out,
                        rk_diag *diag);

/* Encodes m as .rmdl bytes into *out (malloc'd; the caller frees) and *len.
 * The encoding is canonical: loading it and encoding again gives the same
 * bytes. Returns 0 or RK_ENOMEM. */
int rk_model_encode(const rk_model *m, uint8_t **out, size_t *len);

/* Writes m to path as .rmdl, atomically (a temporary file in the same
 * directory renamed over path), so a riskd reloading the model never sees half
 * a file. Returns 0, or RK_EIO / RK_ENOMEM with diag set. */
int rk_model_save(const rk_model *m, const char *path, rk_diag *diag);

/* Frees m; NULL is fine. */
void rk_model_free(rk_model *m);

/* ---- What a model holds ---------------------------------------------------- */

typedef struct rk_model_info {
    rk_model_objective objective; /* trees or logistic regression */
    size_t nfeatures;             /* inputs, the length of the feature vector */
    size_t ntrees;                /* trees (0 for logistic regression) */
    size_t nnodes;                /* nodes in all trees, leaves included */
    size_t nleaves;               /* leaves in all trees */
    int max_depth;                /* levels below the root of the deepest tree */
    double base_margin;           /* margin before any tree or weight adds to it */
} rk_model_info;

void rk_model_get_info(const rk_model *m, rk_model_info *info);

/* The objective's name as in .rmdl files ("binary:logistic",
 * "logistic_regression") and as a person reads it ("gradient-boosted trees"). */
const char *rk_model_objective_name(rk_model_objective o);
const char *rk_model_objective_text(rk_model_objective o);

/* Number of features: the length of every feature vector passed in. */
size_t rk_model_nfeatures(const rk_model *m);
/* Name of feature i (i < nfeatures), valid while m lives. */
const char *rk_model_feature_name(const rk_model *m, size_t i);
/* Index of the feature called name, or -1. For binding features to rule
 * expressions: a miss can be reported with rk_suggest over the names. */
int rk_model_feature_find(const rk_model *m, const char *name);
/* How many splits test feature i (0 for logistic regression). */
size_t rk_model_feature_splits(const rk_model *m, size_t i);

/* Logistic regression: feature i's weight (0 for trees), and the intercept
 * (0 for trees; the base margin is apart, in rk_model_info). */
double rk_model_feature_weight(const rk_model *m, size_t i);
double rk_model_bias(const rk_model *m);

/* Free-form `meta` strings recorded in the file (the importer records
 * "source"; a training pipeline may add its own). i < rk_model_nmeta(m). */
size_t rk_model_nmeta(const rk_model *m);
void rk_model_meta(const rk_model *m, size_t i, const char **key, const char **value);

/* Adds or replaces a meta entry (before saving). Returns 0, RK_EINVAL (empty,
 * too long, or control characters), RK_ETOOBIG (RK_MODEL_MAX_META entries) or
 * RK_ENOMEM. The only mutation a model allows; not while it is shared. */
int rk_model_set_meta(rk_model *m, const char *key, const char *value);

/* ---- Scoring (no allocation, any number of threads) ----------------------- */

/* The fraud probability for feature vector x (rk_model_nfeatures(m) floats,
 * NaN = missing): sigmoid(margin). When margin is not NULL it receives the raw
 * margin (log-odds): base margin plus the float32 sum of the trees' leaves
 * (or of the weighted features), as XGBoost's output_margin. */
double rk_model_predict(const rk_model *m, const float *x, double *margin);

/* Explains the prediction for x: contrib[i] (i < nfeatures) is feature i's
 * contribution to the margin and contrib[nfeatures] the bias, the margin of a
 * vector the model knows nothing about. For trees these are Saabas path
 * attributions (XGBoost's pred_contribs with approx_contribs=True): walking
 * each tree's decision path, the change in the node's expected value at every
 * split goes to the split's feature, and the bias is the base margin plus the
 * expected value of every root. For logistic regression contrib[i] is
 * weight * x[i] (0 when missing). The contributions and the bias sum to
 * rk_model_predict's margin exactly up to double rounding (the bias also
 * carries the float32 rounding of the ensemble's sum, at most a few 1e-7).
 * contrib has room for nfeatures + 1 doubles. Returns the margin. */
double rk_model_explain(const rk_model *m, const float *x, double *contrib);

/* One entry of an explanation, for analysts: a feature and what it added. */
typedef struct rk_model_contrib {
    uint32_t feature; /* feature index; rk_model_feature_name gives its name */
    double value;     /* its contribution to the margin (log-odds) */
} rk_model_contrib;

/* The k largest contributions by absolute value (zeros left out, the bias
 * not included), largest first, ties by feature index, from contrib as filled
 * by rk_model_explain. Writes them to out[0..) and returns how many (<= k). */
size_t rk_model_top(const rk_model *m, const double *contrib, size_t k, rk_model_contrib *out);

/* 1 / (1 + exp(-margin)), the probability of a margin. */
double rk_model_sigmoid(double margin);

#endif
