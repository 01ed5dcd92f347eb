/* Decisions: the three verdicts and the outcome of evaluating a rule set. */
#ifndef RK_DECISION_H
#define RK_DECISION_H

#include <stdbool.h>
#include <stdint.h>

#define RK_VERDICT_MAP(XX)   \
    XX(ALLOW, "allow")       \
    XX(REVIEW, "review")     \
    XX(BLOCK, "block")

/* Ordered by severity, so the most severe is the max. */
typedef enum rk_verdict {
#define XX(name, text) RK_##name,
    RK_VERDICT_MAP(XX)
#undef XX
    RK_VERDICT__COUNT,
} rk_verdict;

const char *rk_verdict_name(rk_verdict v);
/* Parses "allow" / "review" / "block"; -1 when unknown. */
int rk_verdict_from_name(const char *name);

#define RK_MAX_RULES 1024

/* The outcome of one evaluation. Rule indices refer to the rule set that
 * produced it (rk_ruleset_rule_id). Lives in per-worker scratch. */
typedef struct rk_decision {
    rk_verdict verdict;
    double score;                     /* sum of matched live rules' scores */
    uint16_t reasons[RK_MAX_RULES];   /* matched live rules, file order */
    int nreasons;
    uint16_t shadow[RK_MAX_RULES];    /* matched shadow rules, file order */
    int nshadow;
    bool has_shadow_rules;            /* the rule set has at least one shadow rule */
    rk_verdict shadow_verdict;        /* the verdict had shadow rules been live */
    double shadow_score;
} rk_decision;

#endif
