/* Reading `riskctl test` case files (format in cases.h) with libyaml's
 * document API, which keeps every node's position so that each complaint
 * points at the offending key or value.
 *
 * Each case's `txn` becomes a msgpack map built the way a gateway's encoder
 * would build it: plain scalars are resolved as YAML 1.2's core schema does
 * (null, true/false, integers in the smallest encoding, floats, anything else
 * a string), quoted scalars are always strings, nested mappings and sequences
 * are packed as maps and arrays. The runner then decodes it with the server's
 * decoder, so a mistyped field fails here as it would on the wire.
 *
 * The reader stops at the first problem, like the rule loader: one precise
 * message beats a cascade. Everything borrowed (names, rule ids) points into
 * the YAML document, which the rk_case_file owns until rk_case_file_free. */
#include "cli/cases.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lib/err.h"

#define MAX_DEPTH 32 /* nesting limit inside a txn, as the wire decoder's RK_MAX_DEPTH */
#define WHAT_MAX 160 /* "case 'NAME': " prefixes and "counter 'NAME'" labels */

typedef struct reader {
    rk_case_file *cf; /* the file being filled */
    rk_diag *diag;    /* receives the first problem */
} reader;

/* A plain scalar resolved by the YAML 1.2 core schema. */
typedef enum scalar_kind {
    S_NULL,
    S_BOOL,
    S_INT,   /* fits int64 */
    S_UINT,  /* above INT64_MAX, fits uint64 */
    S_FLOAT,
    S_STR,
} scalar_kind;

typedef struct scalar {
    scalar_kind kind; /* what the text resolved to */
    bool b;           /* S_BOOL */
    int64_t i;        /* S_INT */
    uint64_t u;       /* S_UINT */
    double f;         /* S_FLOAT */
} scalar;

/* A key a mapping may have, and what the file gave for it. */
typedef struct key_slot {
    const char *key;       /* the accepted key */
    yaml_node_t *key_node; /* NULL when absent */
    yaml_node_t *value;    /* NULL when absent */
} key_slot;

static rk_case_pos pos_of(const yaml_node_t *n)
{
    return (rk_case_pos){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

static int vfail_at(reader *r, rk_case_pos at, int code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    rk_diag_set(r->diag, r->cf->path, at.line, at.col, "%s", msg);
    return code;
}

/* Reports a problem at a position; returns code. */
static int fail_at(reader *r, rk_case_pos at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(reader *r, rk_case_pos at, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_at(r, at, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Reports a problem with the shape of the file at node n; returns RK_EINVAL. */
static int fail(reader *r, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(reader *r, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_at(r, pos_of(n), RK_EINVAL, fmt, ap);
    va_end(ap);
    return RK_EINVAL;
}

static int nomem(reader *r)
{
    rk_diag_set(r->diag, r->cf->path, 0, 0, "out of memory");
    return RK_ENOMEM;
}

static yaml_node_t *node_at(reader *r, int index)
{
    return yaml_document_get_node(&r->cf->doc, index);
}

static const char *text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- Scalars ---- */

static bool all_digits(const char *s, int base)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        int c = *s;
        bool ok = base == 8    ? (c >= '0' && c <= '7')
                  : base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                  (c >= 'A' && c <= 'F'))
                               : (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float_text(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, digits++;
    }
    if (digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static bool is_one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

/* Resolves a scalar node. Quoted and block scalars are strings whatever they
 * hold: quoting is how a case says "this is text" (`account: "007"`). */
static int resolve(reader *r, const yaml_node_t *n, const char *prefix, scalar *out)
{
    const char *s = text(n);
    *out = (scalar){.kind = S_STR};
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    if (s[0] == '\0' || strcmp(s, "~") == 0 || is_one_of(s, "null", "Null", "NULL")) {
        out->kind = S_NULL;
        return 0;
    }
    if (is_one_of(s, "true", "True", "TRUE") || is_one_of(s, "false", "False", "FALSE")) {
        out->kind = S_BOOL;
        out->b = s[0] == 't' || s[0] == 'T';
        return 0;
    }
    const char *digits = s + (s[0] == '+' || s[0] == '-');
    int base = 0;
    if (all_digits(digits, 10))
        base = 10;
    else if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, 8))
        base = 8, digits = s + 2;
    else if (s[0] == '0' && s[1] == 'x' && all_digits(s + 2, 16))
        base = 16, digits = s + 2;
    if (base) {
        bool negative = s[0] == '-';
        errno = 0;
        unsigned long long u = strtoull(digits, NULL, base);
        if (errno == ERANGE || (negative && u > (unsigned long long)INT64_MAX + 1))
            return fail(r, n, "%sinteger %s is out of range", prefix, s);
        if (negative) {
            out->kind = S_INT;
            out->i = u == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        } else if (u > INT64_MAX) {
            out->kind = S_UINT;
            out->u = u;
        } else {
            out->kind = S_INT;
            out->i = (int64_t)u;
        }
        return 0;
    }
    if (is_float_text(s)) {
        out->kind = S_FLOAT;
        out->f = strtod(s, NULL);
        return 0;
    }
    const char *inf = s + (s[0] == '+' || s[0] == '-');
    if (is_one_of(inf, ".inf", ".Inf", ".INF")) {
        out->kind = S_FLOAT;
        out->f = s[0] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (is_one_of(s, ".nan", ".NaN", ".NAN")) {
        out->kind = S_FLOAT;
        out->f = NAN;
        return 0;
    }
    return 0;
}

/* A number for an override or an expected score. null is allowed only where
 * the caller says so (an override to "missing"). */
static int read_number(reader *r, const yaml_node_t *n, const char *prefix, const char *what,
                       bool allow_null, rk_value *out)
{
    scalar s = {.kind = S_STR};
    if (n->type == YAML_SCALAR_NODE) {
        int rc = resolve(r, n, prefix, &s);
        if (rc < 0)
            return rc;
    }
    switch (s.kind) {
    case S_INT:
        *out = rk_value_int(s.i);
        return 0;
    case S_UINT:
        return fail(r, n, "%s%s: %s is out of range", prefix, what, text(n));
    case S_FLOAT:
        *out = rk_value_float(s.f);
        return 0;
    case S_NULL:
        if (allow_null) {
            *out = rk_value_missing();
            return 0;
        }
        break;
    default:
        break;
    }
    return fail(r, n, "%s%s must be a number%s", prefix, what, allow_null ? " or null" : "");
}

/* ---- Mappings ---- */

/* Matches every key of map against slots, rejecting unknown (with a "did you
 * mean") and duplicate keys. Messages read "PREFIXunknown key 'k'WHERE". */
static int read_keys(reader *r, yaml_node_t *map, const char *prefix, const char *where,
                     key_slot *slots, int nslots)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(r, p->key), *v = node_at(r, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(r, k, "%skeys must be plain words", prefix);
        int i = 0;
        while (i < nslots && strcmp(slots[i].key, text(k)) != 0)
            i++;
        if (i == nslots) {
            const char *names[16];
            for (int j = 0; j < nslots && j < 16; j++)
                names[j] = slots[j].key;
            const char *near = rk_suggest(text(k), names, (size_t)(nslots < 16 ? nslots : 16));
            if (near)
                return fail(r, k, "%sunknown key '%s'%s (did you mean '%s'?)", prefix, text(k),
                            where, near);
            return fail(r, k, "%sunknown key '%s'%s", prefix, text(k), where);
        }
        if (slots[i].value)
            return fail(r, k, "%sduplicate key '%s'%s", prefix, text(k), where);
        slots[i].key_node = k;
        slots[i].value = v;
    }
    return 0;
}

static int pack_node(reader *r, msgpack_packer *pk, yaml_node_t *n, const char *prefix, int depth);

static int pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, s, len))
        return RK_ENOMEM;
    return 0;
}

static int pack_scalar(reader *r, msgpack_packer *pk, yaml_node_t *n, const char *prefix)
{
    scalar s;
    int rc = resolve(r, n, prefix, &s);
    if (rc < 0)
        return rc;
    switch (s.kind) {
    case S_NULL:
        rc = msgpack_pack_nil(pk);
        break;
    case S_BOOL:
        rc = s.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case S_INT:
        /* msgpack-c picks the smallest encoding, like most gateway encoders. */
        rc = msgpack_pack_int64(pk, s.i);
        break;
    case S_UINT:
        rc = msgpack_pack_uint64(pk, s.u);
        break;
    case S_FLOAT:
        rc = msgpack_pack_double(pk, s.f);
        break;
    case S_STR:
        return pack_str(pk, text(n), n->data.scalar.length);
    }
    return rc ? RK_ENOMEM : 0;
}

/* Packs a mapping's pairs (keys as strings). Top-level txn keys are recorded
 * in c->txn_keys when c is given. */
static int pack_pairs(reader *r, msgpack_packer *pk, yaml_node_t *map, const char *prefix,
                      int depth, rk_case *c)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(r, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(r, k, "%sfield names must be plain words", prefix);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (strcmp(text(node_at(r, q->key)), text(k)) == 0)
                return fail(r, k, "%sduplicate field '%s'", prefix, text(k));
        if (c)
            c->txn_keys[c->ntxn_keys++] = (rk_case_key){text(k), pos_of(k)};
        int rc = pack_str(pk, text(k), k->data.scalar.length);
        if (rc == 0)
            rc = pack_node(r, pk, node_at(r, p->value), prefix, depth + 1);
        if (rc < 0)
            return rc == RK_ENOMEM ? nomem(r) : rc;
    }
    return 0;
}

static int pack_node(reader *r, msgpack_packer *pk, yaml_node_t *n, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(r, n, "%svalues nested more than %d deep", prefix, MAX_DEPTH);
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return pack_scalar(r, pk, n, prefix);
    case YAML_SEQUENCE_NODE: {
        yaml_node_item_t *it = n->data.sequence.items.start;
        size_t count = (size_t)(n->data.sequence.items.top - it);
        if (msgpack_pack_array(pk, count))
            return RK_ENOMEM;
        for (; it < n->data.sequence.items.top; it++) {
            int rc = pack_node(r, pk, node_at(r, *it), prefix, depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case YAML_MAPPING_NODE: {
        size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        if (msgpack_pack_map(pk, count))
            return RK_ENOMEM;
        return pack_pairs(r, pk, n, prefix, depth, NULL);
    }
    default:
        return fail(r, n, "%sempty value", prefix);
    }
}

/* The case's txn as the msgpack map a gateway would send; `id` defaults to the
 * case name so that minimal cases stay minimal. */
static int pack_txn(reader *r, rk_case *c, yaml_node_t *txn, const char *prefix)
{
    if (txn->type != YAML_MAPPING_NODE)
        return fail(r, txn, "%stxn must be a mapping of request fields", prefix);
    c->txn_at = pos_of(txn);
    size_t count = (size_t)(txn->data.mapping.pairs.top - txn->data.mapping.pairs.start);
    c->txn_keys = calloc(count ? count : 1, sizeof *c->txn_keys);
    if (!c->txn_keys)
        return nomem(r);
    bool has_id = false;
    yaml_node_pair_t *pairs = txn->data.mapping.pairs.start;
    for (yaml_node_pair_t *p = pairs; p < txn->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(r, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(text(k), "id") == 0)
            has_id = true;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, count + !has_id) ? RK_ENOMEM : 0;
    if (rc == 0)
        rc = pack_pairs(r, &pk, txn, prefix, 0, c);
    if (rc == 0 && !has_id) {
        rc = pack_str(&pk, "id", 2);
        if (rc == 0)
            rc = pack_str(&pk, c->name, strlen(c->name));
    }
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc == RK_ENOMEM ? nomem(r) : rc;
    }
    c->txn = (uint8_t *)sb.data; /* ownership moves to the case */
    c->txn_len = sb.size;
    return 0;
}

/* ---- Cases ---- */

static int read_overrides(reader *r, rk_case *c, yaml_node_t *map, const char *prefix)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(r, map, "%scounters must be a mapping of counter names to values", prefix);
    size_t count = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    c->counters = calloc(count ? count : 1, sizeof *c->counters);
    if (!c->counters)
        return nomem(r);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(r, p->key), *v = node_at(r, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(r, k, "%scounter names must be plain words", prefix);
        for (int i = 0; i < c->ncounters; i++)
            if (strcmp(c->counters[i].name, text(k)) == 0)
                return fail(r, k, "%sduplicate counter '%s'", prefix, text(k));
        rk_case_override *o = &c->counters[c->ncounters++];
        o->name = text(k);
        o->at = pos_of(k);
        o->value_at = pos_of(v);
        char what[WHAT_MAX];
        snprintf(what, sizeof what, "counter '%s'", text(k));
        int rc = read_number(r, v, prefix, what, true, &o->value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* `lists: {NAME: [MEMBER, ...]}`: members are scalars, taken as the text
 * written (the runner compares an int field by its decimal text). */
static int read_lists(reader *r, rk_case *c, yaml_node_t *map, const char *prefix)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(r, map, "%slists must be a mapping of dynamic list names to members",
                    prefix);
    size_t count = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    c->lists = calloc(count ? count : 1, sizeof *c->lists);
    if (!c->lists)
        return nomem(r);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(r, p->key), *v = node_at(r, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(r, k, "%slist names must be plain words", prefix);
        for (int i = 0; i < c->nlists; i++)
            if (strcmp(c->lists[i].name, text(k)) == 0)
                return fail(r, k, "%sduplicate list '%s'", prefix, text(k));
        rk_case_list *l = &c->lists[c->nlists++];
        l->name = text(k);
        l->at = pos_of(k);
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(r, v, "%slist '%s' must be a sequence of members, e.g. [tok_1, tok_2]",
                        prefix, l->name);
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        l->members = calloc(n ? n : 1, sizeof *l->members);
        l->lens = calloc(n ? n : 1, sizeof *l->lens);
        if (!l->members || !l->lens)
            return nomem(r);
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            yaml_node_t *m = node_at(r, *it);
            scalar sc = {.kind = S_NULL};
            int rc = m->type == YAML_SCALAR_NODE ? resolve(r, m, prefix, &sc) : 0;
            if (rc < 0)
                return rc;
            if (sc.kind == S_NULL || m->data.scalar.length == 0)
                return fail(r, m, "%slist '%s': members must be values (text or numbers)",
                            prefix, l->name);
            l->members[l->nmembers] = text(m);
            l->lens[l->nmembers++] = m->data.scalar.length;
        }
    }
    return 0;
}

static int read_verdict(reader *r, yaml_node_t *n, const char *prefix, const char *what,
                        rk_verdict *out)
{
    const char *names[RK_VERDICT__COUNT];
    for (int v = 0; v < RK_VERDICT__COUNT; v++)
        names[v] = rk_verdict_name((rk_verdict)v);
    if (n->type != YAML_SCALAR_NODE)
        return fail(r, n, "%s%s must be allow, review or block", prefix, what);
    int v = rk_verdict_from_name(text(n));
    if (v >= 0) {
        *out = (rk_verdict)v;
        return 0;
    }
    const char *near = rk_suggest(text(n), names, RK_VERDICT__COUNT);
    if (near)
        return fail(r, n, "%sunknown %s '%s' (did you mean '%s'?)", prefix, what, text(n), near);
    return fail(r, n, "%sunknown %s '%s' (allow, review or block)", prefix, what, text(n));
}

static int read_ids(reader *r, yaml_node_t *n, const char *prefix, const char *what,
                    const char ***out, int *nout)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(r, n, "%s%s must be a list of rule ids, e.g. [rule_a, rule_b]", prefix, what);
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = calloc(count ? count : 1, sizeof **out);
    if (!*out)
        return nomem(r);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(r, *it);
        if (item->type != YAML_SCALAR_NODE)
            return fail(r, item, "%s%s must be a list of rule ids", prefix, what);
        (*out)[(*nout)++] = text(item);
    }
    return 0;
}

static int read_expect(reader *r, rk_case *c, yaml_node_t *n, const char *prefix)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(r, n, "%sexpect must be a mapping with at least 'decision'", prefix);
    enum { DECISION, REASONS, SHADOW_DECISION, SHADOW, SCORE, NKEYS };
    key_slot k[NKEYS] = {
        {.key = "decision"}, {.key = "reasons"}, {.key = "shadow_decision"},
        {.key = "shadow"},   {.key = "score"},
    };
    int rc = read_keys(r, n, prefix, " in expect", k, NKEYS);
    if (rc < 0)
        return rc;
    if (!k[DECISION].value)
        return fail(r, n, "%sexpect needs a 'decision' (allow, review or block)", prefix);
    rc = read_verdict(r, k[DECISION].value, prefix, "decision", &c->decision);
    if (rc == 0 && k[REASONS].value) {
        c->has_reasons = true;
        rc = read_ids(r, k[REASONS].value, prefix, "reasons", &c->reasons, &c->nreasons);
    }
    if (rc == 0 && k[SHADOW].value) {
        c->has_shadow = true;
        rc = read_ids(r, k[SHADOW].value, prefix, "shadow", &c->shadow, &c->nshadow);
    }
    if (rc == 0 && k[SHADOW_DECISION].value) {
        c->has_shadow_decision = true;
        rc = read_verdict(r, k[SHADOW_DECISION].value, prefix, "shadow_decision",
                          &c->shadow_decision);
    }
    if (rc == 0 && k[SCORE].value) {
        rk_value v;
        rc = read_number(r, k[SCORE].value, prefix, "score", false, &v);
        c->has_score = true;
        c->score = v.type == RK_T_INT ? (double)v.i : v.f;
    }
    return rc;
}

static int read_case(reader *r, rk_case *c, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(r, n, "a case must be a mapping with name, txn and expect");
    c->at = pos_of(n);
    enum { NAME, TXN, COUNTERS, LISTS, MODEL_SCORE, EXPECT, NKEYS };
    key_slot k[NKEYS] = {
        {.key = "name"},  {.key = "txn"},         {.key = "counters"},
        {.key = "lists"}, {.key = "model_score"}, {.key = "expect"},
    };
    /* The name first, so that every later message can say which case. */
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = node_at(r, p->key), *v = node_at(r, p->value);
        if (key->type == YAML_SCALAR_NODE && strcmp(text(key), "name") == 0) {
            if (v->type != YAML_SCALAR_NODE || text(v)[0] == '\0')
                return fail(r, v, "a case's name must be text");
            c->name = text(v);
        }
    }
    if (!c->name)
        return fail(r, n, "case has no 'name'");
    char prefix[WHAT_MAX];
    snprintf(prefix, sizeof prefix, "case '%.100s': ", c->name);
    int rc = read_keys(r, n, prefix, "", k, NKEYS);
    if (rc < 0)
        return rc;
    if (!k[TXN].value)
        return fail(r, n, "%smissing 'txn' (the request fields)", prefix);
    if (!k[EXPECT].value)
        return fail(r, n, "%smissing 'expect'", prefix);
    rc = pack_txn(r, c, k[TXN].value, prefix);
    if (rc == 0 && k[COUNTERS].value)
        rc = read_overrides(r, c, k[COUNTERS].value, prefix);
    if (rc == 0 && k[LISTS].value)
        rc = read_lists(r, c, k[LISTS].value, prefix);
    if (rc == 0 && k[MODEL_SCORE].value) {
        yaml_node_t *v = k[MODEL_SCORE].value;
        c->has_model_score = true;
        c->model_score.name = "model.score";
        c->model_score.at = pos_of(k[MODEL_SCORE].key_node);
        c->model_score.value_at = pos_of(v);
        rc = read_number(r, v, prefix, "model_score", true, &c->model_score.value);
    }
    if (rc == 0)
        rc = read_expect(r, c, k[EXPECT].value, prefix);
    return rc;
}

/* `rules:` is relative to the case file, like paths inside a rule file are
 * relative to that file: the pair can be moved or run from anywhere. */
static int resolve_rules(reader *r, yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || text(n)[0] == '\0')
        return fail(r, n, "rules must be the path of a rule file");
    const char *rules = text(n);
    const char *slash = strrchr(r->cf->path, '/');
    size_t dirlen = rules[0] == '/' || !slash ? 0 : (size_t)(slash - r->cf->path) + 1;
    size_t len = dirlen + strlen(rules) + 1;
    r->cf->rules = malloc(len);
    if (!r->cf->rules)
        return nomem(r);
    snprintf(r->cf->rules, len, "%.*s%s", (int)dirlen, r->cf->path, rules);
    r->cf->rules_at = pos_of(n);
    return 0;
}

static int read_file(reader *r)
{
    yaml_node_t *root = yaml_document_get_root_node(&r->cf->doc);
    if (!root)
        return fail_at(r, (rk_case_pos){0, 0}, RK_EINVAL,
                       "empty case file (expected 'rules' and 'cases')");
    if (root->type != YAML_MAPPING_NODE)
        return fail(r, root, "a case file is a mapping with 'rules' and 'cases'");
    enum { RULES, CASES, NKEYS };
    key_slot k[NKEYS] = {{.key = "rules"}, {.key = "cases"}};
    int rc = read_keys(r, root, "", "", k, NKEYS);
    if (rc < 0)
        return rc;
    if (!k[RULES].value)
        return fail(r, root, "missing 'rules' (the rule file these cases test)");
    if (!k[CASES].value)
        return fail(r, root, "missing 'cases'");
    rc = resolve_rules(r, k[RULES].value);
    if (rc < 0)
        return rc;
    yaml_node_t *cases = k[CASES].value;
    if (cases->type != YAML_SEQUENCE_NODE)
        return fail(r, cases, "cases must be a list");
    size_t count = (size_t)(cases->data.sequence.items.top - cases->data.sequence.items.start);
    /* A file that tests nothing passes silently in CI; that is never meant. */
    if (count == 0)
        return fail(r, cases, "no cases");
    r->cf->cases = calloc(count, sizeof *r->cf->cases);
    if (!r->cf->cases)
        return nomem(r);
    for (yaml_node_item_t *it = cases->data.sequence.items.start;
         it < cases->data.sequence.items.top; it++) {
        rc = read_case(r, &r->cf->cases[r->cf->ncases++], node_at(r, *it));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_yaml(reader *r, FILE *f)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return nomem(r);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &r->cf->doc)) {
        rk_case_pos at = {(int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1};
        if (parser.error == YAML_MEMORY_ERROR)
            rc = nomem(r);
        else
            rc = fail_at(r, at, RK_EPARSE, "invalid YAML: %s%s%s",
                         parser.problem ? parser.problem : "cannot parse",
                         parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        r->cf->has_doc = true;
    }
    yaml_parser_delete(&parser);
    return rc;
}

int rk_case_file_load(const char *path, rk_case_file **out, rk_diag *diag)
{
    rk_case_file *cf = calloc(1, sizeof *cf);
    if (!cf) {
        rk_diag_set(diag, path, 0, 0, "out of memory");
        return RK_ENOMEM;
    }
    cf->path = path;
    reader r = {cf, diag};
    FILE *f = fopen(path, "rb");
    if (!f) {
        rk_diag_set(diag, path, 0, 0, "cannot read: %s", strerror(errno));
        free(cf);
        return RK_EIO;
    }
    int rc = parse_yaml(&r, f);
    fclose(f);
    if (rc == 0)
        rc = read_file(&r);
    if (rc < 0) {
        rk_case_file_free(cf);
        return rc;
    }
    *out = cf;
    return 0;
}

void rk_case_file_free(rk_case_file *cf)
{
    if (!cf)
        return;
    for (int i = 0; i < cf->ncases; i++) {
        rk_case *c = &cf->cases[i];
        free(c->txn);
        free(c->txn_keys);
        free(c->counters);
        for (int j = 0; j < c->nlists; j++) {
            free(c->lists[j].members);
            free(c->lists[j].lens);
        }
        free(c->lists);
        free(c->reasons);
        free(c->shadow);
    }
    free(cf->cases);
    free(cf->rules);
    if (cf->has_doc)
        yaml_document_delete(&cf->doc);
    free(cf);
}
