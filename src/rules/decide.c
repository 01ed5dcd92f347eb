/* Decisions: the verdict names and the precedence that turns matched rules
 * into one verdict.
 *
 * The precedence is DESIGN.md section 3, kept in this one function so that the
 * live decision and the shadow decision cannot disagree on it: an allow rule
 * outranks everything (it is how analysts whitelist); otherwise the most severe
 * of the matched review/block actions and of the thresholds the score reaches;
 * otherwise allow. Verdicts are ordered by severity, so "most severe" is a max. */
#include "rules/decision.h"

#include <string.h>

#include "rules/ruleset_int.h"

static const char *const verdict_names[RK_VERDICT__COUNT] = {
#define XX(name, text) text,
    RK_VERDICT_MAP(XX)
#undef XX
};

const char *rk_verdict_name(rk_verdict v)
{
    return (unsigned)v < RK_VERDICT__COUNT ? verdict_names[v] : "?";
}

int rk_verdict_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int v = 0; v < RK_VERDICT__COUNT; v++)
        if (strcmp(name, verdict_names[v]) == 0)
            return v;
    return -1;
}

rk_verdict rk_decide(const rk_tally *t, const rk_thresholds *th)
{
    if (t->allow)
        return RK_ALLOW;
    int v = t->action >= 0 ? t->action : RK_ALLOW;
    if (th->has_block && t->score >= th->block)
        v = RK_BLOCK;
    else if (th->has_review && t->score >= th->review && v < RK_REVIEW)
        v = RK_REVIEW;
    return (rk_verdict)v;
}
