/* Loading what a rule file declares for the state store: velocity counters
 * (`counters:`, DESIGN.md section 4) and dynamic lists (`{dynamic: true}`).
 *
 * Phase one (while the YAML files are walked) checks each declaration's keys,
 * names and values — windows and TTLs are duration literals read by the
 * expression lexer, so `1h` means the same in `window:` as in a rule — and
 * keeps the field names it mentions with their positions. Phase two, once
 * every schema field is known, resolves those names to slots (with a "did you
 * mean"), builds the immutable rk_counters the store works from, and compiles
 * counters' `when` filters, which may read request fields but not counters:
 * a counter's value is computed before any counter is known.
 *
 * Counters become int symbols after the fields, counter i in slot
 * RK_F__STD + schema.n + i, in load order (an include's counters before the
 * includer's). Dynamic lists are named lists whose members the evaluator asks
 * of rk_eval_ctx.dyn_has with the list's index in rs->dynlists. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "rules/lex.h"
#include "rules/load_int.h"
#include "state/dlist.h"
#include "state/keyhash.h"
#include "state/window.h"

#define TTL_MIN_MS 1000LL                      /* 1 s */
#define TTL_MAX_MS (3650LL * 24 * 3600 * 1000) /* 3650 d */
#define OWNER_MAX (RK_NAME_MAX + 16)           /* "counter 'NAME'", "list 'NAME'" */

_Static_assert(RK_F__STD + RK_SCHEMA_MAX + RK_COUNTERS_MAX < RK_MAX_SLOTS,
               "fields and counters must fit the transaction's slots");
_Static_assert(RK_NAME_MAX <= RK_DLIST_NAME_MAX, "a list name must fit the store's key");

/* A phase-two problem at a remembered position; returns code. Names quoted
 * in these messages were checked to be identifiers in phase one. */
int rk_load_fail_at(loader *L, rk_srcpos at, int code, const char *fmt, ...)
{
    char msg[sizeof L->diag->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rk_diag_set(L->diag, rk_load_file_name(L, at.file), at.line, at.col, "%s", msg);
    return code;
}

/* A duration literal (`30s`, `1h`, `7d`) within [min, max], read by the
 * expression lexer at the scalar's position. range is how a person reads the
 * bounds ("30s to 90d"). */
static int duration(loader *L, file_ctx *f, yaml_node_t *n, const char *owner, const char *key,
                    int64_t min, int64_t max, const char *range, int64_t *out)
{
    const char *s = rk_yn_str(n);
    if (!s || rk_yn_is_null(n))
        return rk_yn_fail(&f->doc, n, L->diag, RK_EINVAL,
                          "%s: '%s' must be a duration such as 10m, 1h or 7d", owner, key);
    rk_expr_env env = {.file = rk_load_file_name(L, f->file)};
    rk_yn_text_pos(&f->doc, n, &env.line, &env.col, &env.cont_col);
    rk_src src = {.text = s, .len = n->data.scalar.length, .env = &env, .diag = L->diag};
    rk_lexer lx;
    rk_token t, end;
    rk_lex_init(&lx, &src);
    int rc = src.len > RK_EXPR_MAX_LEN ? RK_EPARSE : rk_lex_next(&lx, &t);
    if (rc == 0 && t.kind == RK_TOK_DURATION && (rc = rk_lex_next(&lx, &end)) == 0 &&
        end.kind == RK_TOK_EOF) {
        if ((int64_t)t.u < min || (int64_t)t.u > max)
            return rk_yn_fail(&f->doc, n, L->diag, RK_ERANGE, "%s: %s %s is out of range (%s)",
                              owner, key, s, range);
        *out = (int64_t)t.u;
        return 0;
    }
    if (rc && L->diag && strncmp(L->diag->msg, "invalid duration", 16) == 0) {
        /* the lexer's own words say what is wrong with it: keep them, say whose */
        char msg[sizeof L->diag->msg + OWNER_MAX + 2];
        snprintf(msg, sizeof msg, "%s: %s", owner, L->diag->msg);
        size_t len = strnlen(msg, sizeof L->diag->msg - 1);
        memcpy(L->diag->msg, msg, len);
        L->diag->msg[len] = '\0';
        return RK_EINVAL;
    }
    return rk_yn_fail(&f->doc, n, L->diag, RK_EINVAL,
                      "%s: '%s' must be a duration such as 10m, 1h or 7d", owner, key);
}

/* A field named in a declaration (phase one): kept with its position, to be
 * resolved in phase two. Text that cannot be a field name is unknown now. */
static int field_ref(loader *L, file_ctx *f, yaml_node_t *n, const char *owner, const char *key,
                     char **name, rk_srcpos *pos)
{
    const char *s = rk_yn_str(n);
    if (!s || rk_yn_is_null(n))
        return rk_yn_fail(&f->doc, n, L->diag, RK_EPARSE, "%s: '%s' must name a field, found %s",
                          owner, key, s ? "nothing" : rk_yn_kind(n));
    size_t len = n->data.scalar.length;
    if (!rk_load_is_ident(s, len) || len >= RK_NAME_MAX)
        return rk_yn_fail(&f->doc, n, L->diag, RK_ENOTFOUND, "%s: unknown field '%s'", owner, s);
    *pos = rk_load_pos(f, n);
    return (*name = strdup(s)) ? 0 : RK_ENOMEM;
}

/* The slot and type of a request field (standard or schema) named in a
 * declaration (phase two). */
static int field_slot(loader *L, const char *owner, const char *name, rk_srcpos pos, int *slot,
                      rk_type *type)
{
    const rk_schema *sc = &L->rs->schema;
    size_t len = strlen(name);
    int s = rk_field_find(name, len);
    if (s >= 0) {
        *slot = s;
        *type = rk_field_type(s);
        return 0;
    }
    if ((s = rk_schema_find(sc, name, len)) >= 0) {
        *slot = s;
        *type = sc->f[s - RK_F__STD].type;
        return 0;
    }
    const char *cands[RK_F__STD + RK_SCHEMA_MAX];
    for (int i = 0; i < RK_F__STD; i++)
        cands[i] = rk_field_name(i);
    for (int i = 0; i < sc->n; i++)
        cands[RK_F__STD + i] = sc->f[i].name;
    const char *near = rk_suggest(name, cands, (size_t)(RK_F__STD + sc->n));
    if (near)
        return rk_load_fail_at(L, pos, RK_ENOTFOUND,
                               "%s: unknown field '%s' (did you mean '%s'?)", owner, name, near);
    return rk_load_fail_at(L, pos, RK_ENOTFOUND, "%s: unknown field '%s'", owner, name);
}

/* ---- counters, phase one ----------------------------------------------- */

/* The counter's name: an identifier no field or earlier counter has. */
static int counter_name(loader *L, file_ctx *f, yaml_node_t *kn)
{
    const char *name = rk_yn_str(kn);
    if (!name)
        return rk_yn_fail(&f->doc, kn, L->diag, RK_EPARSE, "expected a counter name, found %s",
                          rk_yn_kind(kn));
    size_t len = kn->data.scalar.length;
    if (!rk_load_is_ident(name, len))
        return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                          "invalid counter name '%s' (use letters, digits and _, not starting "
                          "with a digit)",
                          name);
    if (len >= RK_NAME_MAX)
        return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                          "counter name '%s' is too long (at most %d bytes)", name,
                          RK_NAME_MAX - 1);
    if (rk_load_is_keyword(name))
        return rk_yn_fail(&f->doc, kn, L->diag, RK_EINVAL,
                          "'%s' is a reserved word and cannot name a counter", name);
    if (rk_field_find(name, len) >= 0)
        return rk_yn_fail(&f->doc, kn, L->diag, RK_EEXISTS,
                          "counter name '%s' is already a standard field", name);
    for (int i = 0; i < L->ncounters; i++) {
        if (strcmp(L->counters[i].name, name) == 0) {
            rk_srcpos first = L->counters[i].pos;
            return rk_yn_fail(&f->doc, kn, L->diag, RK_EEXISTS,
                              "duplicate counter '%s' (first defined at %s:%d:%d)", name,
                              rk_load_file_name(L, first.file), first.line, first.col);
        }
    }
    if (L->ncounters >= RK_COUNTERS_MAX)
        return rk_yn_fail(&f->doc, kn, L->diag, RK_ETOOBIG, "too many counters (at most %d)",
                          RK_COUNTERS_MAX);
    return 0;
}

/* `by:` — one field, or a list of 1..RK_COUNTER_BY_MAX different fields. */
static int counter_by(loader *L, file_ctx *f, counter_src *c, const char *owner, yaml_node_t *by)
{
    if (by->type == YAML_SCALAR_NODE) {
        c->nby = 1;
        return field_ref(L, f, by, owner, "by", &c->by[0], &c->by_pos[0]);
    }
    if (by->type != YAML_SEQUENCE_NODE)
        return rk_yn_fail(&f->doc, by, L->diag, RK_EPARSE,
                          "%s: 'by' must be a field or a list of fields, found %s", owner,
                          rk_yn_kind(by));
    yaml_node_item_t *start = by->data.sequence.items.start, *top = by->data.sequence.items.top;
    if (top - start < 1 || top - start > RK_COUNTER_BY_MAX)
        return rk_yn_fail(&f->doc, by, L->diag, RK_EINVAL,
                          "%s: 'by' takes 1 to %d fields, found %d", owner, RK_COUNTER_BY_MAX,
                          (int)(top - start));
    for (yaml_node_item_t *it = start; it < top; it++) {
        yaml_node_t *n = rk_yn_node(&f->doc, *it);
        int i = c->nby;
        int rc = field_ref(L, f, n, owner, "by", &c->by[i], &c->by_pos[i]);
        if (rc)
            return rc;
        c->nby++;
        for (int j = 0; j < i; j++)
            if (strcmp(c->by[j], c->by[i]) == 0)
                return rk_yn_fail(&f->doc, n, L->diag, RK_EINVAL,
                                  "%s: field '%s' is in 'by' twice", owner, c->by[i]);
    }
    return 0;
}

/* The aggregate (`sum:` or `distinct:`, else a count) and `feedback:`. */
static int counter_agg(loader *L, file_ctx *f, counter_src *c, const char *owner,
                       yaml_node_t *map)
{
    yaml_node_t *skey = NULL, *dkey = NULL, *fbkey = NULL;
    yaml_node_t *sum = rk_yn_get(&f->doc, map, "sum", &skey);
    yaml_node_t *distinct = rk_yn_get(&f->doc, map, "distinct", &dkey);
    yaml_node_t *fb = rk_yn_get(&f->doc, map, "feedback", &fbkey);
    if (sum && distinct) {
        yaml_node_t *later = rk_yn_line(skey) > rk_yn_line(dkey) ||
                                     (rk_yn_line(skey) == rk_yn_line(dkey) &&
                                      rk_yn_col(skey) > rk_yn_col(dkey))
                                 ? skey
                                 : dkey;
        return rk_yn_fail(&f->doc, later, L->diag, RK_EPARSE,
                          "%s: has both 'sum' and 'distinct' (one aggregate per counter)", owner);
    }
    int rc = 0;
    if (sum) {
        c->agg = RK_AGG_SUM;
        rc = field_ref(L, f, sum, owner, "sum", &c->field, &c->field_pos);
    } else if (distinct) {
        c->agg = RK_AGG_DISTINCT;
        rc = field_ref(L, f, distinct, owner, "distinct", &c->field, &c->field_pos);
    }
    if (rc || !fb)
        return rc;
    const char *label = rk_yn_str(fb);
    int l = label ? rk_label_from_name(label) : -1;
    if (l != RK_LABEL_FRAUD && l != RK_LABEL_LEGIT)
        return rk_yn_fail(&f->doc, fb, L->diag, RK_EINVAL,
                          "%s: unknown feedback label '%s' (expected fraud or legit)", owner,
                          label ? label : rk_yn_kind(fb));
    c->feedback = l;
    return 0;
}

/* `when:` — an expression kept for phase two; feedback counters take none. */
static int counter_when(loader *L, file_ctx *f, counter_src *c, const char *owner,
                        yaml_node_t *map)
{
    yaml_node_t *wkey = NULL, *when = rk_yn_get(&f->doc, map, "when", &wkey);
    if (!when)
        return 0;
    if (c->feedback != RK_LABEL_NONE)
        return rk_yn_fail(&f->doc, wkey, L->diag, RK_EINVAL,
                          "%s: a feedback counter takes no 'when' (it counts the transactions "
                          "labelled %s)",
                          owner, rk_label_name(c->feedback));
    if (when->type != YAML_SCALAR_NODE)
        return rk_yn_fail(&f->doc, when, L->diag, RK_EPARSE,
                          "%s: 'when' must be an expression, found %s", owner, rk_yn_kind(when));
    if (rk_yn_is_null(when))
        return rk_yn_fail(&f->doc, when, L->diag, RK_EPARSE, "%s: 'when' is empty", owner);
    return rk_load_keep_expr(f, when, &c->when);
}

static int counter_one(loader *L, file_ctx *f, yaml_node_t *kn, yaml_node_t *body)
{
    static const char *const keys[] = {"by", "window", "sum", "distinct", "when", "feedback"};
    int rc = counter_name(L, f, kn);
    if (rc)
        return rc;
    const char *name = rk_yn_str(kn);
    char owner[OWNER_MAX];
    snprintf(owner, sizeof owner, "counter '%s'", name);
    if (body->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, body, L->diag, RK_EPARSE,
                          "counter '%s' must be a mapping such as {by: account, window: 1h}",
                          name);
    if ((rc = rk_yn_check_keys(&f->doc, body, keys, sizeof keys / sizeof *keys, L->diag)))
        return rc;
    yaml_node_t *by = rk_yn_get(&f->doc, body, "by", NULL);
    yaml_node_t *window = rk_yn_get(&f->doc, body, "window", NULL);
    if (!by)
        return rk_yn_fail(&f->doc, body, L->diag, RK_EPARSE,
                          "counter '%s' needs 'by': the field, or list of fields, it counts per",
                          name);
    if (!window)
        return rk_yn_fail(&f->doc, body, L->diag, RK_EPARSE,
                          "counter '%s' needs 'window': how far back it counts, e.g. 1h or 7d",
                          name);

    if (rk_load_grow((void **)&L->counters, &L->cap_counters, L->ncounters,
                     sizeof *L->counters))
        return RK_ENOMEM;
    counter_src *c = &L->counters[L->ncounters++]; /* counted first: freed whatever happens */
    *c = (counter_src){.pos = rk_load_pos(f, kn), .agg = RK_AGG_COUNT};
    if (!(c->name = strdup(name)))
        return RK_ENOMEM;
    if ((rc = counter_by(L, f, c, owner, by)) ||
        (rc = duration(L, f, window, owner, "window", RK_WINDOW_MIN_MS, RK_WINDOW_MAX_MS,
                       "30s to 90d", &c->window_ms)) ||
        (rc = counter_agg(L, f, c, owner, body)))
        return rc;
    return counter_when(L, f, c, owner, body);
}

int rk_load_counters(loader *L, file_ctx *f, yaml_node_t *key, yaml_node_t *val)
{
    if (rk_yn_is_empty(val))
        return 0;
    if (val->type != YAML_MAPPING_NODE)
        return rk_yn_fail(&f->doc, val, L->diag, RK_EPARSE,
                          "'counters' must be a mapping of counter names to counters");
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top;
         p++) {
        int rc = counter_one(L, f, rk_yn_node(&f->doc, p->key), rk_yn_node(&f->doc, p->value));
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- dynamic lists, phase one ------------------------------------------ */

int rk_load_dynlist(loader *L, file_ctx *f, rk_list_def *def, yaml_node_t *map)
{
    rk_ruleset *rs = L->rs;
    char owner[OWNER_MAX];
    snprintf(owner, sizeof owner, "list '%s'", def->name);
    yaml_node_t *fkey = NULL, *tkey = NULL;
    yaml_node_t *fraud = rk_yn_get(&f->doc, map, "add_on_fraud", NULL);
    yaml_node_t *ttl = rk_yn_get(&f->doc, map, "ttl", &tkey);
    if (rk_yn_get(&f->doc, map, "file", &fkey))
        return rk_yn_fail(&f->doc, fkey, L->diag, RK_EPARSE,
                          "%s: a dynamic list has no 'file' (its members are kept in the store)",
                          owner);
    if (ttl && !fraud)
        return rk_yn_fail(&f->doc, tkey, L->diag, RK_EPARSE,
                          "%s: 'ttl' needs 'add_on_fraud' (it is how long entries added on "
                          "fraud stay)",
                          owner);
    if (rk_load_grow((void **)&rs->dynlists, &L->cap_dynlists, rs->ndynlists,
                     sizeof *rs->dynlists) ||
        rk_load_grow((void **)&L->dyn, &L->cap_dyn, L->ndyn, sizeof *L->dyn))
        return RK_ENOMEM;
    def->dynamic = true;
    def->dyn_index = rs->ndynlists;
    rk_dynlist_info *info = &rs->dynlists[rs->ndynlists++];
    dynlist_src *src = &L->dyn[L->ndyn++];
    *info = (rk_dynlist_info){.name = def->name, .fraud_slot = -1};
    *src = (dynlist_src){0};
    int rc = 0;
    if (fraud)
        rc = field_ref(L, f, fraud, owner, "add_on_fraud", &src->field, &src->pos);
    if (!rc && ttl)
        rc = duration(L, f, ttl, owner, "ttl", TTL_MIN_MS, TTL_MAX_MS, "1s to 3650d",
                      &info->fraud_ttl_ms);
    return rc;
}

/* ---- phase two ----------------------------------------------------------- */

/* Resolves the `add_on_fraud:` fields of dynamic lists. */
static int resolve_dynlists(loader *L)
{
    rk_ruleset *rs = L->rs;
    for (int i = 0; i < L->ndyn; i++) {
        if (!L->dyn[i].field)
            continue;
        char owner[OWNER_MAX];
        snprintf(owner, sizeof owner, "list '%s'", rs->dynlists[i].name);
        int slot;
        rk_type type;
        int rc = field_slot(L, owner, L->dyn[i].field, L->dyn[i].pos, &slot, &type);
        if (rc)
            return rc;
        if (type != RK_T_STR && type != RK_T_INT)
            return rk_load_fail_at(L, L->dyn[i].pos, RK_ETYPE,
                                   "%s: 'add_on_fraud' needs a str or int field, '%s' is %s", owner,
                                   L->dyn[i].field, rk_type_name(type));
        rs->dynlists[i].fraud_slot = slot;
    }
    return 0;
}

/* Fills def from c, resolving its fields. */
static int counter_def(loader *L, const counter_src *c, rk_counter_def *def)
{
    const rk_schema *sc = &L->rs->schema;
    int slot = rk_schema_find(sc, c->name, strlen(c->name));
    if (slot >= 0) {
        rk_srcpos at = L->schema_pos[slot - RK_F__STD];
        return rk_load_fail_at(L, c->pos, RK_EEXISTS,
                               "counter name '%s' is already a schema field (declared at %s:%d:%d)",
                               c->name, rk_load_file_name(L, at.file), at.line, at.col);
    }
    char owner[OWNER_MAX];
    snprintf(owner, sizeof owner, "counter '%s'", c->name);
    *def = (rk_counter_def){.nby = c->nby,
                            .window_ms = c->window_ms,
                            .agg = c->agg,
                            .field_slot = -1,
                            .feedback = c->feedback,
                            .filter_id = c->when.text ? rk_hash64(c->when.text, c->when.len) : 0};
    snprintf(def->name, sizeof def->name, "%s", c->name);
    rk_type type;
    for (int i = 0; i < c->nby; i++) {
        int rc = field_slot(L, owner, c->by[i], c->by_pos[i], &def->by_slot[i], &type);
        if (rc)
            return rc;
        snprintf(def->by_name[i], sizeof def->by_name[i], "%s", c->by[i]);
    }
    if (!c->field)
        return 0;
    int rc = field_slot(L, owner, c->field, c->field_pos, &def->field_slot, &type);
    if (rc)
        return rc;
    if (c->agg == RK_AGG_SUM && type != RK_T_INT)
        return rk_load_fail_at(L, c->field_pos, RK_ETYPE,
                               "%s: 'sum' needs an int field, '%s' is %s", owner, c->field,
                               rk_type_name(type));
    snprintf(def->field_name, sizeof def->field_name, "%s", c->field);
    return 0;
}

/* A decided transaction remembers at most RK_FBKEY_MAX hashed entities for
 * feedback: one per feedback counter and one per `add_on_fraud` list. More
 * would be dropped silently when a label arrives, so refuse them here. */
static int check_feedback_keys(loader *L)
{
    int n = 0;
    for (int i = 0; i < L->ncounters; i++)
        if (L->counters[i].feedback != RK_LABEL_NONE && ++n > RK_FBKEY_MAX)
            return rk_load_fail_at(L, L->counters[i].pos, RK_ETOOBIG,
                                   "too many feedback counters and add_on_fraud lists (at most %d)",
                                   RK_FBKEY_MAX);
    for (int i = 0; i < L->ndyn; i++)
        if (L->dyn[i].field && ++n > RK_FBKEY_MAX)
            return rk_load_fail_at(L, L->dyn[i].pos, RK_ETOOBIG,
                                   "too many feedback counters and add_on_fraud lists (at most %d)",
                                   RK_FBKEY_MAX);
    return 0;
}

int rk_load_state_resolve(loader *L)
{
    rk_ruleset *rs = L->rs;
    rs->counter_base = RK_F__STD + rs->schema.n;
    int rc = resolve_dynlists(L);
    if (!rc)
        rc = check_feedback_keys(L);
    if (rc || L->ncounters == 0)
        return rc;
    rk_counter_def *defs = calloc((size_t)L->ncounters, sizeof *defs);
    if (!defs)
        return RK_ENOMEM;
    for (int i = 0; !rc && i < L->ncounters; i++)
        rc = counter_def(L, &L->counters[i], &defs[i]);
    rk_diag d;
    rk_diag_clear(&d);
    if (!rc && (rc = rk_counters_new(defs, L->ncounters, &rs->counters, &d)) != 0 &&
        rc != RK_ENOMEM) {
        /* Everything the store checks was checked above, so this is a
         * disagreement between the two; still, point at the counter named. */
        rk_srcpos at = L->counters[0].pos;
        for (int i = 0; i < L->ncounters; i++) {
            char prefix[OWNER_MAX + 2];
            snprintf(prefix, sizeof prefix, "counter '%s':", L->counters[i].name);
            if (strncmp(d.msg, prefix, strlen(prefix)) == 0)
                at = L->counters[i].pos;
        }
        rc = rk_load_fail_at(L, at, rc, "%s", d.msg[0] ? d.msg : rk_strerror(rc));
    }
    free(defs);
    if (!rc)
        rs->ncounters = L->ncounters;
    return rc;
}

int rk_load_state_compile(loader *L)
{
    rk_ruleset *rs = L->rs;
    if (rs->ncounters == 0)
        return 0;
    if (!(rs->counter_when = calloc((size_t)rs->ncounters, sizeof *rs->counter_when)))
        return RK_ENOMEM;
    for (int i = 0; i < rs->ncounters; i++) {
        const expr_src *w = &L->counters[i].when;
        if (!w->text)
            continue;
        int rc = rk_load_compile(L, w, RK_T_BOOL, rs->counter_base,
                                 "a counter's 'when' reads request fields, not counters", NULL,
                                 &rs->counter_when[i]);
        if (rc)
            return rc;
    }
    return 0;
}

void rk_load_state_free(loader *L)
{
    for (int i = 0; i < L->ncounters; i++) {
        counter_src *c = &L->counters[i];
        free(c->name);
        for (int j = 0; j < c->nby; j++)
            free(c->by[j]);
        free(c->field);
        free(c->when.text);
    }
    free(L->counters);
    for (int i = 0; i < L->ndyn; i++)
        free(L->dyn[i].field);
    free(L->dyn);
}
