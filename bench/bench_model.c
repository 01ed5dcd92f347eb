/* Model benchmark: nanoseconds per tree per row for riskd's predictor
 * against XGBoost's C API single-row prediction on the same model, the same
 * rows, in the same run (DESIGN.md section 8: budget 25 ns per tree per row
 * on a 100-tree depth-6 model).
 *
 *   bench_model [--model M.rmdl] [--json-model M.json] [--rows-f32 X.f32]
 *               [--rows N] [--reps R]
 *
 * The model: --json-model (imported; --model, if given too, is what riskd
 * scores with), else models/default.rmdl with models/default.json next to it,
 * else a 100-tree depth-6 model trained here by tests/model/train_xgb.py in a
 * temporary directory (run from the source tree). Rows: --rows-f32 (float32
 * row-major, as train_xgb.py writes X.f32), or the test rows the training
 * script wrote (about 10% missing), or else generated rows.
 *
 * XGBoost is loaded at run time (dlopen libxgboost.so, libxgboost-dev), so
 * this benchmark builds without it and skips the comparison with a message
 * when it is missing. Two single-row paths of XGBoost 1.7 are timed, both
 * with nthread=1 (threads only add overhead for one row):
 *   - XGBoosterPredictFromDense: in-place prediction from a dense array
 *     interface, with a proxy DMatrix created once; the row is copied into one
 *     fixed buffer so the array-interface and config JSON strings are built
 *     once, not per call. The fastest single-row API 1.7 offers.
 *   - XGDMatrixCreateFromMat + XGBoosterPredictFromDMatrix: a 1-row DMatrix
 *     per row, the classic way.
 * Each figure is the median of R repetitions over all rows. */
#include <dlfcn.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "lib/diag.h"
#include "model/model.h"

typedef uint64_t bst_ulong;
typedef void *handle;

/* The XGBoost C API functions used, resolved with dlsym. */
typedef struct xgb_api {
    void *lib;
    const char *(*last_error)(void);
    int (*booster_create)(const handle dmats[], bst_ulong len, handle *out);
    int (*booster_free)(handle h);
    int (*booster_load)(handle h, const char *fname);
    int (*booster_set_param)(handle h, const char *name, const char *value);
    int (*predict_dense)(handle h, const char *values, const char *config, handle proxy,
                         const bst_ulong **shape, bst_ulong *dim, const float **result);
    int (*predict_dmatrix)(handle h, handle dmat, const char *config, const bst_ulong **shape,
                           bst_ulong *dim, const float **result);
    int (*dmatrix_from_mat)(const float *data, bst_ulong nrow, bst_ulong ncol, float missing,
                            handle *out);
    int (*dmatrix_free)(handle h);
    int (*proxy_create)(handle *out);
} xgb_api;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool xgb_open(xgb_api *x)
{
    static const char *const names[] = {"libxgboost.so", "libxgboost.so.0"};
    for (size_t i = 0; i < 2 && !x->lib; i++)
        x->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!x->lib) {
        printf("xgboost: libxgboost.so not found (%s): comparison skipped (install "
               "libxgboost-dev)\n",
               dlerror());
        return false;
    }
#define SYM(field, name)                                                          \
    if (!(*(void **)&x->field = dlsym(x->lib, name))) {                           \
        printf("xgboost: %s missing from libxgboost.so: comparison skipped\n", name); \
        return false;                                                             \
    }
    SYM(last_error, "XGBGetLastError");
    SYM(booster_create, "XGBoosterCreate");
    SYM(booster_free, "XGBoosterFree");
    SYM(booster_load, "XGBoosterLoadModel");
    SYM(booster_set_param, "XGBoosterSetParam");
    SYM(predict_dense, "XGBoosterPredictFromDense");
    SYM(predict_dmatrix, "XGBoosterPredictFromDMatrix");
    SYM(dmatrix_from_mat, "XGDMatrixCreateFromMat");
    SYM(dmatrix_free, "XGDMatrixFree");
    SYM(proxy_create, "XGProxyDMatrixCreate");
#undef SYM
    return true;
}

/* The rows: nrows x nf floats. */
typedef struct rows {
    float *x;         /* row-major */
    size_t n;         /* rows */
    size_t nf;        /* features per row */
    const char *from; /* where they came from, for the report */
} rows;

static bool read_rows(const char *path, size_t nf, rows *r)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    r->n = (size_t)len / (nf * sizeof(float));
    r->nf = nf;
    r->x = malloc(r->n * nf * sizeof(float));
    bool ok = r->x && fread(r->x, sizeof(float), r->n * nf, f) == r->n * nf && r->n > 0;
    fclose(f);
    r->from = path;
    return ok;
}

/* Rows for a model that came without test rows: values spread log-uniformly
 * over 1e-3..1e3 (either sign), 10% missing. Deterministic (xorshift). The
 * public API does not expose thresholds; this spread is wide enough to send
 * rows down varied paths of any model trained on everyday magnitudes. */
static void synth_rows(size_t nf, size_t n, rows *r)
{
    r->n = n;
    r->nf = nf;
    r->x = malloc(n * nf * sizeof(float));
    r->from = "generated: log-uniform magnitudes, 10% missing";
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n * nf; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0;
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double v = (double)(s >> 11) / 9007199254740992.0;
        r->x[i] = u < 0.1 ? NAN : (float)(exp(v * 13.8 - 6.9) * (u < 0.8 ? 1 : -1));
    }
}

/* Trains a 100-tree depth-6 model with the test helper into dir. */
static bool train(char *dir)
{
    const char *script = "tests/model/train_xgb.py";
    if (!exists(script) || !exists("/usr/bin/python3")) {
        printf("no model given and %s not found (run from the source tree, or pass "
               "--json-model)\n",
               script);
        return false;
    }
    if (!mkdtemp(dir))
        return false;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s %s --trees 100 --depth 6 --rows 20000 --seed 5 "
             "--tree-method hist",
             script, dir);
    printf("training a 100-tree depth-6 model with python3-xgboost in %s ...\n", dir);
    fflush(stdout);
    return system(cmd) == 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* ---- timing ---------------------------------------------------------------- */

static double time_riskd(const rk_model *m, const rows *r, int reps, bool explain, double *best)
{
    double *per = malloc((size_t)reps * sizeof *per);
    double *contrib = malloc((r->nf + 1) * sizeof *contrib);
    volatile double sink = 0;
    for (int k = 0; k < reps; k++) {
        double acc = 0;
        int64_t t0 = now_ns();
        for (size_t i = 0; i < r->n; i++)
            acc += explain ? rk_model_explain(m, r->x + i * r->nf, contrib)
                           : rk_model_predict(m, r->x + i * r->nf, NULL);
        per[k] = (double)(now_ns() - t0) / (double)r->n;
        sink += acc;
    }
    (void)sink;
    double med = bench_median(per, (size_t)reps);
    *best = per[0]; /* sorted by bench_median */
    free(per);
    free(contrib);
    return med;
}

/* XGBoosterPredictFromDense on one fixed row buffer. Returns ns per row, or
 * -1 on an XGBoost error; checks the first rows against riskd's output. */
static double time_dense(const xgb_api *x, handle bst, const rk_model *m, const rows *r,
                         size_t n, int reps)
{
    handle proxy;
    if (x->proxy_create(&proxy) != 0) {
        printf("xgboost: XGProxyDMatrixCreate: %s\n", x->last_error());
        return -1;
    }
    float *buf = malloc(r->nf * sizeof *buf);
    char iface[256];
    snprintf(iface, sizeof iface,
             "{\"data\": [%llu, false], \"shape\": [1, %zu], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (unsigned long long)(uintptr_t)buf, r->nf);
    const char *config = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                         "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, "
                         "\"cache_id\": 0}";
    double *per = malloc((size_t)reps * sizeof *per);
    double worst = 0;
    volatile double sink = 0;
    double result = 0;
    for (int k = 0; k < reps && result >= 0; k++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            memcpy(buf, r->x + i * r->nf, r->nf * sizeof *buf);
            const bst_ulong *shape;
            bst_ulong dim;
            const float *out;
            if (x->predict_dense(bst, iface, config, proxy, &shape, &dim, &out) != 0) {
                printf("xgboost: XGBoosterPredictFromDense: %s\n", x->last_error());
                result = -1;
                break;
            }
            sink += out[0];
            if (k == 0)
                worst = fmax(worst, fabs(out[0] - rk_model_predict(m, r->x + i * r->nf, NULL)));
        }
        per[k] = (double)(now_ns() - t0) / (double)n;
    }
    (void)sink;
    if (result >= 0) {
        result = bench_median(per, (size_t)reps);
        printf("  check: max |xgboost - riskd| probability over %zu rows: %.3g\n", n, worst);
    }
    free(per);
    free(buf);
    x->dmatrix_free(proxy);
    return result;
}

/* A 1-row DMatrix per row, then XGBoosterPredictFromDMatrix. */
static double time_dmatrix(const xgb_api *x, handle bst, const rows *r, size_t n, int reps)
{
    const char *config = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                         "\"iteration_end\": 0, \"strict_shape\": false}";
    double *per = malloc((size_t)reps * sizeof *per);
    volatile double sink = 0;
    double result = 0;
    for (int k = 0; k < reps && result >= 0; k++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            handle d;
            const bst_ulong *shape;
            bst_ulong dim;
            const float *out;
            if (x->dmatrix_from_mat(r->x + i * r->nf, 1, r->nf, NAN, &d) != 0 ||
                x->predict_dmatrix(bst, d, config, &shape, &dim, &out) != 0) {
                printf("xgboost: 1-row DMatrix prediction: %s\n", x->last_error());
                result = -1;
                break;
            }
            sink += out[0];
            x->dmatrix_free(d);
        }
        per[k] = (double)(now_ns() - t0) / (double)n;
    }
    (void)sink;
    if (result >= 0)
        result = bench_median(per, (size_t)reps);
    free(per);
    return result;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_model [--model M.rmdl] [--json-model M.json] "
                    "[--rows-f32 X.f32] [--rows N] [--reps R]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *rmdl = NULL, *json = NULL, *rows_file = NULL;
    size_t max_rows = 20000;
    int reps = 11;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--model") == 0)
            rmdl = argv[++i];
        else if (strcmp(argv[i], "--json-model") == 0)
            json = argv[++i];
        else if (strcmp(argv[i], "--rows-f32") == 0)
            rows_file = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0)
            max_rows = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[++i]);
        else
            usage();
    }
    if (reps < 1 || max_rows < 1)
        usage();

    char tmp[] = "/tmp/rk-bench-model-XXXXXX", jbuf[96], xbuf[96];
    bool trained = false;
    if (!rmdl && !json) {
        if (exists("models/default.rmdl")) {
            rmdl = "models/default.rmdl";
            if (exists("models/default.json"))
                json = "models/default.json";
        } else if ((trained = train(tmp))) {
            snprintf(jbuf, sizeof jbuf, "%s/m.json", tmp);
            json = jbuf;
        } else {
            return 1;
        }
    }

    rk_diag diag;
    rk_model *m = NULL;
    int rc = rmdl ? rk_model_load(rmdl, &m, &diag) : rk_model_import(json, &m, &diag);
    if (rc < 0) {
        char line[1200];
        fprintf(stderr, "bench_model: %s\n", rk_diag_format(&diag, line, sizeof line));
        return 1;
    }
    rk_model_info info;
    rk_model_get_info(m, &info);
    size_t ntrees = info.ntrees ? info.ntrees : 1;

    rows r = {0};
    snprintf(xbuf, sizeof xbuf, "%s/X.f32", tmp);
    if (rows_file && !read_rows(rows_file, info.nfeatures, &r)) {
        fprintf(stderr, "bench_model: cannot read rows from %s\n", rows_file);
        return 1;
    }
    if (!rows_file && !(trained && read_rows(xbuf, info.nfeatures, &r)))
        synth_rows(info.nfeatures, max_rows, &r);
    if (r.n > max_rows)
        r.n = max_rows;

    printf("model: %s, %zu trees, max depth %d, %zu nodes, %zu features (%s)\n",
           rk_model_objective_name(info.objective), info.ntrees, info.max_depth, info.nnodes,
           info.nfeatures, rmdl ? rmdl : json);
    printf("rows:  %zu (%s); each figure the median of %d repetitions over all rows\n", r.n,
           r.from, reps);

    double best, ebest;
    double ours = time_riskd(m, &r, reps, false, &best);
    double expl = time_riskd(m, &r, reps, true, &ebest);
    printf("riskd   rk_model_predict:                    %8.1f ns/row  %6.2f ns/tree/row  "
           "(best rep %.2f; budget 25: %s)\n",
           ours, ours / (double)ntrees, best / (double)ntrees,
           ours / (double)ntrees <= 25 ? "ok" : "OVER");
    printf("riskd   rk_model_explain:                    %8.1f ns/row  %6.2f ns/tree/row  "
           "(best rep %.2f)\n",
           expl, expl / (double)ntrees, ebest / (double)ntrees);

    xgb_api x = {0};
    if (!json) {
        printf("xgboost: no JSON model to load (pass --json-model): comparison skipped\n");
    } else if (xgb_open(&x)) {
        handle bst;
        if (x.booster_create(NULL, 0, &bst) != 0 || x.booster_load(bst, json) != 0 ||
            x.booster_set_param(bst, "nthread", "1") != 0) {
            printf("xgboost: cannot load %s: %s\n", json, x.last_error());
        } else {
            size_t n = r.n < 5000 ? r.n : 5000; /* XGBoost is slower: fewer rows */
            int xreps = reps < 5 ? reps : 5;
            double dense = time_dense(&x, bst, m, &r, n, xreps);
            double dmat = time_dmatrix(&x, bst, &r, n < 2000 ? n : 2000, xreps);
            if (dense > 0)
                printf("xgboost XGBoosterPredictFromDense (1 row):   %8.1f ns/row  %6.2f "
                       "ns/tree/row\n",
                       dense, dense / (double)ntrees);
            if (dmat > 0)
                printf("xgboost 1-row DMatrix + PredictFromDMatrix:  %8.1f ns/row  %6.2f "
                       "ns/tree/row\n",
                       dmat, dmat / (double)ntrees);
            double fastest = dense > 0 && (dmat <= 0 || dense < dmat) ? dense : dmat;
            if (fastest > 0)
                printf("ratio: xgboost's fastest single-row path / riskd = %.1fx\n",
                       fastest / ours);
            x.booster_free(bst);
        }
    }
    if (x.lib)
        dlclose(x.lib);
    free(r.x);
    rk_model_free(m);
    if (trained)
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
