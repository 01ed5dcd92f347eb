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
#include "proto/txn.h"
#include "rules/decision.h"
#include "rules/expr.h"
#include "state/counters.h"

typedef struct rk_ruleset rk_ruleset;

/* Loads and compiles the rule file at path. Returns 0 and sets *out, or a
 * negative code with diag set (RK_EIO: unreadable rule, include or list file;
 * RK_EPARSE: YAML or expression syntax, unknown key, wrong kind of node;
 * RK_EINVAL: a bad value (rule id, action, thresholds, include cycle, a
 * counter's duration or key); RK_ERANGE: score, threshold, counter window or
 * list TTL out of range; RK_ETYPE; RK_ENOTFOUND: unknown name or list;
 * RK_EEXISTS: duplicate rule id, list, schema field or counter; RK_ETOOBIG: too
 * many rules, schema fields or counters, includes nested too deeply;
 * RK_EUNSUPPORTED: `model:` is not supported yet; RK_ENOMEM).
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
 * "model.score"); -1 when the rule set has no such name. Used by
 * `riskctl test` to override counter values and the model score. */
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

/* Evaluates every rule over txn and decides (allow rule > block/review actions
 * and thresholds > allow; shadow rules reported apart). Never fails. */
void rk_ruleset_eval(const rk_ruleset *rs, const rk_txn *txn, rk_eval_ctx *ctx,
                     rk_decision *out);

#endif
