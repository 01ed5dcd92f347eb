/* Prediction parity with XGBoost: models trained here by Debian's
 * python3-xgboost (tests/model/train_xgb.py, fixed seeds, about 10% missing
 * values, extra rows sitting exactly on split thresholds) are imported, saved
 * as .rmdl, loaded back and asked for every test row; margins and
 * probabilities must match what XGBoost's own Booster.predict gives for the
 * same rows to 1e-6 (in practice the margins are bit-identical), and the
 * explanations must add up to the margin and match XGBoost's Saabas
 * contributions (pred_contribs with approx_contribs). Several training set-ups
 * cover hist, approx and exact trees (the last with pruned, deleted nodes), a
 * base_score other than 0.5, unnamed features and a gblinear model.
 *
 * Skips when /usr/bin/python3 or its xgboost module is missing. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "model/model.h"

static char tmpdir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rk-model-parity-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Reads a whole binary file of n elements of size sz (n from its size). */
static void *slurp(const char *dir, const char *name, size_t sz, size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len / sz;
    return buf;
}

/* Trains with train_xgb.py ARGS into a fresh directory named name; returns
 * false when the test must skip (no python3 or no xgboost). */
static bool train(const char *name, const char *args, char *dir, size_t size)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return false;
    snprintf(dir, size, "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/model/train_xgb.py %s %s",
             RK_SOURCE_DIR, dir, args);
    int st = system(cmd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
        return false;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s failed (status %d)", cmd, st);
    return true;
}

/* Imports DIR/m.json, saves it as .rmdl, loads that back and compares every
 * row against XGBoost's output. */
static void check_parity(const char *name, const char *args, bool trees, bool want_deleted)
{
    char dir[160], path[256];
    if (!train(name, args, dir, sizeof dir)) {
        print_message("python3 with xgboost not available: skipping\n");
        skip();
    }
    size_t rows, nf, deleted, n;
    snprintf(path, sizeof path, "%s/shape.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%zu %zu %zu", &rows, &nf, &deleted), 3);
    fclose(f);
    if (want_deleted)
        assert_true(deleted > 0); /* the set-up must exercise pruned nodes */

    rk_diag diag;
    rk_model *imported = NULL, *m = NULL;
    snprintf(path, sizeof path, "%s/m.json", dir);
    if (rk_model_import(path, &imported, &diag) != 0)
        fail_msg("import: %s: %s", diag.file, diag.msg);
    snprintf(path, sizeof path, "%s/m.rmdl", dir);
    assert_int_equal(rk_model_save(imported, path, &diag), 0);
    if (rk_model_load(path, &m, &diag) != 0)
        fail_msg("load: %s: %s", diag.file, diag.msg);
    assert_int_equal(rk_model_nfeatures(m), nf);
    rk_model_info info;
    rk_model_get_info(m, &info);
    assert_int_equal(info.objective, trees ? RK_MODEL_TREES : RK_MODEL_LINEAR);

    float *x = slurp(dir, "X.f32", sizeof(float), &n);
    assert_int_equal(n, rows * nf);
    double *margin = slurp(dir, "margin.f64", sizeof(double), &n);
    assert_int_equal(n, rows);
    double *prob = slurp(dir, "prob.f64", sizeof(double), &n);
    assert_int_equal(n, rows);
    double *xc = trees ? slurp(dir, "contrib.f64", sizeof(double), &n) : NULL;
    if (trees)
        assert_int_equal(n, rows * (nf + 1));

    double *c = malloc((nf + 1) * sizeof *c);
    double dm = 0, dp = 0, dc = 0, ds = 0;
    size_t exact = 0, nmissing = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * nf;
        for (size_t j = 0; j < nf; j++)
            nmissing += isnan(row[j]);
        double mg, p = rk_model_predict(m, row, &mg);
        double e = rk_model_explain(m, row, c);
        exact += mg == margin[r];
        dm = fmax(dm, fabs(mg - margin[r]));
        dp = fmax(dp, fabs(p - prob[r]));
        if (fabs(mg - margin[r]) > 1e-6 || fabs(p - prob[r]) > 1e-6)
            fail_msg("%s row %zu: margin %.9g (xgboost %.9g), probability %.9g (xgboost %.9g)",
                     name, r, mg, margin[r], p, prob[r]);
        assert_true(e == mg);
        double sum = 0;
        for (size_t j = 0; j <= nf; j++) {
            sum += c[j];
            if (xc) {
                dc = fmax(dc, fabs(c[j] - xc[r * (nf + 1) + j]));
                if (fabs(c[j] - xc[r * (nf + 1) + j]) > 1e-5)
                    fail_msg("%s row %zu: contribution %zu is %.9g, xgboost says %.9g", name, r,
                             j, c[j], xc[r * (nf + 1) + j]);
            }
        }
        ds = fmax(ds, fabs(sum - mg));
        if (fabs(sum - mg) > 1e-9)
            fail_msg("%s row %zu: contributions sum to %.12g, margin %.12g", name, r, sum, mg);
    }
    assert_true(nmissing > rows * nf / 20); /* missing values really were exercised */
    print_message("%-14s %5zu rows (%zu missing values), %zu trees, depth %d, %zu deleted "
                  "nodes dropped: max |margin diff| %.3g (%zu of %zu bit-identical), max |prob "
                  "diff| %.3g, max |contrib diff| %.3g, max |sum - margin| %.3g\n",
                  name, rows, nmissing, info.ntrees, info.max_depth, deleted, dm, exact, rows, dp,
                  dc, ds);
    free(c);
    free(x);
    free(margin);
    free(prob);
    free(xc);
    rk_model_free(m);
    rk_model_free(imported);
}

static void hist_30x4(void **state) { check_parity("hist_30x4", "", true, false); }

static void base_score_unnamed(void **state)
{
    check_parity("base_score", "--trees 20 --depth 3 --base-score 0.3 --no-names --seed 11",
                 true, false);
}

static void exact_pruned(void **state)
{
    check_parity("exact_pruned", "--tree-method exact --gamma 1.0 --depth 6 --trees 40", true,
                 true);
}

static void approx_100x6(void **state)
{
    check_parity("approx_100x6", "--tree-method approx --trees 100 --depth 6 --seed 3", true,
                 false);
}

static void gblinear(void **state)
{
    check_parity("gblinear", "--booster gblinear --trees 20 --base-score 0.2", false, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_30x4),    cmocka_unit_test(base_score_unnamed),
        cmocka_unit_test(exact_pruned), cmocka_unit_test(approx_100x6),
        cmocka_unit_test(gblinear),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
