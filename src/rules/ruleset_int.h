/* Inside a rule set: the layout shared by the loader (load.c), the evaluator
 * (ruleset.c) and the decision precedence (decide.c), and visible to tests.
 * Nothing outside src/rules and tests/ includes this file.
 *
 * Ownership: an rk_ruleset owns every string, list and compiled expression it
 * points to; after rk_ruleset_load returns it is never written again, which is
 * what lets many workers evaluate one snapshot without locks. */
#ifndef RK_RULESET_INT_H
#define RK_RULESET_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "rules/decision.h"
#include "rules/expr.h"
#include "rules/list.h"
#include "rules/ruleset.h"

#define RK_RULE_SCORE (-1) /* rk_rule.action of a rule that adds a score instead */

/* Where something was defined, for "first defined at" diagnostics. */
typedef struct rk_srcpos {
    int file; /* index into rk_ruleset.files */
    int line; /* 1-based */
    int col;  /* 1-based */
} rk_srcpos;

typedef struct rk_rule {
    char *id;      /* [a-z0-9_]+, unique in the rule set */
    char *reason;  /* analyst's text, or NULL */
    rk_expr *when; /* compiled condition, RK_T_BOOL */
    int action;    /* an rk_verdict, or RK_RULE_SCORE */
    double score;  /* added to the score when matched (score rules only) */
    bool shadow;   /* reported apart and never decides */
    rk_srcpos pos; /* where `id` was written */
} rk_rule;

typedef struct rk_list_def {
    char *name;    /* as written after `@` in expressions */
    rk_list *list; /* owned; NULL for a dynamic list */
    bool dynamic;  /* `{dynamic: true}`: members live in the store */
    int dyn_index; /* dynamic: index into rk_ruleset.dynlists; else -1 */
    rk_srcpos pos; /* where the name was written */
} rk_list_def;

/* Score thresholds; an absent one never applies. */
typedef struct rk_thresholds {
    bool has_review; /* `thresholds.review` given */
    bool has_block;  /* `thresholds.block` given */
    double review;   /* score >= review gives at least review */
    double block;    /* score >= block gives block */
} rk_thresholds;

/* What the matched rules of one evaluation add up to, before the thresholds. */
typedef struct rk_tally {
    bool allow;  /* an allow rule matched */
    int action;  /* most severe matched review/block action, or -1 */
    double score; /* sum of matched scores */
} rk_tally;

/* One entry of the feature vector: a compiled expression, or a slot read as
 * it is (a model feature bound by default to the field or counter of its name). */
typedef struct rk_feature {
    char *name;    /* as declared under `features:`, or the model's feature name */
    rk_expr *expr; /* declared: compiled, of type int, float or bool; NULL for a default binding */
    int slot;      /* default binding: the slot read; -1 for a declared one */
} rk_feature;

struct rk_ruleset {
    char *name;             /* `ruleset:` */
    char *version;          /* `version:` */
    char *label;            /* "name@version" */
    rk_schema schema;       /* `schema:` extras, merged over includes; slots RK_F__STD + i */
    rk_thresholds thresholds; /* `thresholds:` */
    char **files;           /* every file loaded (top file first), as displayed in diagnostics */
    int nfiles;             /* entries in files */
    rk_list_def *lists;     /* named lists, in load order */
    int nlists;             /* entries in lists and list_env */
    rk_named_list *list_env; /* the same lists as the expression compiler sees them */
    rk_sym *syms;           /* fields, schema extras, counters, model.score: slot = index */
    int nsyms;              /* entries in syms: RK_F__STD + schema.n + ncounters + 1 */
    rk_counters *counters;  /* compiled `counters:`; NULL when there are none */
    int ncounters;          /* counters, in load order (an include's first) */
    int counter_base;       /* slot of counter 0: RK_F__STD + schema.n */
    rk_expr **counter_when; /* per counter: its `when:` filter, or NULL when it has none */
    rk_dynlist_info *dynlists; /* dynamic lists, in load order; names borrow lists[].name */
    int ndynlists;          /* entries in dynlists */
    rk_model *model;        /* `model: file:`, owned; NULL when there is none */
    rk_feature *features;   /* the feature vector: declared features, then default bindings */
    int nfeatures;          /* entries in features, <= RK_FEATURES_MAX */
    int *model_input;       /* per model feature: its index in the feature vector */
    bool model_in_order;    /* model_input[i] == i for every i: x goes to the model as it is */
    int model_slot;         /* slot of model.score: counter_base + ncounters */
    int explain_top;        /* `explain_top:`, 1..RK_FEATURES_MAX */
    rk_rule *rules;         /* in evaluation order: an include's rules before the includer's */
    int nrules;             /* entries in rules */
    bool has_shadow;        /* at least one rule is a shadow rule */
};

/* The decision precedence of DESIGN.md section 3 (decide.c): allow if an
 * allow rule matched; else the most severe of the matched actions and the
 * thresholds the score reaches; else allow. */
rk_verdict rk_decide(const rk_tally *t, const rk_thresholds *th);

#endif
