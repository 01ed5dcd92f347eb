/* riskctl log: look into traffic logs and decision logs, and convert them to
 * and from CSV so that analysts can bring their own data (DESIGN.md section 6).
 *
 *   log dump FILE              one JSON line per record
 *   log to-csv FILE [-o OUT]   a header row, then one row per record
 *   log from-csv CSV -o OUT    a plain traffic log from a CSV with a header row
 *
 * Reading goes through the rlog reader, so every command verifies what it
 * reads the same way riskd's tools do: records before a corrupt one are
 * converted, then the command stops with the byte offset (exit 1); a torn
 * tail is reported on stderr and otherwise ignored (exit 0).
 *
 * CSV conventions (docs/traffic.md has them for analysts): the header lists
 * the keys, optionally typed as `name:int`, `name:float`, `name:str` or
 * `name:bool`; standard fields and `label` have their wire type whatever the
 * header says. An unquoted empty cell is an absent key; a quoted empty cell
 * ("") is the empty string. Untyped cells are read as what they look like
 * (integer, float, true/false, else string). to-csv writes the column order
 * of the canonical key order (rlog.h) and marks a string column `:str` when
 * one of its strings would otherwise read back as a number or bool, so that
 * .rlog -> CSV -> .rlog gives the same bytes for a log written in canonical
 * order. Values CSV cannot carry (nil, arrays, maps, bin) are written as JSON
 * text and come back as strings.
 *
 * Everything here is a batch tool: memory is allocated freely, per column and
 * per file, never per cell in the inner loops. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/diag.h"
#include "lib/err.h"
#include "proto/json.h"
#include "proto/mp.h"
#include "proto/rlog.h"
#include "proto/txn.h"

#define STD_LABEL RK_F__STD /* column kind of `label`, after the standard fields */
#define KIND_EXTRA -1       /* column kind of any other request key */
#define ORDER_MAX 1024      /* to-csv orders at most this many columns by the records' order */

/* ---- shared: opening a log, writing an output file ---- */

typedef struct logsrc {
    rk_rlog *r;       /* the reader */
    char *mem;        /* stdin's bytes when the path is "-" */
    const char *name; /* for messages */
} logsrc;

static void log_close(logsrc *src)
{
    rk_rlog_close(src->r);
    free(src->mem);
}

/* Returns RK_CLI_OK, or RK_CLI_FAIL after the message. */
static int log_open(const char *path, logsrc *src)
{
    memset(src, 0, sizeof *src);
    src->name = strcmp(path, "-") == 0 ? "stdin" : path;
    int rc;
    if (strcmp(path, "-") == 0) {
        size_t len;
        if ((rc = rk_cli_read_stream(stdin, &src->mem, &len)) < 0)
            return rk_cli_fail("cannot read stdin: %s", rk_strerror(rc));
        rc = rk_rlog_open_mem((const uint8_t *)src->mem, len, &src->r);
    } else {
        rc = rk_rlog_open(path, &src->r);
    }
    if (rc == 0)
        return RK_CLI_OK;
    int e = errno;
    free(src->mem);
    src->mem = NULL;
    if (rc == RK_ENOTFOUND)
        return rk_cli_fail("%s: no such file", path);
    return rk_cli_fail("%s: cannot read: %s", path, rc == RK_EIO ? strerror(e) : rk_strerror(rc));
}

/* How reading ended: RK_CLI_OK at the end (a torn tail reported), RK_CLI_FAIL
 * for a corrupt record. rc: rk_rlog_next's last return. */
static int log_end(const logsrc *src, int rc)
{
    if (rc < 0)
        return rk_cli_fail("%s: %s", src->name, rk_rlog_error(src->r));
    uint64_t at;
    if (rk_rlog_torn(src->r, &at))
        fprintf(stderr, "riskctl: %s: torn record at byte %llu (ignored)\n", src->name,
                (unsigned long long)at);
    return RK_CLI_OK;
}

/* An output written to a temporary file and renamed into place on success,
 * so a failed conversion never leaves half a file under the name asked for. */
typedef struct outfile {
    FILE *f;          /* where to write */
    const char *path; /* the final name; NULL for stdout */
    char tmp[4096];   /* the temporary name */
} outfile;

static int out_open(outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        return RK_CLI_OK;
    }
    o->path = path;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp%ld", path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f)
        return rk_cli_fail("cannot write %s: %s", o->tmp, strerror(errno));
    return RK_CLI_OK;
}

/* Finishes the output: keeps it when status is RK_CLI_OK, else removes it.
 * Returns the final status. */
static int out_close(outfile *o, int status)
{
    if (!o->f)
        return status;
    bool bad = ferror(o->f) != 0;
    if (!o->path) {
        bad |= fflush(stdout) != 0;
        if (bad && status == RK_CLI_OK)
            return rk_cli_fail("cannot write to stdout: %s", strerror(errno));
        return status;
    }
    bad |= fclose(o->f) != 0;
    if (status == RK_CLI_OK && !bad && rename(o->tmp, o->path) != 0)
        bad = true;
    if (status == RK_CLI_OK && bad) {
        unlink(o->tmp);
        return rk_cli_fail("cannot write %s: %s", o->path, strerror(errno));
    }
    if (status != RK_CLI_OK)
        unlink(o->tmp);
    return status;
}

/* The JSON text of the msgpack value in [p, p + n), or NULL (out of memory,
 * or not one value). The caller frees it. */
static char *json_of(const uint8_t *p, size_t n)
{
    char *s = NULL;
    return rk_msgpack_to_json(p, n, 0, &s) == 0 ? s : NULL;
}

/* Whether [p, p + n) holds exactly one complete msgpack value. */
static bool one_value(const uint8_t *p, size_t n)
{
    rk_mp m;
    rk_mp_init(&m, p, n);
    return n > 0 && rk_mp_skip(&m, RK_MP_DEPTH_MAX) == 0 && m.pos == n;
}

/* ---- dump ---- */

/* A decision record as one JSON object: its keys in order, the bins decoded
 * when they hold one msgpack value (riskd logs what it received, malformed
 * requests included: those print as base64), the crc left out (verified). */
static int dump_decision(FILE *f, const rk_rlog_rec *rec)
{
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, rec->raw, rec->len);
    rk_mp_read(&m, &it); /* the reader verified the whole record */
    const char *sep = "";
    fputc('{', f);
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item k, v;
        size_t k0 = m.pos;
        rk_mp peek = m;
        rk_mp_read(&peek, &k);
        rk_mp_skip(&m, RK_MP_DEPTH_MAX);
        size_t v0 = m.pos;
        peek = m;
        rk_mp_read(&peek, &v);
        rk_mp_skip(&m, RK_MP_DEPTH_MAX);
        if (rk_mp_str_eq(&k, "crc"))
            continue;
        char *ks = json_of(m.buf + k0, v0 - k0);
        char *vs = v.type == RK_MP_BIN && one_value(v.raw.p, v.raw.len)
                       ? json_of(v.raw.p, v.raw.len)
                       : json_of(m.buf + v0, m.pos - v0);
        if (ks && vs)
            fprintf(f, "%s%s:%s", sep, ks, vs);
        free(ks);
        free(vs);
        if (!ks || !vs)
            return RK_ENOMEM;
        sep = ",";
    }
    fputs("}\n", f);
    return 0;
}

static int run_dump(const rk_cli_cmd *cmd, int argc, char **argv)
{
    int npos;
    int rc = rk_cli_parse(cmd, argc, argv, NULL, &npos);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (npos != 1)
        return rk_cli_usage(cmd, npos ? "dump takes one FILE" : "dump needs a FILE (or - for stdin)");
    logsrc src;
    if ((rc = log_open(argv[1], &src)))
        return rc;
    rk_rlog_rec rec;
    int status = RK_CLI_OK;
    while ((rc = rk_rlog_next(src.r, &rec)) == 1) {
        char *s = NULL;
        if (rec.resp ? dump_decision(stdout, &rec) < 0 : (s = json_of(rec.req, rec.req_len)) == NULL) {
            status = rk_cli_fail("out of memory");
            break;
        }
        if (s) {
            puts(s);
            free(s);
        }
    }
    if (status == RK_CLI_OK)
        status = log_end(&src, rc);
    log_close(&src);
    if (fflush(stdout) != 0 && status == RK_CLI_OK)
        status = rk_cli_fail("cannot write to stdout: %s", strerror(errno));
    return status;
}

/* ---- cell typing, shared by both directions ---- */

static const char *const type_suffixes[] = {"int", "float", "str", "bool"};
static const rk_type suffix_types[] = {RK_T_INT, RK_T_FLOAT, RK_T_STR, RK_T_BOOL};

/* Parses a whole cell as an int64. */
static bool parse_int(const char *s, size_t n, int64_t *out)
{
    char b[32];
    if (n == 0 || n >= sizeof b)
        return false;
    for (size_t i = s[0] == '-' ? 1 : 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    if (n == 1 && s[0] == '-')
        return false;
    memcpy(b, s, n);
    b[n] = '\0';
    errno = 0;
    long long v = strtoll(b, NULL, 10);
    if (errno)
        return false;
    *out = v;
    return true;
}

/* Parses a whole cell as a finite number written in decimal (no inf, nan or hex). */
static bool parse_float(const char *s, size_t n, double *out)
{
    char b[64];
    bool digit = false;
    if (n == 0 || n >= sizeof b)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digit = true;
        else if (!strchr("+-.eE", s[i]) || s[i] == '\0')
            return false;
    }
    memcpy(b, s, n);
    b[n] = '\0';
    char *end;
    double v = strtod(b, &end);
    if (!digit || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* What an untyped cell reads as: an integer, a float, true/false, else a string. */
static rk_value infer(const char *s, size_t n)
{
    int64_t i;
    double f;
    if (parse_int(s, n, &i))
        return rk_value_int(i);
    if (parse_float(s, n, &f))
        return rk_value_float(f);
    if (n == 4 && memcmp(s, "true", 4) == 0)
        return rk_value_bool(true);
    if (n == 5 && memcmp(s, "false", 5) == 0)
        return rk_value_bool(false);
    return rk_value_str(s, (uint32_t)n);
}

/* The column kind of a key: a standard field's index, STD_LABEL, or KIND_EXTRA. */
static int kind_of(const char *key, size_t n)
{
    if (n == 5 && memcmp(key, "label", 5) == 0)
        return STD_LABEL;
    int f = rk_field_find(key, n);
    return f >= 0 ? f : KIND_EXTRA;
}

/* ---- to-csv ---- */

typedef struct column {
    char *name;     /* the key, malloc'd, NUL-terminated */
    uint32_t len;   /* its length in bytes */
    int kind;       /* RK_F_* of a standard field, STD_LABEL or KIND_EXTRA */
    size_t seen;    /* first-seen rank; after pass 1, the rank among the other keys */
    bool nonstr;    /* some value in the column is not a string */
    bool ambiguous; /* some string would read back as a number or bool */
} column;

typedef struct table {
    column *c;      /* the columns: first-seen order in pass 1, output order after */
    size_t n;       /* columns used */
    size_t cap;     /* columns allocated */
    size_t hint;    /* where the next key most likely is: logs repeat their key order */
    bool decisions; /* a decision record was seen: decision columns follow the request's */
    uint8_t *after; /* cap x cap: after[i * cap + j], other key j directly followed i;
                       NULL beyond ORDER_MAX columns (first-seen order then) */
    long prev;      /* pass 1: the record's last other key so far, -1 at its start */
} table;

/* The decision columns, after every request column. */
enum { DC_DECISION, DC_SCORE, DC_REASONS, DC_RULESET, DC_ERROR, DC__COUNT };
static const char *const decision_columns[DC__COUNT] = {"decision", "score", "reasons",
                                                        "ruleset", "error"};

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->c[i].name);
    free(t->c);
    free(t->after);
}

/* The request column holding key, or -1. */
static long table_find(table *t, const uint8_t *key, uint32_t n)
{
    for (size_t k = 0; k < t->n; k++) {
        size_t i = (t->hint + k) % t->n;
        column *c = &t->c[i];
        if (c->len == n && memcmp(c->name, key, n) == 0) {
            t->hint = i + 1 < t->n ? i + 1 : 0;
            return (long)i;
        }
    }
    return -1;
}

static long table_add(table *t, const char *key, uint32_t n, int kind)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        column *c = realloc(t->c, cap * sizeof *c);
        if (!c)
            return -1;
        t->c = c;
        uint8_t *after = cap <= ORDER_MAX && (t->after || t->cap == 0) ? calloc(cap * cap, 1) : NULL;
        for (size_t i = 0; after && i < t->n; i++)
            memcpy(after + i * cap, t->after + i * t->cap, t->n);
        free(t->after);
        t->after = after;
        t->cap = cap;
    }
    char *name = malloc((size_t)n + 1);
    if (!name)
        return -1;
    memcpy(name, key, n);
    name[n] = '\0';
    t->c[t->n] = (column){.name = name, .len = n, .kind = kind, .seen = t->n};
    return (long)t->n++;
}

/* Orders the other keys (not standard fields or label) so that every
 * record's own order of them is kept: a topological order of "directly
 * followed" over all records, ties broken by first sight. First sight alone
 * would not do: a record with keys a, c followed by one with a, b, c must
 * give a, b, c. Keys that no record orders (or orders both ways) keep their
 * first-seen order. */
static void order_extras(table *t)
{
    size_t n = t->n, placed = 0;
    if (!t->after)
        return;
    size_t *indeg = calloc(n + 1, sizeof *indeg), *rank = calloc(n + 1, sizeof *rank);
    bool *done = calloc(n + 1, 1);
    for (size_t i = 0; indeg && i < n; i++)
        for (size_t j = 0; j < n; j++)
            indeg[j] += t->after[i * t->cap + j];
    while (indeg && rank && done && placed < n) {
        size_t best = n;
        for (size_t j = 0; j < n; j++) /* columns are in first-seen order */
            if (!done[j] && (best == n || (indeg[j] == 0 && indeg[best] != 0)))
                best = j;
        done[best] = true;
        rank[best] = placed++;
        for (size_t j = 0; j < n; j++)
            if (t->after[best * t->cap + j])
                indeg[j]--;
    }
    for (size_t i = 0; placed == n && i < n; i++)
        t->c[i].seen = rank[i];
    free(indeg);
    free(rank);
    free(done);
}

static int rank_of(const column *c) { return c->kind >= 0 ? c->kind : STD_LABEL + 1; }

static int cmp_columns(const void *a, const void *b)
{
    const column *x = a, *y = b;
    int rx = rank_of(x), ry = rank_of(y);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return x->seen < y->seen ? -1 : x->seen > y->seen;
}

/* The request map of a record, or NULL when a decision record logged a
 * request that is not a map (riskd answered it with an error). */
static const uint8_t *request_map(const rk_rlog_rec *rec, size_t *len)
{
    *len = rec->req_len;
    if (rec->resp && !one_value(rec->req, rec->req_len))
        return NULL;
    return rec->req;
}

/* Calls fn for each string-keyed pair of the request map: key, and the value's span. */
typedef int (*pair_fn)(void *arg, const rk_mp_item *key, const uint8_t *v, size_t vlen,
                       const rk_mp_item *val);

static int each_pair(const uint8_t *p, size_t n, pair_fn fn, void *arg)
{
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, p, n);
    if (rk_mp_read(&m, &it) < 0 || it.type != RK_MP_MAP)
        return 0;
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item k, v;
        rk_mp peek = m;
        if (rk_mp_read(&peek, &k) < 0 || rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
            return 0;
        size_t v0 = m.pos;
        peek = m;
        if (rk_mp_read(&peek, &v) < 0 || rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
            return 0;
        if (k.type != RK_MP_STR)
            continue;
        int rc = fn(arg, &k, p + v0, m.pos - v0, &v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int collect_pair(void *arg, const rk_mp_item *k, const uint8_t *v, size_t vlen,
                        const rk_mp_item *val)
{
    table *t = arg;
    long i = table_find(t, k->raw.p, k->raw.len);
    if (i < 0)
        i = table_add(t, (const char *)k->raw.p, k->raw.len, kind_of((const char *)k->raw.p, k->raw.len));
    if (i < 0)
        return RK_ENOMEM;
    column *c = &t->c[i];
    if (c->kind == KIND_EXTRA && t->after) {
        if (t->prev >= 0 && t->prev != i)
            t->after[(size_t)t->prev * t->cap + (size_t)i] = 1;
        t->prev = i;
    }
    if (val->type != RK_MP_STR)
        c->nonstr = true;
    else if (val->raw.len > 0 && infer((const char *)val->raw.p, val->raw.len).type != RK_T_STR)
        c->ambiguous = true;
    return 0;
}

/* Writes the msgpack value in [p, p + n) as a cell. */
static int put_value(FILE *f, const uint8_t *p, size_t n)
{
    rk_mp m;
    rk_mp_item v;
    rk_mp_init(&m, p, n);
    if (rk_mp_read(&m, &v) < 0)
        return 0;
    switch (v.type) {
    case RK_MP_NIL:
        return 0;
    case RK_MP_STR:
        rk_cli_csv_cell(f, (const char *)v.raw.p, v.raw.len);
        return 0;
    case RK_MP_UINT:
        fprintf(f, "%llu", (unsigned long long)v.u);
        return 0;
    case RK_MP_INT:
        fprintf(f, "%lld", (long long)v.i);
        return 0;
    case RK_MP_BOOL:
        fputs(v.b ? "true" : "false", f);
        return 0;
    default: { /* floats in their shortest round-trip form; the rest as JSON */
        char *s = json_of(p, n);
        if (!s)
            return RK_ENOMEM;
        rk_cli_csv_cell(f, s, strlen(s));
        free(s);
        return 0;
    }
    }
}

/* One row being assembled: the span of each column's value. */
typedef struct row {
    table *t;          /* the columns */
    const uint8_t **p; /* value span per column, NULL when absent */
    size_t *n;         /* its length */
} row;

static int fill_pair(void *arg, const rk_mp_item *k, const uint8_t *v, size_t vlen,
                     const rk_mp_item *val)
{
    row *r = arg;
    long i = table_find(r->t, k->raw.p, k->raw.len);
    if (i >= 0) {
        r->p[i] = v;
        r->n[i] = vlen;
    }
    return 0;
}

/* The spans of a reply's decision, score, reasons and error values. */
typedef struct reply_cells {
    const uint8_t *p[DC__COUNT]; /* value span per decision column, NULL when absent */
    size_t n[DC__COUNT];         /* its length */
} reply_cells;

static int reply_pair(void *arg, const rk_mp_item *k, const uint8_t *v, size_t vlen,
                      const rk_mp_item *val)
{
    reply_cells *rc = arg;
    for (int d = 0; d < DC__COUNT; d++)
        if (d != DC_RULESET && rk_mp_str_eq(k, decision_columns[d])) {
            rc->p[d] = v;
            rc->n[d] = vlen;
        }
    return 0;
}

/* Writes the reasons array as one cell, joined by '|'. */
static int put_reasons(FILE *f, const uint8_t *p, size_t n)
{
    rk_mp m;
    rk_mp_item a, s;
    rk_mp_init(&m, p, n);
    if (rk_mp_read(&m, &a) < 0 || a.type != RK_MP_ARRAY)
        return put_value(f, p, n);
    size_t cap = 0, len = 0;
    for (rk_mp c = m; rk_mp_read(&c, &s) == 0 && s.type == RK_MP_STR;)
        cap += s.raw.len + 1;
    char *buf = malloc(cap + 1);
    if (!buf)
        return RK_ENOMEM;
    for (uint32_t i = 0; i < a.n && rk_mp_read(&m, &s) == 0 && s.type == RK_MP_STR; i++) {
        if (i)
            buf[len++] = '|';
        memcpy(buf + len, s.raw.p, s.raw.len);
        len += s.raw.len;
    }
    if (len > 0)
        rk_cli_csv_cell(f, buf, len);
    free(buf);
    return 0;
}

/* Writes the decision columns of a decision record (empty for a plain one),
 * each preceded by a comma except the first when lead is false. */
static int put_decision_cells(FILE *f, const rk_rlog_rec *rec, bool lead)
{
    reply_cells rc = {{NULL}, {0}};
    if (rec->resp)
        each_pair(rec->resp, rec->resp_len, reply_pair, &rc);
    int err = 0;
    for (int d = 0; d < DC__COUNT && err == 0; d++) {
        if (d > 0 || lead)
            fputc(',', f);
        if (d == DC_RULESET) {
            if (rec->ruleset)
                rk_cli_csv_cell(f, rec->ruleset, rec->ruleset_len);
        } else if (!rc.p[d]) {
            continue;
        } else if (d == DC_REASONS) {
            err = put_reasons(f, rc.p[d], rc.n[d]);
        } else if (d == DC_ERROR) {
            rk_mp_item code;
            if (rk_mp_map_find(rc.p[d], rc.n[d], "code", &code, NULL) == 0 &&
                code.type == RK_MP_STR)
                rk_cli_csv_cell(f, (const char *)code.raw.p, code.raw.len);
        } else {
            err = put_value(f, rc.p[d], rc.n[d]);
        }
    }
    return err;
}

/* Pass 1: the columns. Returns the last rk_rlog_next code, or RK_ENOMEM. */
static int collect_columns(rk_rlog *r, table *t)
{
    rk_rlog_rec rec;
    int rc;
    while ((rc = rk_rlog_next(r, &rec)) == 1) {
        size_t n;
        const uint8_t *req = request_map(&rec, &n);
        if (rec.resp)
            t->decisions = true;
        t->prev = -1;
        if (req && each_pair(req, n, collect_pair, t) < 0)
            return RK_ENOMEM;
    }
    if (rc < 0)
        return rc;
    order_extras(t);
    qsort(t->c, t->n, sizeof *t->c, cmp_columns);
    t->hint = 0;
    return 0;
}

static void put_header(FILE *f, const table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const column *c = &t->c[i];
        if (i)
            fputc(',', f);
        bool typed = c->kind == KIND_EXTRA && !c->nonstr && c->ambiguous;
        if (!typed) {
            rk_cli_csv_cell(f, c->name, c->len);
            continue;
        }
        char *s = malloc((size_t)c->len + 5);
        if (!s)
            continue; /* out of memory for a header cell: ferror follows soon enough */
        memcpy(s, c->name, c->len);
        memcpy(s + c->len, ":str", 4);
        rk_cli_csv_cell(f, s, (size_t)c->len + 4);
        free(s);
    }
    if (t->decisions)
        for (int d = 0; d < DC__COUNT; d++)
            fprintf(f, "%s%s", t->n || d ? "," : "", decision_columns[d]);
    fputc('\n', f);
}

/* Pass 2: the rows. Returns the last rk_rlog_next code, or RK_ENOMEM. */
static int put_rows(FILE *f, rk_rlog *r, table *t)
{
    row w = {t, calloc(t->n + 1, sizeof *w.p), calloc(t->n + 1, sizeof *w.n)};
    int rc = w.p && w.n ? 0 : RK_ENOMEM;
    rk_rlog_rec rec;
    while (rc == 0 && (rc = rk_rlog_next(r, &rec)) == 1) {
        rc = 0;
        memset(w.p, 0, t->n * sizeof *w.p);
        size_t n;
        const uint8_t *req = request_map(&rec, &n);
        if (req)
            each_pair(req, n, fill_pair, &w);
        for (size_t i = 0; i < t->n && rc == 0; i++) {
            if (i)
                fputc(',', f);
            if (w.p[i])
                rc = put_value(f, w.p[i], w.n[i]);
        }
        if (rc == 0 && t->decisions)
            rc = put_decision_cells(f, &rec, t->n > 0);
        fputc('\n', f);
    }
    free(w.p);
    free(w.n);
    return rc;
}

/* Parses to-csv's and from-csv's `FILE [-o OUT]`: one input, left in
 * argv[1]; none and extra are the messages for no FILE and for more than one.
 * Returns 0, RK_CLI_HELP (help printed) or RK_CLI_USAGE. */
static int parse_convert(const rk_cli_cmd *cmd, int argc, char **argv, const char *none,
                         const char *extra, const char **out_path)
{
    const rk_cli_opt opts[] = {
        {"-o", "OUT", out_path, NULL},
        {"--output", "OUT", out_path, NULL},
        {NULL, NULL, NULL, NULL},
    };
    int npos;
    int rc = rk_cli_parse(cmd, argc, argv, opts, &npos);
    if (rc)
        return rc;
    if (npos != 1)
        return rk_cli_usage(cmd, "%s", npos ? extra : none);
    return 0;
}

static int run_to_csv(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const char *out_path = NULL;
    int rc = parse_convert(cmd, argc, argv, "to-csv needs a FILE (or - for stdin)",
                           "to-csv takes one FILE", &out_path);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    logsrc src;
    if ((rc = log_open(argv[1], &src)))
        return rc;
    table t = {0};
    rc = collect_columns(src.r, &t);
    int status = rc == RK_ENOMEM ? rk_cli_fail("out of memory") : log_end(&src, rc);
    outfile out;
    if (status == RK_CLI_OK && (status = out_open(&out, out_path)) == RK_CLI_OK) {
        put_header(out.f, &t);
        rk_rlog_rewind(src.r);
        rc = put_rows(out.f, src.r, &t);
        status = rc == RK_ENOMEM ? rk_cli_fail("out of memory") : RK_CLI_OK;
        status = out_close(&out, status);
    }
    table_free(&t);
    log_close(&src);
    return status;
}

/* ---- from-csv ---- */

/* A CSV text being read, unescaped in place as cells are read. */
typedef struct csv {
    char *buf;        /* the whole text, NUL-terminated */
    size_t len;       /* its length */
    size_t pos;       /* the next byte to read */
    int line;         /* 1-based line of pos */
    size_t line_at;   /* offset of that line's first byte */
    const char *name; /* the file, for messages */
} csv;

typedef struct cell {
    char *s;     /* the cell's text, unescaped, inside csv.buf */
    size_t n;    /* its length */
    bool quoted; /* it was written in quotes */
    int line;    /* where it starts, 1-based */
    int col;     /* column in bytes, 1-based */
} cell;

/* One column of the CSV header. */
typedef struct hcol {
    const char *name; /* the key, inside csv.buf */
    size_t len;       /* its length */
    int kind;         /* RK_F_* of a standard field, STD_LABEL or KIND_EXTRA */
    rk_type type;     /* the type its cells must have; RK_T_MISSING: inferred per cell */
} hcol;

__attribute__((format(printf, 4, 5))) static int csv_error(const csv *c, int line, int col,
                                                           const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    rk_cli_fail("%s:%d:%d: %s", c->name, line, col, what);
    return RK_CLI_USAGE;
}

static void next_line(csv *c)
{
    c->line++;
    c->line_at = c->pos;
}

/* Reads the cell at pos. Returns 1 when another cell follows on the same
 * row, 2 when the row ended, or -1 after reporting. */
static int csv_cell(csv *c, cell *x)
{
    x->line = c->line;
    x->col = (int)(c->pos - c->line_at) + 1;
    x->quoted = c->pos < c->len && c->buf[c->pos] == '"';
    char *w = c->buf + c->pos;
    x->s = w;
    if (x->quoted) {
        c->pos++;
        for (;;) {
            if (c->pos >= c->len) {
                csv_error(c, x->line, x->col, "quoted cell never closed");
                return -1;
            }
            char ch = c->buf[c->pos++];
            if (ch == '"') {
                if (c->pos < c->len && c->buf[c->pos] == '"') {
                    c->pos++;
                    *w++ = '"';
                    continue;
                }
                break;
            }
            if (ch == '\n')
                next_line(c);
            *w++ = ch;
        }
        x->n = (size_t)(w - x->s);
        if (c->pos < c->len && !strchr(",\r\n", c->buf[c->pos])) {
            csv_error(c, c->line, (int)(c->pos - c->line_at) + 1,
                      "unexpected '%c' after a quoted cell (expected a comma or the end of the row)",
                      c->buf[c->pos]);
            return -1;
        }
    } else {
        while (c->pos < c->len && !strchr(",\r\n", c->buf[c->pos]))
            c->pos++;
        x->n = (size_t)(c->buf + c->pos - x->s);
    }
    if (c->pos >= c->len)
        return 2;
    char end = c->buf[c->pos++];
    if (end == ',')
        return 1;
    if (end == '\r' && c->pos < c->len && c->buf[c->pos] == '\n')
        c->pos++;
    next_line(c);
    return 2;
}

/* Reads one row into x[0..max). Returns the cell count, 0 at the end of the
 * text, or -1 after reporting. Blank lines are skipped. */
static int csv_row(csv *c, cell *x, int max)
{
    for (;;) {
        if (c->pos >= c->len)
            return 0;
        int n = 0, rc;
        do {
            if (n == max) {
                csv_error(c, c->line, (int)(c->pos - c->line_at) + 1,
                          "more cells than the header's %d", max);
                return -1;
            }
            if ((rc = csv_cell(c, &x[n++])) < 0)
                return -1;
        } while (rc == 1);
        if (n == 1 && x[0].n == 0 && !x[0].quoted)
            continue;
        return n;
    }
}

static int parse_header(csv *c, const cell *x, int n, hcol *h)
{
    for (int i = 0; i < n; i++) {
        const char *name = x[i].s;
        size_t len = x[i].n;
        rk_type type = RK_T_MISSING;
        const char *colon = len ? memrchr(name, ':', len) : NULL;
        for (size_t k = 0; colon && k < sizeof type_suffixes / sizeof *type_suffixes; k++) {
            size_t sl = strlen(type_suffixes[k]);
            if ((size_t)(name + len - colon - 1) == sl && memcmp(colon + 1, type_suffixes[k], sl) == 0) {
                type = suffix_types[k];
                len = (size_t)(colon - name);
            }
        }
        if (len == 0)
            return csv_error(c, x[i].line, x[i].col, "empty column name");
        int kind = kind_of(name, len);
        rk_type wire = kind == STD_LABEL ? RK_T_INT : kind >= 0 ? rk_field_type(kind) : type;
        if (type != RK_T_MISSING && type != wire)
            return csv_error(c, x[i].line, x[i].col, "column '%.*s' is a standard field of type %s, not %s",
                             (int)len, name, rk_type_name(wire), rk_type_name(type));
        for (int j = 0; j < i; j++)
            if (h[j].len == len && memcmp(h[j].name, name, len) == 0)
                return csv_error(c, x[i].line, x[i].col, "duplicate column '%.*s'", (int)len, name);
        h[i] = (hcol){.name = name, .len = len, .kind = kind, .type = wire};
    }
    return 0;
}

/* The value of cell x in column h. Returns 0, or RK_CLI_USAGE after reporting. */
static int cell_value(const csv *c, const hcol *h, const cell *x, rk_value *v)
{
    if (x->n == 0) {
        bool str = h->type == RK_T_STR || h->type == RK_T_MISSING;
        *v = x->quoted && str ? rk_value_str(x->s, 0) : rk_value_missing();
        return 0;
    }
    if (x->n > UINT32_MAX)
        return csv_error(c, x->line, x->col, "column '%.*s': cell too long", (int)h->len, h->name);
    int64_t i;
    double f;
    const char *want = NULL;
    switch (h->type) {
    case RK_T_MISSING:
        *v = infer(x->s, x->n);
        return 0;
    case RK_T_STR:
        *v = rk_value_str(x->s, (uint32_t)x->n);
        return 0;
    case RK_T_INT:
        if (parse_int(x->s, x->n, &i)) {
            *v = rk_value_int(i);
            return 0;
        }
        want = "an integer";
        break;
    case RK_T_FLOAT:
        if (parse_float(x->s, x->n, &f)) {
            *v = rk_value_float(f);
            return 0;
        }
        want = "a number";
        break;
    default:
        if (x->n == 4 && memcmp(x->s, "true", 4) == 0) {
            *v = rk_value_bool(true);
            return 0;
        }
        if (x->n == 5 && memcmp(x->s, "false", 5) == 0) {
            *v = rk_value_bool(false);
            return 0;
        }
        want = "true or false";
        break;
    }
    int shown = x->n > 40 ? 40 : (int)x->n;
    return csv_error(c, x->line, x->col, "column '%.*s': expected %s, got '%.*s%s'", (int)h->len,
                     h->name, want, shown, x->s, x->n > 40 ? "..." : "");
}

static int convert_rows(csv *c, FILE *out)
{
    int max = 1;
    bool quoted = false;
    for (size_t i = c->pos; i < c->len; i++) { /* the header's cells, at most */
        if (c->buf[i] == '"')
            quoted = !quoted;
        else if (c->buf[i] == ',')
            max++;
        else if (c->buf[i] == '\n' && !quoted)
            break;
    }
    cell *x = calloc((size_t)max, sizeof *x);
    hcol *h = calloc((size_t)max, sizeof *h);
    rk_rlog_field *fl = calloc((size_t)max, sizeof *fl);
    uint8_t *mem = malloc(RK_RLOG_REC_MAX);
    int status = RK_CLI_OK, n = -1;
    if (!x || !h || !fl || !mem)
        status = rk_cli_fail("out of memory");
    else if ((n = csv_row(c, x, max)) == 0)
        status = csv_error(c, 1, 1, "empty file: a header row naming the columns is required");
    else if (n < 0 || parse_header(c, x, n, h))
        status = RK_CLI_USAGE;
    rk_outbuf ob;
    if (mem)
        rk_outbuf_init(&ob, mem, RK_RLOG_REC_MAX);
    for (int got; status == RK_CLI_OK && (got = csv_row(c, x, n)) != 0;) {
        if (got < 0) {
            status = RK_CLI_USAGE;
            break;
        }
        if (got != n) {
            status = csv_error(c, x[0].line, x[0].col, "%d cell%s, the header has %d", got,
                               got == 1 ? "" : "s", n);
            break;
        }
        for (int i = 0; i < n && status == RK_CLI_OK; i++) {
            fl[i].key = h[i].name;
            fl[i].key_len = (uint32_t)h[i].len;
            status = cell_value(c, &h[i], &x[i], &fl[i].v);
        }
        if (status != RK_CLI_OK)
            break;
        rk_outbuf_reset(&ob);
        if (rk_rlog_encode_traffic(&ob, fl, n) < 0) {
            status = csv_error(c, x[0].line, 1, "row too large for a record (over %u bytes)",
                               RK_RLOG_REC_MAX);
            break;
        }
        fwrite(ob.buf, 1, ob.len, out);
    }
    free(x);
    free(h);
    free(fl);
    free(mem);
    return status;
}

static int run_from_csv(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const char *out_path = NULL;
    int rc = parse_convert(cmd, argc, argv, "from-csv needs a CSV file (or - for stdin)",
                           "from-csv takes one CSV file", &out_path);
    if (rc)
        return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
    if (!out_path)
        return rk_cli_usage(cmd, "from-csv needs -o OUT.rlog (use -o - for stdout)");
    const char *path = argv[1];
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *in = is_stdin ? stdin : fopen(path, "rb");
    if (!in)
        return errno == ENOENT ? rk_cli_fail("%s: no such file", path)
                               : rk_cli_fail("%s: cannot read: %s", path, strerror(errno));
    csv c = {.line = 1, .name = is_stdin ? "stdin" : path};
    rc = rk_cli_read_stream(in, &c.buf, &c.len);
    if (!is_stdin)
        fclose(in);
    if (rc < 0)
        return rk_cli_fail("%s: cannot read: %s", c.name, rk_strerror(rc));
    if (c.len >= 3 && memcmp(c.buf, "\xef\xbb\xbf", 3) == 0) /* a spreadsheet's UTF-8 BOM */
        c.pos = c.line_at = 3;
    outfile out;
    int status = out_open(&out, out_path);
    if (status == RK_CLI_OK)
        status = out_close(&out, convert_rows(&c, out.f));
    free(c.buf);
    return status;
}

/* ---- the `log` command family ---- */

static const rk_cli_cmd log_dump = {
    .name = "log dump",
    .args = "FILE",
    .summary = "print a traffic or decision log as JSON lines",
    .help = "Prints each record of FILE (a traffic log or a decision log; - reads stdin) as\n"
            "one line of JSON. A decision-log record prints as\n"
            "  {\"req\":{...},\"resp\":{...},\"ruleset\":\"name@version\",\"at\":MS}\n"
            "with its crc verified (a request riskd could not parse prints as base64).\n"
            "\n"
            "A corrupt record stops the dump with its byte offset (exit 1), after the\n"
            "records before it. A torn last record (a crash mid-append) is reported on\n"
            "stderr and ignored (exit 0).\n",
    .run = run_dump,
};

static const rk_cli_cmd log_to_csv = {
    .name = "log to-csv",
    .args = "FILE [-o OUT.csv]",
    .summary = "convert a traffic or decision log to CSV",
    .help = "Writes FILE (- reads stdin) as CSV to OUT (default stdout): a header row with\n"
            "every key seen (standard fields first, in wire order, then label, then the\n"
            "others in the order the records give them), then one row per record.\n"
            "Strings as they are (quoted when needed; \"\" is the empty string), integers,\n"
            "floats in their shortest exact form, true/false; an absent key is an empty\n"
            "cell. A string column whose values would read back as numbers is headed\n"
            "NAME:str. Decision-log records add the columns decision, score, reasons\n"
            "(joined by '|'), ruleset and error.\n"
            "\n"
            "Options:\n"
            "  -o, --output OUT   write to OUT instead of stdout\n"
            "\n"
            "Exit status: 0 done (a torn tail is reported and ignored), 1 a corrupt record\n"
            "(nothing is written), 2 bad usage.\n",
    .run = run_to_csv,
};

static const rk_cli_cmd log_from_csv = {
    .name = "log from-csv",
    .args = "FILE.csv -o OUT.rlog",
    .summary = "convert a CSV with a header row to a traffic log",
    .help = "Reads FILE.csv (- reads stdin; a header row is required) and writes one\n"
            "traffic-log record per row to OUT.rlog (-o - writes stdout).\n"
            "\n"
            "Columns are keys. amount, ts, mcc and label must hold integers; the other\n"
            "standard fields are strings. Any other column is typed by its header,\n"
            "NAME:int, NAME:float, NAME:str or NAME:bool, or else by each cell: an integer,\n"
            "a float, true/false, or a string. An empty cell leaves the key out; a quoted\n"
            "empty cell (\"\") is the empty string. Keys are written in canonical order\n"
            "(standard fields, label, the rest as in the header), so a CSV made by\n"
            "`riskctl log to-csv` converts back to the same bytes.\n"
            "\n"
            "Options:\n"
            "  -o, --output OUT   the log to write (required; replaced only on success)\n"
            "\n"
            "Exit status: 0 done, 1 the output cannot be written, 2 bad usage or a cell\n"
            "that does not parse (reported as FILE:LINE:COL).\n",
    .run = run_from_csv,
};

static const rk_cli_cmd *const log_cmds[] = {&log_dump, &log_to_csv, &log_from_csv};
#define NLOG_CMDS (sizeof log_cmds / sizeof log_cmds[0])

static int run_log(const rk_cli_cmd *cmd, int argc, char **argv)
{
    return rk_cli_dispatch(cmd, log_cmds, NLOG_CMDS, "dump, to-csv or from-csv", argc, argv);
}

const rk_cli_cmd rk_cli_log = {
    .name = "log",
    .args = "dump|to-csv|from-csv ARGS...",
    .summary = "print traffic and decision logs; convert them to and from CSV",
    .help = "Subcommands:\n"
            "  dump FILE                 each record as a line of JSON\n"
            "  to-csv FILE [-o OUT]      CSV with a header row\n"
            "  from-csv FILE.csv -o OUT  a traffic log from CSV\n"
            "\n"
            "Run 'riskctl log SUBCOMMAND --help' for each one's details.\n",
    .run = run_log,
};
