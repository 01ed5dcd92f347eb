/* Tests of the model module without XGBoost: a hand-written XGBoost JSON model
 * (tests/model/tiny_xgb.json, whose predictions and Saabas contributions were
 * checked against XGBoost 1.7.4 once and are written here as numbers) and a
 * logistic regression (tests/model/linear.json); import errors with their
 * exact messages; the .rmdl round trip (canonical bytes); every truncation and
 * every single-bit flip of a file rejected; hostile files with a valid
 * checksum (cycles, shared and out-of-range children, stray nodes, NaN
 * thresholds, absurd counts, depth over the limit, wrong types and keys)
 * rejected with the message an operator would see; explanations and top-k.
 * The comparison with XGBoost on trained models is test_model_parity.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "lib/err.h"
#include "model/model.h"
#include "model/model_int.h"

static rk_diag diag;

/* The diagnostic as riskctl prints it. */
static const char *diag_text(void)
{
    static char buf[1200];
    return rk_diag_format(&diag, buf, sizeof buf);
}

static void diag_is(const char *want)
{
    if (strcmp(diag_text(), want) != 0)
        fail_msg("diagnostic\n  got:  %s\n  want: %s", diag_text(), want);
}

static void diag_has(const char *want)
{
    if (!strstr(diag_text(), want))
        fail_msg("diagnostic\n  got:  %s\n  want it to contain: %s", diag_text(), want);
}

static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/model/%s", RK_SOURCE_DIR, name);
    uint8_t *buf;
    assert_int_equal(rk_model_read_file(path, 1 << 20, &buf, len, &diag), 0);
    return (char *)buf;
}

static rk_model *import_fixture(const char *name)
{
    size_t len;
    char *text = read_fixture(name, &len);
    rk_model *m = NULL;
    if (rk_model_import_mem(name, text, len, &m, &diag) != 0)
        fail_msg("%s", diag_text());
    free(text);
    return m;
}

/* Imports tiny_xgb.json with the one occurrence of from replaced by to, as
 * "v.json"; returns the code (the model, if any, is freed). */
static int import_variant(const char *fixture, const char *from, const char *to)
{
    size_t len;
    char *text = read_fixture(fixture, &len);
    char *at = strstr(text, from);
    if (!at || strstr(at + 1, from))
        fail_msg("'%s' is not in %s exactly once", from, fixture);
    size_t nf = strlen(from), nt = strlen(to);
    char *v = malloc(len - nf + nt + 1);
    size_t pre = (size_t)(at - text);
    memcpy(v, text, pre);
    memcpy(v + pre, to, nt);
    memcpy(v + pre + nt, at + nf, len - pre - nf + 1);
    rk_model *m = NULL;
    rk_diag_clear(&diag);
    int rc = rk_model_import_mem("v.json", v, len - nf + nt, &m, &diag);
    rk_model_free(m);
    free(v);
    free(text);
    return rc;
}

static double margin_of(const rk_model *m, float a, float b)
{
    float x[2] = {a, b};
    double mg;
    rk_model_predict(m, x, &mg);
    return mg;
}

/* ---- importing and scoring --------------------------------------------------- */

static void tiny_predicts(void **state)
{
    rk_model *m = import_fixture("tiny_xgb.json");
    rk_model_info info;
    rk_model_get_info(m, &info);
    assert_int_equal(info.objective, RK_MODEL_TREES);
    assert_int_equal(info.nfeatures, 2);
    assert_int_equal(info.ntrees, 3);
    assert_int_equal(info.nnodes, 9); /* 5 + 1 + 3: tree 2's two deleted nodes dropped */
    assert_int_equal(info.nleaves, 6);
    assert_int_equal(info.max_depth, 2);
    assert_true(info.base_margin == 0.0); /* base_score 0.5 */
    assert_string_equal(rk_model_feature_name(m, 0), "amount");
    assert_string_equal(rk_model_feature_name(m, 1), "count");
    assert_null(rk_model_feature_name(m, 2));
    assert_int_equal(rk_model_feature_find(m, "count"), 1);
    assert_int_equal(rk_model_feature_find(m, "nope"), -1);
    assert_int_equal(rk_model_feature_splits(m, 0), 1);
    assert_int_equal(rk_model_feature_splits(m, 1), 2);

    /* XGBoost 1.7.4 says 0.15, 0.85, 0.65, 0.15 for these. */
    assert_float_equal(margin_of(m, 50, 2), 0.15, 1e-7);
    assert_float_equal(margin_of(m, 100, 3), 0.85, 1e-7);   /* x == threshold goes right */
    assert_float_equal(margin_of(m, NAN, NAN), 0.65, 1e-7); /* default left, then right */
    assert_float_equal(margin_of(m, 99.99f, 1.5f), 0.15, 1e-7);
    assert_float_equal(margin_of(m, nextafterf(100, 0), NAN), 0.15 + 0.5, 1e-7);
    float x[2] = {50, 2};
    double mg, p = rk_model_predict(m, x, &mg);
    assert_float_equal(p, 1 / (1 + exp(-mg)), 1e-15);
    assert_float_equal(rk_model_predict(m, x, NULL), p, 0);

    const char *k, *v;
    assert_int_equal(rk_model_nmeta(m), 1);
    rk_model_meta(m, 0, &k, &v);
    assert_string_equal(k, "source");
    assert_string_equal(v, "xgboost 1.7.4");
    rk_model_free(m);
}

static void tiny_explains(void **state)
{
    rk_model *m = import_fixture("tiny_xgb.json");
    /* XGBoost 1.7.4's pred_contribs(approx_contribs=True) for each row. */
    static const struct {
        float x[2];
        double c[3];
    } rows[] = {
        {{50, 2}, {-0.14666669, 0.05666667, 0.24000001}},
        {{100, 3}, {0.21999997, 0.39000002, 0.24000001}},
        {{NAN, NAN}, {-0.14666669, 0.5566667, 0.24000001}},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        double c[3], mg;
        rk_model_predict(m, rows[r].x, &mg);
        assert_true(rk_model_explain(m, rows[r].x, c) == mg);
        for (int j = 0; j < 3; j++)
            assert_float_equal(c[j], rows[r].c[j], 1e-6);
        assert_float_equal(c[0] + c[1] + c[2], mg, 1e-12);
    }

    double c[3];
    rk_model_contrib top[4];
    rk_model_explain(m, rows[0].x, c);
    assert_int_equal(rk_model_top(m, c, 4, top), 2);
    assert_int_equal(top[0].feature, 0);
    assert_float_equal(top[0].value, -0.14666669, 1e-6);
    assert_int_equal(top[1].feature, 1);
    assert_int_equal(rk_model_top(m, c, 1, top), 1);
    assert_int_equal(top[0].feature, 0);
    assert_int_equal(rk_model_top(m, c, 0, top), 0);
    rk_model_free(m);
}

static void top_orders_by_magnitude(void **state)
{
    rk_model *m = import_fixture("linear.json");
    double c[4] = {0.5, -2.0, 0.5, 9.0}; /* the bias (last) is never listed */
    rk_model_contrib top[3];
    assert_int_equal(rk_model_top(m, c, 3, top), 3);
    assert_int_equal(top[0].feature, 1);
    assert_int_equal(top[1].feature, 0); /* ties by index */
    assert_int_equal(top[2].feature, 2);
    assert_int_equal(rk_model_top(m, c, 2, top), 2);
    assert_int_equal(top[1].feature, 0);
    double z[4] = {0, 0, 0, 1};
    assert_int_equal(rk_model_top(m, z, 3, top), 0);
    rk_model_free(m);
}

static void linear_predicts(void **state)
{
    rk_model *m = import_fixture("linear.json");
    rk_model_info info;
    rk_model_get_info(m, &info);
    assert_int_equal(info.objective, RK_MODEL_LINEAR);
    assert_int_equal(info.nfeatures, 3);
    assert_int_equal(info.ntrees, 0);
    assert_string_equal(rk_model_objective_name(info.objective), "logistic_regression");
    float x[3] = {1000, 2, 1};
    double mg, c[4];
    double p = rk_model_predict(m, x, &mg);
    assert_float_equal(mg, -3 + 2 + 1 + 1.25, 1e-6);
    assert_float_equal(p, 1 / (1 + exp(-1.25)), 1e-6);
    assert_true(rk_model_explain(m, x, c) == mg);
    assert_float_equal(c[0], 2, 1e-6);
    assert_float_equal(c[1], 1, 1e-6);
    assert_float_equal(c[2], 1.25, 1e-6);
    assert_float_equal(c[3], -3, 1e-6);
    assert_float_equal(c[0] + c[1] + c[2] + c[3], mg, 1e-12);
    float missing[3] = {NAN, 2, NAN}; /* missing features add nothing */
    rk_model_predict(m, missing, &mg);
    assert_float_equal(mg, -2, 1e-6);
    rk_model_explain(m, missing, c);
    assert_true(c[0] == 0 && c[2] == 0);
    rk_model_free(m);
}

/* ---- import errors --------------------------------------------------------------- */

#define TREES "learner.gradient_booster.model.trees"

static void import_errors(void **state)
{
    assert_int_equal(import_variant("tiny_xgb.json", "\"split_type\": [0, 0, 0, 0, 0],\n"
                                    "            \"sum_hessian\": [10.0",
                                    "\"split_type\": [0, 1, 0, 0, 0],\n"
                                    "            \"sum_hessian\": [10.0"),
                     RK_EUNSUPPORTED);
    diag_is("v.json: " TREES "[0] node 1: a categorical split (on feature 'count'); only numeric "
            "splits are supported");
    assert_int_equal(import_variant("tiny_xgb.json", "\"num_class\": \"0\"", "\"num_class\": \"3\""),
                     RK_EUNSUPPORTED);
    diag_is("v.json: learner.learner_model_param: multi-class and multi-target models are not "
            "supported (num_class 3, num_target 1)");
    assert_int_equal(import_variant("tiny_xgb.json", "\"binary:logistic\"", "\"reg:squarederror\""),
                     RK_EUNSUPPORTED);
    diag_is("v.json: learner.objective.name: 'reg:squarederror' is not supported (train with "
            "objective binary:logistic)");
    assert_int_equal(import_variant("tiny_xgb.json", "\"name\": \"gbtree\"", "\"name\": \"dart\""),
                     RK_EUNSUPPORTED);
    diag_is("v.json: learner.gradient_booster.name: booster 'dart' is not supported (gbtree or "
            "gblinear)");
    assert_int_equal(import_variant("tiny_xgb.json", "[1, 3, -1, -1, -1]", "[1, 9, -1, -1, -1]"),
                     RK_ECORRUPT);
    diag_is("v.json: " TREES "[0] node 1: left child 9 out of range (tree has 5 nodes)");
    assert_int_equal(import_variant("tiny_xgb.json", "[1, 3, -1, -1, -1]", "[1, 0, -1, -1, -1]"),
                     RK_ECORRUPT);
    diag_is("v.json: " TREES "[0] node 1: left child 0 is reached twice (a cycle?)");
    assert_int_equal(import_variant("tiny_xgb.json", "[0, 1, 0, 0, 0]", "[0, 5, 0, 0, 0]"),
                     RK_ERANGE);
    diag_is("v.json: " TREES "[0] node 1: split feature 5 out of range (model has 2 features)");
    assert_int_equal(import_variant("tiny_xgb.json", "\"5E-1\"", "\"1.5\""), RK_ERANGE);
    diag_is("v.json: learner.learner_model_param.base_score: 1.5 is not a probability in (0, 1)");
    assert_int_equal(import_variant("tiny_xgb.json", "[\"amount\", \"count\"]", "[\"amount\"]"),
                     RK_EPARSE);
    diag_is("v.json: learner.feature_names: 1 names for 2 features");
    assert_int_equal(import_variant("tiny_xgb.json", "[\"amount\", \"count\"]",
                                    "[\"amount\", \"amount\"]"),
                     RK_EEXISTS);
    diag_is("v.json: feature 1: name 'amount' is also feature 0");
    assert_int_equal(import_variant("tiny_xgb.json", "[\"float\", \"int\"]", "[\"float\", \"c\"]"),
                     RK_EUNSUPPORTED);
    diag_is("v.json: learner.feature_types[1]: feature 'count' is categorical; only numeric "
            "features are supported");
    assert_int_equal(import_variant("tiny_xgb.json", "\"sum_hessian\": [10.0, 6.0, 4.0, 2.0, 4.0],",
                                    ""),
                     RK_EPARSE);
    diag_is("v.json: " TREES "[0].sum_hessian: missing");
    assert_int_equal(import_variant("tiny_xgb.json", "[100.0, 3.0, 0.5, -0.2, 0.3]",
                                    "[100.0, 3.0, 0.5, \"x\", 0.3]"),
                     RK_EPARSE);
    diag_is("v.json: " TREES "[0].split_conditions[3]: expected a number, not str");
    assert_int_equal(import_variant("tiny_xgb.json", "[100.0, 3.0, 0.5, -0.2, 0.3]",
                                    "[100.0, 3.0, 0.5, -0.2, 1e300]"),
                     RK_ERANGE);
    diag_is("v.json: " TREES "[0].split_conditions[4]: 1e+300 is not a finite float32");
    assert_int_equal(import_variant("tiny_xgb.json", "\"num_nodes\": \"5\", \"size_leaf_vector\": "
                                    "\"0\"}\n          },\n          {",
                                    "\"num_nodes\": \"6\", \"size_leaf_vector\": \"0\"}\n"
                                    "          },\n          {"),
                     RK_EPARSE);
    diag_is("v.json: " TREES "[0].left_children: has 5 entries, expected 6");
    assert_int_equal(import_variant("tiny_xgb.json", "\"learner\": {", "\"learner\": {,"),
                     RK_EPARSE);
    diag_has("v.json: line 2, column 15: ");
    assert_int_equal(import_variant("tiny_xgb.json", "\"learner\"", "\"learnr\""), RK_EPARSE);
    diag_is("v.json: neither an XGBoost model (no 'learner') nor a logistic regression (no "
            "'objective')");

    assert_int_equal(import_variant("linear.json", "\"weights\"", "\"weigths\""), RK_EPARSE);
    diag_is("v.json: unknown key 'weigths' (did you mean 'weights'?)");
    assert_int_equal(import_variant("linear.json", "[0.002, 0.5, 1.25]", "[0.002, 0.5]"),
                     RK_EPARSE);
    diag_is("v.json: weights: has 2 entries, expected 3");
    assert_int_equal(import_variant("linear.json", "-3.0", "\"-3\""), RK_EPARSE);
    diag_is("v.json: bias: expected a number, not str");
    assert_int_equal(import_variant("linear.json", "\"logistic_regression\"", "\"svm\""),
                     RK_EUNSUPPORTED);
    diag_is("v.json: objective 'svm' is not supported (logistic_regression; XGBoost models have "
            "a 'learner')");
    assert_int_equal(import_variant("linear.json", "\"is_new_device\"", "\"bad\\nname\""),
                     RK_EINVAL);
    diag_is("v.json: feature 2: a name must be 1 to 255 bytes without control characters");

    rk_model *m = NULL;
    assert_int_equal(rk_model_import("/nonexistent/m.json", &m, &diag), RK_EIO);
    diag_is("/nonexistent/m.json: cannot open: No such file or directory");
    assert_null(m);
}

/* ---- the .rmdl round trip ------------------------------------------------------- */

static void encode_is_canonical(const char *fixture)
{
    rk_model *m = import_fixture(fixture), *back = NULL;
    assert_int_equal(rk_model_set_meta(m, "auc", "0.91"), 0);
    assert_int_equal(rk_model_set_meta(m, "auc", "0.92"), 0); /* replaces */
    uint8_t *a, *b;
    size_t alen, blen;
    assert_int_equal(rk_model_encode(m, &a, &alen), 0);
    if (rk_model_load_mem("a.rmdl", a, alen, &back, &diag) != 0)
        fail_msg("%s", diag_text());
    assert_int_equal(rk_model_encode(back, &b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    assert_int_equal(rk_model_nmeta(back), 2);
    const char *k, *v;
    rk_model_meta(back, 1, &k, &v);
    assert_string_equal(k, "auc");
    assert_string_equal(v, "0.92");
    float x[3] = {50, NAN, 1};
    double m1, m2;
    rk_model_predict(m, x, &m1);
    rk_model_predict(back, x, &m2);
    assert_true(m1 == m2);
    free(a);
    free(b);
    rk_model_free(m);
    rk_model_free(back);
}

static void round_trip(void **state)
{
    encode_is_canonical("tiny_xgb.json");
    encode_is_canonical("linear.json");

    rk_model *m = import_fixture("linear.json");
    assert_int_equal(rk_model_set_meta(m, "", "x"), RK_EINVAL);
    assert_int_equal(rk_model_set_meta(m, "k", "a\tb"), RK_EINVAL);
    char path[] = "/tmp/rk-model-test-XXXXXX";
    assert_non_null(mkdtemp(path));
    char file[64];
    snprintf(file, sizeof file, "%s/m.rmdl", path);
    assert_int_equal(rk_model_save(m, file, &diag), 0);
    rk_model *back = NULL;
    assert_int_equal(rk_model_load(file, &back, &diag), 0);
    rk_model_free(back);
    assert_int_equal(rk_model_load(path, &back, &diag), RK_EIO);
    diag_has(": not a regular file");
    unlink(file);
    rmdir(path);
    assert_int_equal(rk_model_save(m, "/nonexistent/m.rmdl", &diag), RK_EIO);
    diag_is("/nonexistent/m.rmdl: cannot create a temporary file next to it: No such file or "
            "directory");
    assert_int_equal(rk_model_load("/nonexistent/m.rmdl", &back, &diag), RK_EIO);
    rk_model_free(m);
}

/* Every prefix of a valid file, and every file with one bit flipped, is
 * refused with a message; none crashes. */
static void damaged_files(void **state)
{
    const char *fixtures[] = {"tiny_xgb.json", "linear.json"};
    for (size_t f = 0; f < 2; f++) {
        rk_model *m = import_fixture(fixtures[f]), *bad = NULL;
        uint8_t *buf;
        size_t len;
        assert_int_equal(rk_model_encode(m, &buf, &len), 0);
        for (size_t n = 0; n < len; n++) {
            uint8_t *copy = malloc(n + 1); /* exactly n bytes readable, for ASan */
            memcpy(copy, buf, n);
            rk_diag_clear(&diag);
            int rc = rk_model_load_mem("t.rmdl", copy, n, &bad, &diag);
            if (rc >= 0)
                fail_msg("%s: prefix of %zu of %zu bytes loaded", fixtures[f], n, len);
            assert_true(diag.msg[0] != '\0');
            if (n >= 24)
                diag_is("t.rmdl: truncated or corrupt: the file does not end with its crc32c "
                        "checksum");
            free(copy);
        }
        size_t nchecksum = 0;
        for (size_t bit = 0; bit < len * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
            rk_diag_clear(&diag);
            if (rk_model_load_mem("t.rmdl", buf, len, &bad, &diag) >= 0)
                fail_msg("%s: flipping bit %zu went unnoticed", fixtures[f], bit);
            assert_true(diag.msg[0] != '\0');
            nchecksum += strstr(diag.msg, "checksum mismatch") != NULL;
            buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
        }
        assert_true(nchecksum > len * 8 / 2); /* the rest: header and trailer */
        assert_int_equal(rk_model_load_mem("t.rmdl", buf, len, &bad, &diag), 0);
        rk_model_free(bad);
        free(buf);
        rk_model_free(m);
    }
    rk_model *bad = NULL;
    assert_int_equal(rk_model_load_mem("t.rmdl", (const uint8_t *)"{}", 2, &bad, &diag),
                     RK_EPARSE);
    diag_is("t.rmdl: not an rmdl model file (it does not start with format \"rmdl\")");
}

/* ---- hostile files with a valid checksum ------------------------------------ */

#define MAXN 80

/* A model to write as .rmdl, node by node, however wrong. */
typedef struct spec {
    int version;                     /* the format version written */
    uint32_t nfeatures;              /* names a, b, c... (or dup: all "a") */
    bool dup_names;                  /* every feature named "a" */
    uint32_t n;                      /* nodes in the one tree */
    int64_t left[MAXN], right[MAXN]; /* -1: none */
    uint32_t feature[MAXN];          /* split features */
    double thr[MAXN];                /* thresholds */
    bool thr_f64;                    /* write thresholds as float64 */
    double value[MAXN];              /* values */
    double cover[MAXN];              /* covers */
    const char *extra_key;           /* an extra top-level key (value nil), or NULL */
    bool no_features;                /* leave 'features' out */
} spec;

/* A valid 5-node tree: 0 -> (1, 2), 1 -> (3, 4). */
static spec base_spec(void)
{
    spec s = {.version = 1, .nfeatures = 2, .n = 5};
    int64_t l[5] = {1, 3, -1, -1, -1}, r[5] = {2, 4, -1, -1, -1};
    for (uint32_t i = 0; i < MAXN; i++) {
        s.left[i] = i < 5 ? l[i] : -1;
        s.right[i] = i < 5 ? r[i] : -1;
        s.thr[i] = 10;
        s.value[i] = 0.25;
        s.cover[i] = 1;
    }
    s.feature[1] = 1;
    return s;
}

static void pack_s(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Appends the trailer: "crc32c" and the CRC of everything before its 4 bytes. */
static void seal(msgpack_sbuffer *sb)
{
    msgpack_sbuffer_write(sb, "\xa6" "crc32c" "\xce", 8);
    uint32_t crc = rk_model_crc32c(0, sb->data, sb->size);
    char be[4] = {(char)(crc >> 24), (char)(crc >> 16), (char)(crc >> 8), (char)crc};
    msgpack_sbuffer_write(sb, be, 4);
}

static int load_spec(const spec *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7 - s->no_features + (s->extra_key != NULL));
    pack_s(&pk, "format");
    pack_s(&pk, "rmdl");
    pack_s(&pk, "version");
    msgpack_pack_int(&pk, s->version);
    pack_s(&pk, "objective");
    pack_s(&pk, "binary:logistic");
    pack_s(&pk, "base_margin");
    msgpack_pack_float(&pk, 0);
    if (!s->no_features) {
        pack_s(&pk, "features");
        msgpack_pack_array(&pk, s->nfeatures);
        for (uint32_t i = 0; i < s->nfeatures; i++) {
            char name[8] = {(char)(s->dup_names ? 'a' : 'a' + i % 26), 0};
            pack_s(&pk, name);
        }
    }
    if (s->extra_key) {
        pack_s(&pk, s->extra_key);
        msgpack_pack_nil(&pk);
    }
    pack_s(&pk, "trees");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 7);
    pack_s(&pk, "feature");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_uint32(&pk, s->feature[i]);
    pack_s(&pk, "threshold");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        if (s->thr_f64)
            msgpack_pack_double(&pk, s->thr[i]);
        else
            msgpack_pack_float(&pk, (float)s->thr[i]);
    pack_s(&pk, "left");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_int64(&pk, s->left[i]);
    pack_s(&pk, "right");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_int64(&pk, s->right[i]);
    pack_s(&pk, "default_left");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_false(&pk);
    pack_s(&pk, "value");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_float(&pk, (float)s->value[i]);
    pack_s(&pk, "cover");
    msgpack_pack_array(&pk, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        msgpack_pack_float(&pk, (float)s->cover[i]);
    seal(&sb);
    rk_model *m = NULL;
    rk_diag_clear(&diag);
    int rc = rk_model_load_mem("m.rmdl", (const uint8_t *)sb.data, sb.size, &m, &diag);
    if (rc == 0) {
        float x[3] = {5, NAN, 20};
        double c[4];
        rk_model_predict(m, x, NULL);
        rk_model_explain(m, x, c);
    }
    rk_model_free(m);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void hostile_trees(void **state)
{
    spec s = base_spec();
    assert_int_equal(load_spec(&s), 0);

    s = base_spec();
    s.left[0] = 999;
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 0: left child 999 out of range (tree has 5 nodes)");

    s = base_spec();
    s.right[1] = 0;
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 1: right child is node 0, the root (a cycle)");

    s = base_spec();
    s.right[1] = 2; /* node 2 would have two parents */
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 1: right child 2 is already a child of node 0 (a node has one "
            "parent)");

    s = base_spec(); /* 0 -> (1, 2) and a loop 3 <-> 4 that the root never reaches */
    s.left[1] = s.right[1] = -1;
    s.n = 7;
    s.left[3] = 4, s.right[3] = 5;
    s.left[4] = 3, s.right[4] = 6;
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 3: not reachable from the root (a cycle or a stray node)");

    s = base_spec();
    s.right[1] = -1;
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 1: has a left child but no right child (a node has two "
            "children or none)");

    s = base_spec();
    s.left[2] = -7;
    assert_int_equal(load_spec(&s), RK_ECORRUPT);
    diag_is("m.rmdl: tree 0 node 2 'left': -7 is not a node index (-1 for none)");

    s = base_spec();
    s.thr[1] = NAN;
    assert_int_equal(load_spec(&s), RK_ERANGE);
    diag_is("m.rmdl: tree 0 node 1: threshold is not a finite number");

    s = base_spec();
    s.thr_f64 = true;
    s.thr[0] = 0.1;
    assert_int_equal(load_spec(&s), RK_ERANGE);
    diag_is("m.rmdl: tree 0 node 0 'threshold': 0.10000000000000001 is not a float32 value");

    s = base_spec();
    s.value[3] = INFINITY;
    assert_int_equal(load_spec(&s), RK_ERANGE);
    diag_is("m.rmdl: tree 0 node 3: value is not a finite number");

    s = base_spec();
    s.cover[4] = -1;
    assert_int_equal(load_spec(&s), RK_ERANGE);
    diag_is("m.rmdl: tree 0 node 4: cover is not a finite number >= 0");

    s = base_spec();
    s.feature[1] = 7;
    assert_int_equal(load_spec(&s), RK_ERANGE);
    diag_is("m.rmdl: tree 0 node 1: split feature 7 out of range (model has 2 features)");

    /* A chain: node 2k splits into leaf 2k+1 and node 2k+2. */
    for (uint32_t depth = 32; depth <= 33; depth++) {
        s = base_spec();
        s.n = 2 * depth + 1;
        for (uint32_t i = 0; i < s.n; i++)
            s.left[i] = s.right[i] = -1;
        for (uint32_t k = 0; k < depth; k++) {
            s.left[2 * k] = 2 * k + 1;
            s.right[2 * k] = 2 * k + 2;
        }
        assert_int_equal(load_spec(&s), depth == 32 ? 0 : RK_ECORRUPT);
    }
    diag_is("m.rmdl: tree 0 node 65: deeper than 32 levels below the root");

    s = base_spec();
    s.dup_names = true;
    assert_int_equal(load_spec(&s), RK_EEXISTS);
    diag_is("m.rmdl: feature 1: name 'a' is also feature 0");

    s = base_spec();
    s.version = 2;
    assert_int_equal(load_spec(&s), RK_EUNSUPPORTED);
    diag_is("m.rmdl: rmdl version 2 is not supported (this riskd reads version 1)");

    s = base_spec();
    s.extra_key = "treez";
    assert_int_equal(load_spec(&s), RK_EPARSE);
    diag_has("m.rmdl: byte ");
    diag_has(": unknown key 'treez' in the model (did you mean 'trees'?)");

    s = base_spec();
    s.extra_key = "weights";
    assert_int_equal(load_spec(&s), RK_EPARSE);
    diag_is("m.rmdl: 'weights' does not belong in a binary:logistic model");

    s = base_spec();
    s.no_features = true;
    assert_int_equal(load_spec(&s), RK_EPARSE);
    diag_is("m.rmdl: no 'features'");

    s = base_spec();
    s.nfeatures = 0;
    assert_int_equal(load_spec(&s), RK_EPARSE);
    diag_is("m.rmdl: model has no features");
}

/* Raw bytes after the fixed header, sealed, loaded. */
static int load_raw(const char *body, size_t n, uint32_t entries)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, entries);
    pack_s(&pk, "format");
    pack_s(&pk, "rmdl");
    pack_s(&pk, "version");
    msgpack_pack_int(&pk, 1);
    pack_s(&pk, "objective");
    pack_s(&pk, "binary:logistic");
    pack_s(&pk, "base_margin");
    msgpack_pack_float(&pk, 0);
    msgpack_sbuffer_write(&sb, body, n);
    seal(&sb);
    rk_model *m = NULL;
    rk_diag_clear(&diag);
    int rc = rk_model_load_mem("m.rmdl", (const uint8_t *)sb.data, sb.size, &m, &diag);
    rk_model_free(m);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void absurd_counts(void **state)
{
    /* features: array32 of 4294967295 names */
    static const char huge_features[] = "\xa8" "features" "\xdd\xff\xff\xff\xff";
    assert_int_equal(load_raw(huge_features, sizeof huge_features - 1, 6), RK_EPARSE);
    diag_is("m.rmdl: byte 65: the value of 'features' is cut short or not valid msgpack");

    /* one feature, then trees: array32 of 4294967295 trees */
    static const char huge_trees[] = "\xa8" "features" "\x91\xa1" "a"
                                     "\xa5" "trees" "\xdd\xff\xff\xff\xff";
    assert_int_equal(load_raw(huge_trees, sizeof huge_trees - 1, 7), RK_EPARSE);
    diag_has("the value of 'trees' is cut short or not valid msgpack");

    /* 65537 empty feature names: fits in the file, over the limit */
    size_t n = 9 + 5 + 65537 + 7;
    char *many = malloc(n);
    memcpy(many, "\xa8" "features" "\xdd\x00\x01\x00\x01", 14);
    memset(many + 14, 0xa0, 65537);
    memcpy(many + 14 + 65537, "\xa5" "trees" "\x90", 7);
    assert_int_equal(load_raw(many, n, 7), RK_ETOOBIG);
    diag_is("m.rmdl: 65537 features is too many (the limit is 65536)");
    free(many);

    /* a tree whose 'left' claims more nodes than a tree may have */
    size_t big = RK_MODEL_MAX_TREE_NODES + 1;
    char head[] = "\xa8" "features" "\x91\xa1" "a" "\xa5" "trees" "\x91\x81\xa4" "left"
                  "\xdd\x00\x10\x00\x01";
    size_t hn = sizeof head - 1;
    char *tree = malloc(hn + big);
    memcpy(tree, head, hn);
    memset(tree + hn, 0xff, big); /* -1 each */
    assert_int_equal(load_raw(tree, hn + big, 7), RK_EPARSE);
    diag_is("m.rmdl: tree 0: no 'feature'");
    free(tree);

    static const char nested[] = "\xa8" "features" "\x91\xa1" "a" "\xa5" "trees"
                                 "\x91\x91\x91\x91\x91\x90";
    assert_int_equal(load_raw(nested, sizeof nested - 1, 7), RK_EPARSE);
    diag_has("the value of 'trees' is nested too deeply");

    static const char wrong[] = "\xa8" "features" "\xa1" "a" "\xa5" "trees" "\x90";
    assert_int_equal(load_raw(wrong, sizeof wrong - 1, 7), RK_EPARSE);
    diag_has(": 'features' must be an array, not str");
}

/* 60000 distinct names load quickly (duplicates are found by sorting, not
 * by comparing every pair); one repeated name among them is reported against
 * its first use. An empty forest is refused. */
static void many_names(void **state)
{
    for (int dup = 0; dup < 2; dup++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_s(&pk, "features");
        msgpack_pack_array(&pk, 60000);
        for (int i = 0; i < 60000; i++) {
            char name[16];
            snprintf(name, sizeof name, "f%d", dup && i == 59999 ? 777 : i);
            pack_s(&pk, name);
        }
        pack_s(&pk, "trees");
        msgpack_pack_array(&pk, 0);
        assert_int_equal(load_raw(sb.data, sb.size, 7), dup ? RK_EEXISTS : RK_EPARSE);
        diag_is(dup ? "m.rmdl: feature 59999: name 'f777' is also feature 777"
                    : "m.rmdl: model has no trees");
        msgpack_sbuffer_destroy(&sb);
    }
}

/* A tree of RK_MODEL_MAX_TREE_NODES + 1 nodes with all its columns is
 * refused by count before anything is allocated for it. */
static void tree_over_limit(void **state)
{
    uint32_t n = RK_MODEL_MAX_TREE_NODES + 1;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    static const char *const cols[] = {"feature", "threshold", "left", "right",
                                       "default_left", "value", "cover"};
    pack_s(&pk, "features");
    msgpack_pack_array(&pk, 1);
    pack_s(&pk, "a");
    pack_s(&pk, "trees");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 7);
    for (int c = 0; c < 7; c++) {
        pack_s(&pk, cols[c]);
        msgpack_pack_array(&pk, n);
        for (uint32_t i = 0; i < n; i++)
            msgpack_pack_int(&pk, c == 2 || c == 3 ? -1 : 0);
    }
    assert_int_equal(load_raw(sb.data, sb.size, 7), RK_ETOOBIG);
    diag_is("m.rmdl: tree 0: 1048577 nodes is too many (at most 1048576 in a tree, 16777216 in "
            "all)");
    msgpack_sbuffer_destroy(&sb);
}

static void crc32c_known_value(void **state)
{
    /* The check value of CRC-32C (RFC 3720, appendix B.4). */
    assert_int_equal(rk_model_crc32c(0, "123456789", 9), 0xe3069283);
    assert_int_equal(rk_model_crc32c(rk_model_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiny_predicts),   cmocka_unit_test(tiny_explains),
        cmocka_unit_test(top_orders_by_magnitude), cmocka_unit_test(linear_predicts),
        cmocka_unit_test(import_errors),   cmocka_unit_test(round_trip),
        cmocka_unit_test(damaged_files),   cmocka_unit_test(hostile_trees),
        cmocka_unit_test(absurd_counts),   cmocka_unit_test(many_names),
        cmocka_unit_test(tree_over_limit),
        cmocka_unit_test(crc32c_known_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
