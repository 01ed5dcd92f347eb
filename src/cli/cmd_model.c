/* riskctl model: turn a trained model into riskd's .rmdl and look inside one.
 *
 *   riskctl model import m.json -o m.rmdl   XGBoost JSON (or riskd's logistic
 *                                           regression JSON) to .rmdl
 *   riskctl model info m.rmdl               what the model holds
 *
 * Both go through the model module's own loader, the one riskd uses: import
 * validates what it builds exactly as a load would, writes the file
 * atomically and reads it back before saying "ok", so a file it produced is
 * a file riskd accepts. Failures print as `FILE: message` (exit 1); usage
 * errors exit 2. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "lib/diag.h"
#include "lib/err.h"
#include "model/model.h"

static int fail_diag(rk_diag *d, const char *path, int rc)
{
    if (d->msg[0] == '\0')
        rk_diag_set(d, path, 0, 0, "%s", rk_strerror(rc));
    char line[1200];
    fprintf(stderr, "%s\n", rk_diag_format(d, line, sizeof line));
    return RK_CLI_FAIL;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static const char *meta_value(const rk_model *m, const char *key)
{
    for (size_t i = 0; i < rk_model_nmeta(m); i++) {
        const char *k, *v;
        rk_model_meta(m, i, &k, &v);
        if (strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

static int run_import(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const char *out = NULL;
    const rk_cli_opt opts[] = {
        {"--output", "OUT.rmdl", &out, NULL},
        {"-o", "OUT.rmdl", &out, NULL},
        {NULL, NULL, NULL, NULL},
    };
    int npos;
    int rc = rk_cli_parse(cmd, argc, argv, opts, &npos);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (npos != 1)
        return rk_cli_usage(cmd, "model import needs one JSON model file");
    if (!out)
        return rk_cli_usage(cmd, "model import needs -o OUT.rmdl");
    const char *in = argv[1];

    rk_diag diag;
    rk_diag_clear(&diag);
    rk_model *m = NULL, *back = NULL;
    if ((rc = rk_model_import(in, &m, &diag)) < 0)
        return fail_diag(&diag, in, rc);
    rc = rk_model_save(m, out, &diag);
    if (rc == 0)
        rc = rk_model_load(out, &back, &diag);
    if (rc < 0) {
        rk_model_free(m);
        return fail_diag(&diag, out, rc);
    }
    rk_model_info info;
    rk_model_get_info(back, &info);
    const char *source = meta_value(back, "source");
    printf("ok: %s (%s, %s): ", in, source ? source : "?", rk_model_objective_name(info.objective));
    if (info.objective == RK_MODEL_TREES)
        printf("%zu trees, max depth %d, ", info.ntrees, info.max_depth);
    printf("%zu features -> %s (%lld bytes)\n", info.nfeatures, out, file_size(out));
    rk_model_free(back);
    rk_model_free(m);
    return RK_CLI_OK;
}

static int run_info(const rk_cli_cmd *cmd, int argc, char **argv)
{
    int npos;
    int rc = rk_cli_parse(cmd, argc, argv, NULL, &npos);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (npos != 1)
        return rk_cli_usage(cmd, "model info needs one .rmdl file");
    const char *path = argv[1];
    rk_diag diag;
    rk_diag_clear(&diag);
    rk_model *m = NULL;
    if ((rc = rk_model_load(path, &m, &diag)) < 0)
        return fail_diag(&diag, path, rc);

    rk_model_info info;
    rk_model_get_info(m, &info);
    bool trees = info.objective == RK_MODEL_TREES;
    printf("model:      %s (%lld bytes)\n", path, file_size(path));
    printf("objective:  %s (%s)\n", rk_model_objective_name(info.objective),
           rk_model_objective_text(info.objective));
    printf("base:       margin %.9g (probability %.9g)\n", info.base_margin,
           rk_model_sigmoid(info.base_margin));
    if (trees)
        printf("trees:      %zu, max depth %d, %zu nodes (%zu leaves)\n", info.ntrees,
               info.max_depth, info.nnodes, info.nleaves);
    else
        printf("bias:       %.9g\n", rk_model_bias(m));
    printf("features:   %zu\n", info.nfeatures);
    size_t width = 4;
    for (size_t i = 0; i < info.nfeatures; i++)
        if (strlen(rk_model_feature_name(m, i)) > width)
            width = strlen(rk_model_feature_name(m, i));
    printf("  %4s  %-*s  %s\n", "#", (int)width, "name", trees ? "splits" : "weight");
    for (size_t i = 0; i < info.nfeatures; i++) {
        printf("  %4zu  %-*s  ", i, (int)width, rk_model_feature_name(m, i));
        if (trees)
            printf("%zu\n", rk_model_feature_splits(m, i));
        else
            printf("%.9g\n", rk_model_feature_weight(m, i));
    }
    if (rk_model_nmeta(m))
        printf("meta:\n");
    for (size_t i = 0; i < rk_model_nmeta(m); i++) {
        const char *k, *v;
        rk_model_meta(m, i, &k, &v);
        printf("  %s: %s\n", k, v);
    }
    rk_model_free(m);
    return RK_CLI_OK;
}

static const rk_cli_cmd model_import = {
    .name = "model import",
    .args = "MODEL.json -o OUT.rmdl",
    .summary = "convert an XGBoost JSON model to riskd's .rmdl",
    .help = "Reads MODEL.json, a model saved by XGBoost 1.x with save_model(\"m.json\")\n"
            "(objective binary:logistic; booster gbtree with numeric splits, or gblinear)\n"
            "or a logistic regression in riskd's JSON form\n"
            "  {\"objective\": \"logistic_regression\", \"features\": [...],\n"
            "   \"weights\": [...], \"bias\": B}\n"
            "validates it as riskd would, writes OUT.rmdl atomically and reads it back.\n"
            "Predictions from OUT.rmdl equal XGBoost's own (output_margin and\n"
            "probability), missing values (NaN) included. docs/model.md has the details.\n"
            "\n"
            "Options:\n"
            "  -o, --output OUT.rmdl   the model file to write (required)\n"
            "\n"
            "Exit status: 0 written, 1 the model is unsupported or broken, or OUT cannot\n"
            "be written, 2 bad usage.\n",
    .run = run_import,
};

static const rk_cli_cmd model_info = {
    .name = "model info",
    .args = "MODEL.rmdl",
    .summary = "show what an .rmdl model holds",
    .help = "Loads MODEL.rmdl with full validation (checksum, tree structure, numbers)\n"
            "and prints its objective, base margin, trees (count, max depth, nodes),\n"
            "its features in input order with how many splits use each (or each weight,\n"
            "for logistic regression), and its meta entries.\n"
            "\n"
            "Exit status: 0 the model loads, 1 it does not (the first problem is printed\n"
            "as FILE: message), 2 bad usage.\n",
    .run = run_info,
};

static const rk_cli_cmd *const model_cmds[] = {&model_import, &model_info};
#define NMODEL_CMDS (sizeof model_cmds / sizeof model_cmds[0])

static int run_model(const rk_cli_cmd *cmd, int argc, char **argv)
{
    return rk_cli_dispatch(cmd, model_cmds, NMODEL_CMDS, "import or info", argc, argv);
}

const rk_cli_cmd rk_cli_model = {
    .name = "model",
    .args = "import|info ARGS...",
    .summary = "import an XGBoost model as .rmdl; show what a model holds",
    .help = "Subcommands:\n"
            "  import MODEL.json -o OUT.rmdl   XGBoost JSON (or logistic regression) to .rmdl\n"
            "  info MODEL.rmdl                 objective, trees, depth, features, size\n"
            "\n"
            "Run 'riskctl model SUBCOMMAND --help' for each one's details.\n",
    .run = run_model,
};
