/* JSON <-> msgpack for the command-line tools (json.h). Off the request path,
 * so it allocates freely; what matters here is strictness and good messages.
 *
 * JSON to msgpack is a hand-written recursive-descent parser of RFC 8259
 * (nesting bounded at 64, so recursion is bounded too) that packs as it goes.
 * msgpack needs a container's element count before its elements, which JSON
 * only tells at the closing bracket; so the elements are packed first and the
 * header is slid in front of them afterwards (a memmove of the container's
 * bytes, at most once per enclosing level). That keeps every header in its
 * smallest form, as a client's encoder would write it. On any error the
 * output buffer is cut back to where it was, so nothing is appended.
 *
 * Numbers keep their JSON spelling's type: no fraction and no exponent gives
 * an integer (int64, or uint64 above INT64_MAX; beyond that is an error, never
 * a silent float), anything else a float64. The printer does the reverse: a
 * float always prints with a '.' or an exponent, in the shortest form that
 * reads back to the same value, so 60.0 stays a float through a round trip.
 * NaN and infinities, which JSON cannot spell, print as null.
 *
 * Error positions are 1-based lines and columns, columns counted in
 * characters (UTF-8 code points), pointing at the offending character. */
#include "proto/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/mp.h"

#define JSON_DEPTH_MAX 64

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 when
 * it is not one: overlong forms, UTF-16 surrogates and code points above
 * U+10FFFF are rejected, as RFC 3629 requires. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* ---- JSON to msgpack ---------------------------------------------------- */

typedef struct jp {
    const char *s;        /* the JSON text, borrowed */
    size_t len;           /* its length */
    size_t pos;           /* offset of the next unread byte */
    int depth;            /* containers open around pos */
    msgpack_sbuffer *out; /* the caller's buffer, appended to */
    msgpack_packer pk;    /* packs into out through write_sbuf */
    bool nomem;           /* an allocation failed; the parse is abandoned */
    char *str;            /* scratch for decoded string bytes, owned */
    size_t str_cap;       /* its capacity */
    char *err;            /* the caller's message buffer */
    size_t errlen;        /* its size */
} jp;

static int write_sbuf(void *data, const char *b, size_t n)
{
    jp *p = data;
    if (msgpack_sbuffer_write(p->out, b, n) != 0) {
        p->nomem = true;
        return -1;
    }
    return 0;
}

/* Describes what is at offset at: a quoted character or "end of input". */
static const char *describe(const jp *p, size_t at, char *buf, size_t cap)
{
    if (at >= p->len)
        return "end of input";
    uint8_t c = (uint8_t)p->s[at];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else if (c < 0x80)
        snprintf(buf, cap, "byte 0x%02x", c);
    else if (utf8_len((const uint8_t *)p->s + at, p->len - at))
        snprintf(buf, cap, "'%.*s'", (int)utf8_len((const uint8_t *)p->s + at, p->len - at),
                 p->s + at);
    else
        snprintf(buf, cap, "invalid UTF-8 byte 0x%02x", c);
    return buf;
}

/* Records "line L, column C: <message>" for offset at; returns RK_EPARSE. */
__attribute__((format(printf, 3, 4))) static int jfail(jp *p, size_t at, const char *fmt, ...)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        uint8_t c = (uint8_t)p->s[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xc0) != 0x80) {
            col++;
        }
    }
    if (p->errlen == 0)
        return RK_EPARSE;
    int n = snprintf(p->err, p->errlen, "line %zu, column %zu: ", line, col);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return RK_EPARSE;
}

static void skip_ws(jp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(const jp *p)
{
    return p->pos < p->len ? (uint8_t)p->s[p->pos] : -1;
}

/* Slides the msgpack header of a container of n elements in front of its
 * elements, which were packed from offset start onwards. */
static int insert_header(jp *p, size_t start, bool map, size_t n)
{
    msgpack_sbuffer hdr;
    msgpack_packer hp;
    msgpack_sbuffer_init(&hdr);
    msgpack_packer_init(&hp, &hdr, msgpack_sbuffer_write);
    int rc = map ? msgpack_pack_map(&hp, n) : msgpack_pack_array(&hp, n);
    if (rc != 0 || msgpack_sbuffer_write(p->out, hdr.data, hdr.size) != 0) {
        msgpack_sbuffer_destroy(&hdr);
        p->nomem = true;
        return RK_ENOMEM;
    }
    char *d = p->out->data;
    size_t body = p->out->size - hdr.size - start;
    memmove(d + start + hdr.size, d + start, body);
    memcpy(d + start, hdr.data, hdr.size);
    msgpack_sbuffer_destroy(&hdr);
    return 0;
}

static int put_str_byte(jp *p, size_t *n, const char *b, size_t k)
{
    if (*n + k > p->str_cap) {
        size_t cap = p->str_cap ? p->str_cap * 2 : 256;
        while (cap < *n + k)
            cap *= 2;
        char *s = realloc(p->str, cap);
        if (!s) {
            p->nomem = true;
            return RK_ENOMEM;
        }
        p->str = s;
        p->str_cap = cap;
    }
    memcpy(p->str + *n, b, k);
    *n += k;
    return 0;
}

/* Four hex digits at offset at, or -1. */
static long hex4(const jp *p, size_t at)
{
    long v = 0;
    if (at > p->len || p->len - at < 4)
        return -1;
    for (size_t i = at; i < at + 4; i++) {
        char c = p->s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The \uXXXX escape starting at the backslash at p->pos (a surrogate pair
 * takes two), appended to the scratch string as UTF-8. */
static int parse_u_escape(jp *p, size_t *n)
{
    size_t at = p->pos;
    long cp = hex4(p, at + 2);
    if (cp < 0)
        return jfail(p, at, "expected 4 hex digits after \\u");
    p->pos += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return jfail(p, at, "unpaired surrogate \\u%04lX (a low surrogate must follow a high one)",
                     cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u'
                      ? hex4(p, p->pos + 2)
                      : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return jfail(p, at,
                         "unpaired surrogate \\u%04lX (expected a \\uDC00-\\uDFFF escape after it)",
                         cp);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p->pos += 6;
    }
    char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    return put_str_byte(p, n, u, k);
}

/* string := '"' chars '"', packed as a msgpack str. p->pos is at the quote. */
static int parse_string(jp *p)
{
    size_t open = p->pos++;
    size_t n = 0;
    int rc;
    char d[32];
    for (;;) {
        if (p->pos >= p->len)
            return jfail(p, open, "unterminated string");
        uint8_t c = (uint8_t)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return jfail(p, p->pos, "control character U+%04X in a string (escape it)", c);
        if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            int e = p->pos + 1 < p->len ? (uint8_t)p->s[p->pos + 1] : -1;
            const char *hit = e > 0 ? strchr(from, e) : NULL;
            if (e == 'u') {
                rc = parse_u_escape(p, &n);
            } else if (hit) {
                rc = put_str_byte(p, &n, &to[hit - from], 1);
                p->pos += 2;
            } else {
                return jfail(p, p->pos, "invalid escape in a string: expected one of "
                                        "\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
            }
        } else {
            size_t k = utf8_len((const uint8_t *)p->s + p->pos, p->len - p->pos);
            if (k == 0)
                return jfail(p, p->pos, "%s in a string",
                             describe(p, p->pos, d, sizeof d));
            rc = put_str_byte(p, &n, p->s + p->pos, k);
            p->pos += k;
        }
        if (rc < 0)
            return rc;
    }
    msgpack_pack_str(&p->pk, n);
    msgpack_pack_str_body(&p->pk, p->str, n);
    return p->nomem ? RK_ENOMEM : 0;
}

static size_t skip_digits(jp *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos - start;
}

/* number := '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int parse_number(jp *p)
{
    size_t start = p->pos;
    char d[32];
    bool neg = peek(p) == '-';
    bool is_float = false;
    if (neg)
        p->pos++;
    if (peek(p) == '0')
        p->pos++;
    else if (skip_digits(p) == 0)
        return jfail(p, p->pos, "expected a digit, got %s", describe(p, p->pos, d, sizeof d));
    if (peek(p) == '.') {
        p->pos++;
        is_float = true;
        if (skip_digits(p) == 0)
            return jfail(p, p->pos, "expected a digit after '.', got %s",
                         describe(p, p->pos, d, sizeof d));
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        is_float = true;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (skip_digits(p) == 0)
            return jfail(p, p->pos, "expected a digit in the exponent, got %s",
                         describe(p, p->pos, d, sizeof d));
    }

    if (!is_float) {
        uint64_t u = 0;
        for (size_t i = start + neg; i < p->pos; i++) {
            unsigned dig = (unsigned)(p->s[i] - '0');
            if (u > (UINT64_MAX - dig) / 10)
                return jfail(p, start, "integer out of range (it must fit in 64 bits)");
            u = u * 10 + dig;
        }
        if (neg && u > (uint64_t)INT64_MAX + 1)
            return jfail(p, start, "integer out of range (it must fit in 64 bits)");
        if (!neg)
            msgpack_pack_uint64(&p->pk, u);
        else if (u == (uint64_t)INT64_MAX + 1)
            msgpack_pack_int64(&p->pk, INT64_MIN);
        else
            msgpack_pack_int64(&p->pk, -(int64_t)u);
        return p->nomem ? RK_ENOMEM : 0;
    }

    /* strtod needs a NUL-terminated copy; the grammar above guarantees it
     * will consume all of it. */
    size_t n = p->pos - start;
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy) {
        p->nomem = true;
        return RK_ENOMEM;
    }
    memcpy(copy, p->s + start, n);
    copy[n] = '\0';
    double v = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(v))
        return jfail(p, start, "number out of range for a float64");
    msgpack_pack_double(&p->pk, v);
    return p->nomem ? RK_ENOMEM : 0;
}

static int parse_value(jp *p);

/* object := '{' [string ':' value (',' string ':' value)*] '}'
 * array  := '[' [value (',' value)*] ']'
 * One function for both: they differ only in the key before each element. */
static int parse_container(jp *p, bool map)
{
    size_t open = p->pos++;
    size_t start = p->out->size;
    size_t n = 0;
    char close = map ? '}' : ']';
    char d[32];
    int rc;
    if (++p->depth > JSON_DEPTH_MAX)
        return jfail(p, open, "nesting deeper than %d levels", JSON_DEPTH_MAX);
    skip_ws(p);
    if (peek(p) == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (map) {
                if (peek(p) != '"')
                    return jfail(p, p->pos, "expected a string key%s, got %s",
                                 n == 0 ? " or '}'" : "", describe(p, p->pos, d, sizeof d));
                if ((rc = parse_string(p)) < 0)
                    return rc;
                skip_ws(p);
                if (peek(p) != ':')
                    return jfail(p, p->pos, "expected ':' after the key, got %s",
                                 describe(p, p->pos, d, sizeof d));
                p->pos++;
            }
            if ((rc = parse_value(p)) < 0)
                return rc;
            n++;
            skip_ws(p);
            if (peek(p) == ',') {
                p->pos++;
                continue;
            }
            if (peek(p) == close) {
                p->pos++;
                break;
            }
            return jfail(p, p->pos, "expected ',' or '%c', got %s", close,
                         describe(p, p->pos, d, sizeof d));
        }
    }
    p->depth--;
    if (n > UINT32_MAX)
        return jfail(p, open, "more than %u elements", UINT32_MAX);
    return insert_header(p, start, map, n);
}

/* value := object | array | string | number | "true" | "false" | "null" */
static int parse_value(jp *p)
{
    static const char *const lits[] = {"true", "false", "null"};
    char d[32];
    skip_ws(p);
    int c = peek(p);
    if (c == '{' || c == '[')
        return parse_container(p, c == '{');
    if (c == '"')
        return parse_string(p);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[i], n) == 0) {
            p->pos += n;
            if (i == 0)
                msgpack_pack_true(&p->pk);
            else if (i == 1)
                msgpack_pack_false(&p->pk);
            else
                msgpack_pack_nil(&p->pk);
            return p->nomem ? RK_ENOMEM : 0;
        }
    }
    return jfail(p, p->pos, "expected a value, got %s", describe(p, p->pos, d, sizeof d));
}

int rk_json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err,
                       size_t errlen)
{
    jp p = {.s = text, .len = len, .out = out, .err = err, .errlen = errlen};
    size_t mark = out->size;
    char d[32];
    msgpack_packer_init(&p.pk, &p, write_sbuf);
    if (errlen)
        err[0] = '\0';
    int rc = parse_value(&p);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos < len)
            rc = jfail(&p, p.pos, "expected end of input after the value, got %s",
                       describe(&p, p.pos, d, sizeof d));
    }
    if (rc == 0 && p.nomem)
        rc = RK_ENOMEM;
    if (rc < 0)
        out->size = mark;
    if (rc == RK_ENOMEM && errlen)
        snprintf(err, errlen, "out of memory");
    free(p.str);
    return rc;
}

/* ---- msgpack to JSON ---------------------------------------------------- */

typedef struct jw {
    char *s;     /* the text so far, owned; NUL-terminated when done */
    size_t len;  /* bytes used */
    size_t cap;  /* bytes allocated */
    bool nomem;  /* an allocation failed; later writes are dropped */
    int indent;  /* spaces per level; 0 prints one line */
    bool in_key; /* rendering a non-string key's text: its own keys print bare */
} jw;

static void put(jw *w, const char *b, size_t n)
{
    if (w->nomem)
        return;
    if (n + 1 > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n + 1)
            cap *= 2;
        char *s = realloc(w->s, cap);
        if (!s) {
            w->nomem = true;
            return;
        }
        w->s = s;
        w->cap = cap;
    }
    memcpy(w->s + w->len, b, n);
    w->len += n;
    w->s[w->len] = '\0';
}

static void puts_(jw *w, const char *s) { put(w, s, strlen(s)); }

static void newline(jw *w, int depth)
{
    if (w->indent <= 0)
        return;
    put(w, "\n", 1);
    for (int i = 0; i < depth * w->indent; i++)
        put(w, " ", 1);
}

/* A JSON string of n bytes: escapes what JSON requires, passes valid UTF-8
 * through and turns each invalid byte into U+FFFD. */
static void put_string(jw *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f" : NULL;
        if (esc) {
            puts_(w, esc);
            i++;
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, u, 6);
            i++;
        } else {
            size_t k = utf8_len(s + i, n - i);
            if (k == 0) {
                puts_(w, "\\ufffd");
                k = 1;
            } else {
                put(w, (const char *)s + i, k);
            }
            i += k;
        }
    }
    put(w, "\"", 1);
}

static void put_base64(jw *w, const uint8_t *s, size_t n)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    put(w, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        put(w, q, 4);
    }
    put(w, "\"", 1);
}

/* The fewest significant digits that read back as the same float64 (or,
 * for a float32, the same float32), laid out as Python's repr does: plain
 * decimals for exponents -4..15, else scientific; ".0" added when the text
 * would otherwise read back as an integer. */
static void put_float(jw *w, double v, bool single)
{
    char b[64];
    int digits;
    if (!isfinite(v)) {
        puts_(w, "null");
        return;
    }
    for (digits = 1; digits < 17; digits++) {
        snprintf(b, sizeof b, "%.*e", digits - 1, v);
        if (single ? strtof(b, NULL) == (float)v : strtod(b, NULL) == v)
            break;
    }
    snprintf(b, sizeof b, "%.*e", digits - 1, v);
    int exp = atoi(strchr(b, 'e') + 1);
    if (exp >= -4 && exp < 16)
        snprintf(b, sizeof b, "%.*f", digits - 1 - exp > 0 ? digits - 1 - exp : 0, v);
    if (!strpbrk(b, ".e"))
        strcat(b, ".0");
    puts_(w, b);
}

static int print_value(jw *w, rk_mp *r, int depth);

/* A map key: a string as is; any other key as the string of its JSON text,
 * since JSON object keys must be strings ({1: true} prints {"1":true}).
 * Inside that text, keys print bare, not as strings again: escaping a key
 * within a key within a key would double the output at every level, and a
 * few hundred bytes of msgpack could ask for exabytes of JSON. */
static int print_key(jw *w, rk_mp *r, int depth)
{
    rk_mp peek_r = *r;
    rk_mp_item it;
    int rc = rk_mp_read(&peek_r, &it);
    if (rc < 0)
        return rc;
    if (it.type == RK_MP_STR) {
        *r = peek_r;
        put_string(w, it.raw.p, it.raw.len);
        return 0;
    }
    if (w->in_key)
        return print_value(w, r, depth);
    jw k = {.indent = 0, .in_key = true};
    rc = print_value(&k, r, depth);
    if (rc == 0 && k.nomem)
        rc = RK_ENOMEM;
    if (rc == 0)
        put_string(w, (const uint8_t *)k.s, k.len);
    free(k.s);
    return rc;
}

static int print_value(jw *w, rk_mp *r, int depth)
{
    rk_mp_item it;
    char b[32];
    int rc = rk_mp_read(r, &it);
    if (rc < 0)
        return rc;
    switch (it.type) {
    case RK_MP_NIL:
    case RK_MP_EXT:
        puts_(w, "null");
        return 0;
    case RK_MP_BOOL:
        puts_(w, it.b ? "true" : "false");
        return 0;
    case RK_MP_UINT:
        snprintf(b, sizeof b, "%llu", (unsigned long long)it.u);
        puts_(w, b);
        return 0;
    case RK_MP_INT:
        snprintf(b, sizeof b, "%lld", (long long)it.i);
        puts_(w, b);
        return 0;
    case RK_MP_FLOAT32:
    case RK_MP_FLOAT64:
        put_float(w, it.f, it.type == RK_MP_FLOAT32);
        return 0;
    case RK_MP_STR:
        put_string(w, it.raw.p, it.raw.len);
        return 0;
    case RK_MP_BIN:
        put_base64(w, it.raw.p, it.raw.len);
        return 0;
    case RK_MP_ARRAY:
    case RK_MP_MAP:
        break;
    }
    bool map = it.type == RK_MP_MAP;
    if (depth + 1 > JSON_DEPTH_MAX)
        return RK_ERANGE;
    put(w, map ? "{" : "[", 1);
    for (uint32_t i = 0; i < it.n; i++) {
        if (i > 0)
            put(w, ",", 1);
        newline(w, depth + 1);
        if (map) {
            if ((rc = print_key(w, r, depth + 1)) < 0)
                return rc;
            puts_(w, w->indent > 0 ? ": " : ":");
        }
        if ((rc = print_value(w, r, depth + 1)) < 0)
            return rc;
        if (w->nomem)
            return RK_ENOMEM;
    }
    if (it.n > 0)
        newline(w, depth);
    put(w, map ? "}" : "]", 1);
    return 0;
}

int rk_msgpack_to_json(const uint8_t *buf, size_t len, int indent, char **out)
{
    jw w = {.indent = indent};
    rk_mp r;
    rk_mp_init(&r, buf, len);
    *out = NULL;
    int rc = print_value(&w, &r, 0);
    put(&w, "", 0); /* an empty value still needs its NUL */
    if (rc == 0 && w.nomem)
        rc = RK_ENOMEM;
    if (rc < 0) {
        free(w.s);
        /* Truncated, 0xc1, or nested deeper than the parser would accept. */
        return rc == RK_ENOMEM ? RK_ENOMEM : RK_EPARSE;
    }
    *out = w.s;
    return 0;
}
