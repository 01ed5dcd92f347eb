/* Rule sets (DESIGN.md sections 3 and 4): loading a YAML rule file (with
 * includes, lists, schema, thresholds, counters and dynamic lists), compiling
 * every rule, and deciding.
 *
 * A loaded rk_ruleset is immutable and safe to evaluate from many threads at
 * once, each with its own rk_eval_ctx. Problems found while loading are
 * reported as `file:line:col: message` in an rk_diag, and nothing is returned. */
#ifndef RK_RULESET_H
#define RK_RULESET_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/diag.h"
#include "model/model.h"
#include "proto/txn.h"
#include "rules/decision.h"
#include "rules/expr.h"
#include "state/counters.h"

typedef struct rk_ruleset rk_ruleset;

/* Loads and compiles the rule file at path, and the model file its `model:`
 * section names. Returns 0 and sets *out, or a negative code with diag set
 * (RK_EIO: unreadable rule, include, list or model file; RK_EPARSE: YAML or
 * expression syntax, unknown key, wrong kind of node; RK_EINVAL: a bad value
 * (rule id, action, thresholds, include cycle, a counter's duration or key, a
 * feature name), or a name read where it cannot be (a counter in a counter's
 * `when`, model.score in a feature or, without a model file, in a rule);
 * RK_ERANGE: score, threshold, counter window, list TTL or explain_top out of
 * range; RK_ETYPE; RK_ENOTFOUND: unknown name or list, a model feature with
 * no binding; RK_EEXISTS: duplicate rule id, list, schema field, counter or
 * feature; RK_ETOOBIG: too many rules, schema fields, counters or features,
 * includes nested too deeply; for a model file that does not load, the model
 * loader's code (RK_EPARSE, RK_ECORRUPT, RK_EUNSUPPORTED, ...) with its
 * message after the position of `file:`; RK_ENOMEM).
 * An included file's rules come before the including file's own. */
int rk_ruleset_load(const char *path, rk_ruleset **out, rk_diag *diag);
/* Loads a rule file from memory (text, len bytes); name stands for its path in
 * diagnostics. Its includes and list files resolve relative to the current
 * directory. For tests, the fuzzer and tools that hold the text already. */
int rk_ruleset_load_mem(const char *name, const char *text, size_t len, rk_ruleset **out,
                        rk_diag *diag);
void rk_ruleset_free(rk_ruleset *rs);

const char *rk_ruleset_name(const rk_ruleset *rs);
const char *rk_ruleset_version(const rk_ruleset *rs);
/* "name@version", as echoed in replies. */
const char *rk_ruleset_label(const rk_ruleset *rs);
/* Extra request fields declared in `schema:` (slots RK_F__STD...). */
const rk_schema *rk_ruleset_schema(const rk_ruleset *rs);

int rk_ruleset_nrules(const rk_ruleset *rs);
const char *rk_ruleset_rule_id(const rk_ruleset *rs, int i);
bool rk_ruleset_rule_shadow(const rk_ruleset *rs, int i);

/* Slot and static type of a readable name (field, schema extra, counter,
 * "model.score" when there is a model file); -1 when the rule set has no such
 * name. Used by `riskctl test` to override counter values and the model score. */
int rk_ruleset_slot(const rk_ruleset *rs, const char *name, rk_type *type);

/* Velocity counters declared in `counters:` (DESIGN.md section 4), or NULL
 * when there are none. Counter i's value lives in slot
 * rk_ruleset_counter_base(rs) + i, which the pipeline fills (through
 * rk_counters_apply) before the rules run. */
const rk_counters *rk_ruleset_counters(const rk_ruleset *rs);
int rk_ruleset_counter_base(const rk_ruleset *rs);
/* Evaluates every counter's `when:` filter over txn: when[i] is true when
 * counter i has no filter or its filter is true, false when it is false or
 * unknown. Never allocates. */
void rk_ruleset_counter_when(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx,
                             bool *when);

/* Dynamic lists (`{dynamic: true}`), kept in the store and looked up at
 * evaluation time through rk_eval_ctx.dyn_has with the list's index. */
typedef struct rk_dynlist_info {
    const char *name;     /* list name, as in `@name` and `riskctl list add NAME` */
    int fraud_slot;       /* slot whose value is added on confirmed fraud, or -1 */
    int64_t fraud_ttl_ms; /* expiry of entries added on fraud; 0 = never */
} rk_dynlist_info;
int rk_ruleset_ndynlists(const rk_ruleset *rs);
/* Dynamic list i (0 <= i < rk_ruleset_ndynlists), or NULL. */
const rk_dynlist_info *rk_ruleset_dynlist(const rk_ruleset *rs, int i);
/* Index of the dynamic list called name, or -1. */
int rk_ruleset_dynlist_find(const rk_ruleset *rs, const char *name);
/* Whether the rule set has a list called name, static or dynamic. */
bool rk_ruleset_has_list(const rk_ruleset *rs, const char *name);

/* ---- The model (`model:`, DESIGN.md section 5) ----------------------------
 *
 * The feature vector is the `features:` declared, in order, then every model
 * feature not declared, bound to the field, schema extra or counter of its
 * name. Feature i is a float: an int or float value converted, a bool as 0 or
 * 1, NaN when missing. The model, when `file:` names one, is owned by the rule
 * set and reloads with it; its probability is the float `model.score`. */

#define RK_FEATURES_MAX 256   /* entries in a rule set's feature vector */
#define RK_EXPLAIN_TOP_DEFAULT 5 /* contributions an `explain: true` reply lists by default */

/* The model `file:` names, or NULL when there is none. */
const rk_model *rk_ruleset_model(const rk_ruleset *rs);
/* Length of the feature vector (<= RK_FEATURES_MAX); 0 without a `model:` section. */
int rk_ruleset_nfeatures(const rk_ruleset *rs);
/* Name of feature i (0 <= i < nfeatures), or NULL. Valid while rs lives. */
const char *rk_ruleset_feature_name(const rk_ruleset *rs, int i);
/* Evaluates every feature binding over txn (fields and counters filled) into
 * x[0..nfeatures). Never allocates, never fails (as rk_ruleset_eval). */
void rk_ruleset_features(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx, float *x);
/* Scores feature vector x (as rk_ruleset_features filled it) with the model,
 * passing each model feature its entry of x without allocating, writes the
 * probability into txn's model.score slot and returns it; NaN (and txn
 * untouched) when the rule set has no model. */
double rk_ruleset_model_score(const rk_ruleset *rs, const float *x, rk_txn *txn);
/* How many contributions an explanation lists (`explain_top:`). */
int rk_ruleset_explain_top(const rk_ruleset *rs);
/* Explains the model's score for x: the largest contributions to the margin
 * by absolute value, largest first, at most rk_ruleset_explain_top(rs) of
 * them (features that contributed nothing are left out), into top, with
 * top[i].feature an index into the feature vector; *bias gets the margin of a
 * case the model knows nothing about. Every feature's contribution plus the
 * bias is the margin (rk_model_explain). contrib is scratch for
 * RK_FEATURES_MAX + 1 doubles. Returns how many entries top holds; 0 (and
 * *bias 0) without a model. Never allocates. */
int rk_ruleset_model_explain(const rk_ruleset *rs, const float *x, double *contrib,
                             rk_model_contrib *top, double *bias);

/* Evaluates every rule over txn and decides (allow rule > block/review actions
 * and thresholds > allow; shadow rules reported apart). Never fails. */
void rk_ruleset_eval(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx,
                     rk_decision *out);

#endif
