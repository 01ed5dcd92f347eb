/* YAML document helpers for the rule loader (see yamlnode.h).
 *
 * libyaml resolves no types: every scalar is text with a style (plain,
 * quoted, block). Rule files want numbers, bools and names, so this file
 * decides, once, what counts as each — only plain scalars, read strictly — and
 * turns libyaml's zero-based marks into the 1-based positions of rk_diag.
 * Nothing here knows what a rule is. */
#include "rules/yamlnode.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

/* libyaml's problem and context texts ("did not find expected key", "while
 * parsing a block mapping") read well joined by a space. */
static int syntax_error(rk_yn_doc *d, yaml_parser_t *p, rk_diag *diag)
{
    if (p->error == YAML_MEMORY_ERROR)
        return RK_ENOMEM;
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        /* The reader (bad UTF-8, control characters) knows only a byte
         * offset; count lines up to it, columns in bytes. */
        size_t end = p->problem_offset < d->len ? p->problem_offset : d->len, start = 0;
        line = 1;
        for (size_t i = 0; i < end; i++)
            if (d->text[i] == '\n') {
                line++;
                start = i + 1;
            }
        col = (int)(end - start) + 1;
    }
    rk_diag_set(diag, d->file, line, col, "invalid YAML: %s%s%s",
                p->problem ? p->problem : "unreadable input", p->context ? " " : "",
                p->context ? p->context : "");
    return RK_EPARSE;
}

int rk_yn_parse(rk_yn_doc *d, const char *file, const char *text, size_t len, rk_diag *diag)
{
    memset(d, 0, sizeof *d);
    d->file = file;
    d->text = text;
    d->len = len;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return RK_ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0;
    if (!yaml_parser_load(&p, &d->doc)) {
        rc = syntax_error(d, &p, diag);
        yaml_parser_delete(&p);
        return rc;
    }
    /* A second document would be silently ignored by yaml_parser_load; an
     * analyst who pasted two files together should hear about it. */
    if (yaml_document_get_root_node(&d->doc)) {
        yaml_document_t next;
        if (!yaml_parser_load(&p, &next)) {
            rc = syntax_error(d, &p, diag);
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&next);
            if (root)
                rc = rk_yn_fail(d, root, diag, RK_EPARSE,
                                "a rule file holds one YAML document; found a second one");
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&p);
    if (rc)
        yaml_document_delete(&d->doc);
    return rc;
}

void rk_yn_free(rk_yn_doc *d)
{
    yaml_document_delete(&d->doc);
}

yaml_node_t *rk_yn_root(rk_yn_doc *d)
{
    return yaml_document_get_root_node(&d->doc);
}

yaml_node_t *rk_yn_node(rk_yn_doc *d, int index)
{
    return yaml_document_get_node(&d->doc, index);
}

yaml_node_t *rk_yn_get(rk_yn_doc *d, const yaml_node_t *map, const char *key,
                       yaml_node_t **keynode)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = rk_yn_node(d, p->key);
        const char *k = rk_yn_str(kn);
        if (k && strcmp(k, key) == 0) {
            if (keynode)
                *keynode = kn;
            return rk_yn_node(d, p->value);
        }
    }
    return NULL;
}

int rk_yn_fail(const rk_yn_doc *d, const yaml_node_t *n, rk_diag *diag, int code,
               const char *fmt, ...)
{
    if (!diag)
        return code;
    char msg[sizeof diag->msg], shown[sizeof diag->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote the user's text (keys, ids, values), which may hold
     * line breaks or control characters; a diagnostic stays on one line. */
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)msg; *c && o + 5 < sizeof shown; c++) {
        if (*c == '\n')
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\n");
        else if (*c == '\t')
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", *c);
        else
            shown[o++] = (char)*c;
    }
    shown[o] = '\0';
    rk_diag_set(diag, d->file, n ? rk_yn_line(n) : 0, n ? rk_yn_col(n) : 0, "%s", shown);
    return code;
}

const char *rk_yn_str(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool rk_yn_is_null(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = rk_yn_str(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

bool rk_yn_is_empty(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type == YAML_MAPPING_NODE)
        return n->data.mapping.pairs.top == n->data.mapping.pairs.start;
    if (n->type == YAML_SEQUENCE_NODE)
        return n->data.sequence.items.top == n->data.sequence.items.start;
    return rk_yn_is_null(n);
}

/* The text of a plain scalar with no embedded NUL, else NULL: numbers and
 * bools are only ever written plain. */
static const char *plain(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return NULL;
    const char *s = rk_yn_str(n);
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

bool rk_yn_int(const yaml_node_t *n, int64_t *out)
{
    const char *s = plain(n);
    if (!s)
        return false;
    const char *p = s + (*s == '-' || *s == '+');
    if (*p < '0' || *p > '9')
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return false;
    *out = v;
    return true;
}

bool rk_yn_number(const yaml_node_t *n, double *out)
{
    const char *s = plain(n);
    if (!s || !*s)
        return false;
    /* strtod alone would take "nan", "inf" and hex floats. */
    bool digit = false;
    for (const char *q = s; *q; q++) {
        if (*q >= '0' && *q <= '9')
            digit = true;
        else if (!strchr("+-.eE", *q))
            return false;
    }
    if (!digit)
        return false;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool rk_yn_bool(const yaml_node_t *n, bool *out)
{
    const char *s = plain(n);
    if (!s)
        return false;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return false;
    return true;
}

const char *rk_yn_kind(const yaml_node_t *n)
{
    if (n && n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n && n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    return "text";
}

/* Byte offset of the start of 0-based line `line` in the source, or len when
 * the source is shorter. Counts \n, \r\n and lone \r as libyaml does (the
 * Unicode line separators it also knows are rare enough in rule files that a
 * column after one may be off). */
static size_t line_start(const rk_yn_doc *d, size_t line)
{
    size_t i = 0;
    while (line > 0 && i < d->len) {
        char c = d->text[i++];
        if (c == '\r' && i < d->len && d->text[i] == '\n')
            i++;
        if (c == '\n' || c == '\r')
            line--;
    }
    return line == 0 ? i : d->len;
}

/* Leading spaces of s[0..len). */
static size_t indent_of(const char *s, size_t len)
{
    size_t k = 0;
    while (k < len && s[k] == ' ')
        k++;
    return k;
}

void rk_yn_text_pos(const rk_yn_doc *d, const yaml_node_t *n, int *line, int *col,
                    int *cont_col)
{
    *line = rk_yn_line(n);
    *col = rk_yn_col(n);
    *cont_col = 1;
    if (n->type != YAML_SCALAR_NODE)
        return;
    switch (n->data.scalar.style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        *col += 1;
        *cont_col = *col;
        break;
    case YAML_LITERAL_SCALAR_STYLE:
    case YAML_FOLDED_SCALAR_STYLE: {
        /* The mark is at the indicator; the text starts on the next line.
         * Leading blank lines stay in the value as newlines, so the first
         * line of the value is that next line either way. The block's
         * indentation is the first content line's leading spaces less those
         * the value itself kept (more-indented text). */
        *line += 1;
        size_t i = line_start(d, n->start_mark.line + 1);
        while (i < d->len) {
            size_t e = i;
            while (e < d->len && d->text[e] != '\n' && d->text[e] != '\r')
                e++;
            size_t k = indent_of(d->text + i, e - i);
            if (k < e - i) {
                const char *v = (const char *)n->data.scalar.value;
                size_t vl = n->data.scalar.length, j = 0;
                while (j < vl && v[j] == '\n')
                    j++;
                size_t kept = indent_of(v + j, vl - j);
                *col = (int)(k >= kept ? k - kept : 0) + 1;
                break;
            }
            i = e < d->len ? e + 1 : e;
        }
        *cont_col = *col;
        break;
    }
    default:
        /* Plain: a multi-line plain scalar is joined with spaces, so it has
         * no continuation lines to place. */
        *cont_col = *col;
        break;
    }
}

/* "a, b, c or d" for an "expected ..." list. */
static void join_names(char *buf, size_t size, const char *const *names, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + off, size - off, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

int rk_yn_check_keys(rk_yn_doc *d, const yaml_node_t *map, const char *const *keys,
                     size_t nkeys, rk_diag *diag)
{
    const yaml_node_pair_t *start = map->data.mapping.pairs.start;
    for (const yaml_node_pair_t *p = start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = rk_yn_node(d, p->key);
        const char *k = rk_yn_str(kn);
        if (!k)
            return rk_yn_fail(d, kn, diag, RK_EPARSE, "expected a key name, found %s",
                              rk_yn_kind(kn));
        for (const yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *prev = rk_yn_node(d, q->key);
            if (strcmp(rk_yn_str(prev), k) == 0)
                return rk_yn_fail(d, kn, diag, RK_EPARSE,
                                  "duplicate key '%s' (first defined at %s:%d:%d)", k,
                                  d->file, rk_yn_line(prev), rk_yn_col(prev));
        }
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], k) != 0)
            i++;
        if (i < nkeys)
            continue;
        const char *hint = rk_suggest(k, keys, nkeys);
        if (hint)
            return rk_yn_fail(d, kn, diag, RK_EPARSE, "unknown key '%s' (did you mean '%s'?)",
                              k, hint);
        char expected[256];
        join_names(expected, sizeof expected, keys, nkeys);
        return rk_yn_fail(d, kn, diag, RK_EPARSE, "unknown key '%s' (expected %s)", k,
                          expected);
    }
    return 0;
}
