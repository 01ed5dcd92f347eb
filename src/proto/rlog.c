/* Traffic logs and decision-log records (rlog.h): CRC-32C, the mmap reader
 * and the two record writers.
 *
 * The reader walks the mapping with the bounds-checked cursor of mp.h, one
 * record per call. Each record is checked whole before it is returned: its
 * top-level map and every nested value are stepped over (so a record ends
 * exactly where the next begins), and a decision record's crc is recomputed
 * over its req and resp bytes. Once a record fails, the reader stays failed:
 * after a bad length nothing downstream can be trusted, and a caller that
 * kept going would read garbage as requests. Truncation is the one failure
 * that is not an error, because it is what a crash mid-append leaves; see the
 * torn-tail rule in rlog.h.
 *
 * The writers append to an rk_outbuf through msgpack-c's packer, so their
 * encodings (shortest ints, str8 for 32..255-byte strings, float64) are the
 * ones msgpack-c and Python's msgpack produce: a plain log written by the
 * traffic generator and one rewritten by `riskctl log from-csv` can be
 * byte-identical. */
#include "proto/rlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "proto/mp.h"
#include "proto/txn.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
#define HAVE_SSE42_PATH 1
#endif

/* ---- CRC-32C ------------------------------------------------------------------ */

#define CRC32C_POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t crc_table[8][256]; /* slicing-by-8 tables, built once */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = crc_table[t - 1][i] >> 8 ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* The table version on the inverted register (no pre/post inversion). */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_build);
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c; /* little-endian loads: the x86 and arm64 hosts riskd runs on */
        c = crc_table[7][lo & 0xff] ^ crc_table[6][lo >> 8 & 0xff] ^
            crc_table[5][lo >> 16 & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][hi >> 8 & 0xff] ^
            crc_table[1][hi >> 16 & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = c >> 8 ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#ifdef HAVE_SSE42_PATH
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "crc_sw's slicing assumes a little-endian host"
#endif

uint32_t rk_crc32c(uint32_t crc, const void *buf, size_t len)
{
#ifdef HAVE_SSE42_PATH
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(~crc, buf, len);
#endif
    return ~crc_sw(~crc, buf, len);
}

uint32_t rk_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_sw(~crc, buf, len);
}

/* ---- Reading ------------------------------------------------------------------ */

struct rk_rlog {
    const uint8_t *buf; /* the log's bytes: the mapping, or a caller's buffer */
    size_t len;         /* their length */
    size_t pos;         /* offset of the next record */
    void *map;          /* the mapping to unmap; NULL when borrowed or empty */
    int err;            /* the sticky error (0 when none) */
    bool torn;          /* reading ended at a torn tail */
    uint64_t torn_at;   /* its offset */
    char msg[256];      /* the error's text */
};

static int new_reader(const uint8_t *buf, size_t len, void *map, rk_rlog **out)
{
    rk_rlog *r = calloc(1, sizeof *r);
    if (!r)
        return RK_ENOMEM;
    r->buf = buf;
    r->len = len;
    r->map = map;
    *out = r;
    return 0;
}

int rk_rlog_open(const char *path, rk_rlog **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? RK_ENOTFOUND : RK_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return RK_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return RK_EIO;
    }
    void *map = NULL;
    size_t len = (size_t)st.st_size;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            errno = e;
            return e == ENOMEM ? RK_ENOMEM : RK_EIO;
        }
        madvise(map, len, MADV_SEQUENTIAL);
    }
    close(fd); /* the mapping keeps the file */
    int rc = new_reader(map, len, map, out);
    if (rc < 0 && map)
        munmap(map, len);
    return rc;
}

int rk_rlog_open_mem(const uint8_t *buf, size_t len, rk_rlog **out)
{
    return new_reader(buf, len, NULL, out);
}

void rk_rlog_close(rk_rlog *r)
{
    if (!r)
        return;
    if (r->map)
        munmap(r->map, r->len);
    free(r);
}

void rk_rlog_rewind(rk_rlog *r)
{
    r->pos = 0;
    r->err = 0;
    r->torn = false;
    r->torn_at = 0;
    r->msg[0] = '\0';
}

bool rk_rlog_torn(const rk_rlog *r, uint64_t *offset)
{
    if (r->torn && offset)
        *offset = r->torn_at;
    return r->torn;
}

const char *rk_rlog_error(const rk_rlog *r) { return r->msg; }

uint64_t rk_rlog_size(const rk_rlog *r) { return r->len; }

/* Makes the reader fail with code: "record at byte R: MESSAGE[ at byte B]". */
__attribute__((format(printf, 4, 5))) static int fail(rk_rlog *r, int code, size_t at,
                                                      const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (at != r->pos)
        snprintf(r->msg, sizeof r->msg, "record at byte %zu: %s at byte %zu", r->pos, what, at);
    else
        snprintf(r->msg, sizeof r->msg, "record at byte %zu: %s", r->pos, what);
    r->err = code;
    return code;
}

/* Ends reading at a torn tail starting at the current record. */
static int torn(rk_rlog *r)
{
    r->torn = true;
    r->torn_at = r->pos;
    r->pos = r->len;
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* A cursor failure inside the record being read: truncation is a torn tail
 * when it can be one, anything else is an error at the offending byte. */
static int cursor_failed(rk_rlog *r, int rc, const rk_mp *m)
{
    size_t at = r->pos + m->pos;
    if (rc == RK_EPARSE) {
        if (r->len - r->pos < RK_RLOG_REC_MAX)
            return torn(r);
        return fail(r, RK_EPARSE, at,
                    "a value runs past the end of the file (a corrupt length?)");
    }
    if (rc == RK_ERANGE)
        return fail(r, RK_ECORRUPT, at, "values nested deeper than %d levels", RK_MP_DEPTH_MAX);
    return fail(r, RK_ECORRUPT, at, "not msgpack (byte 0x%02x)", m->buf[m->pos]);
}

/* 1, 0 or -1 for a `label` value. */
static int label_of(const rk_mp_item *v)
{
    switch (v->type) {
    case RK_MP_UINT:
        return v->u != 0;
    case RK_MP_INT:
        return 1;
    case RK_MP_BOOL:
        return v->b;
    default:
        return -1;
    }
}

/* Which keys of a record the reader looks at. */
enum { K_OTHER, K_REQ, K_RESP, K_RULESET, K_AT, K_CRC, K_LABEL };

static int key_of(const rk_mp_item *k)
{
    static const char *const names[] = {NULL, "req", "resp", "ruleset", "at", "crc", "label"};
    if (k->type != RK_MP_STR || k->raw.len < 2 || k->raw.len > 7 || !strchr("racl", k->raw.p[0]))
        return K_OTHER; /* most keys of a request: no strcmp */
    for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
        if (rk_mp_str_eq(k, names[i]))
            return i;
    return K_OTHER;
}

/* Reads the item at the cursor and steps over all of it (a container's
 * elements too). On failure the cursor is at the offending item. */
static int step_over(rk_mp *m, rk_mp_item *it)
{
    rk_mp at = *m;
    int rc = rk_mp_read(m, it);
    if (rc == 0 && (it->type == RK_MP_ARRAY || it->type == RK_MP_MAP)) {
        *m = at;
        rc = rk_mp_skip(m, RK_MP_DEPTH_MAX);
    }
    return rc;
}

int rk_rlog_next(rk_rlog *r, rk_rlog_rec *rec)
{
    if (r->err)
        return r->err;
    if (r->pos >= r->len)
        return 0;
    rk_mp m;
    rk_mp_init(&m, r->buf + r->pos, r->len - r->pos);
    rk_mp_item it;
    int rc = rk_mp_read(&m, &it);
    if (rc < 0)
        return cursor_failed(r, rc, &m);
    if (it.type != RK_MP_MAP) {
        if (all_zero(m.buf, m.len))
            return torn(r);
        return fail(r, RK_ECORRUPT, r->pos,
                    "expected a msgpack map (a request or a decision record), found %s",
                    rk_mp_type_name(it.type));
    }

    rk_rlog_rec out = {.label = -1, .raw = r->buf + r->pos, .offset = r->pos};
    bool have_crc = false;
    uint64_t crc = 0;
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item k, v;
        if ((rc = step_over(&m, &k)) < 0 || (rc = step_over(&m, &v)) < 0)
            return cursor_failed(r, rc, &m);
        switch (key_of(&k)) {
        case K_REQ:
            if (v.type == RK_MP_BIN) {
                out.req = v.raw.p;
                out.req_len = v.raw.len;
            }
            break;
        case K_RESP:
            if (v.type == RK_MP_BIN) {
                out.resp = v.raw.p;
                out.resp_len = v.raw.len;
            }
            break;
        case K_RULESET:
            if (v.type == RK_MP_STR) {
                out.ruleset = (const char *)v.raw.p;
                out.ruleset_len = v.raw.len;
            }
            break;
        case K_AT:
            if (rk_mp_int64(&v, &out.at) < 0)
                out.at = 0;
            break;
        case K_CRC:
            if (v.type == RK_MP_UINT && v.u <= UINT32_MAX) {
                have_crc = true;
                crc = v.u;
            }
            break;
        case K_LABEL:
            out.label = label_of(&v);
            break;
        default:
            break;
        }
    }
    out.len = m.pos;

    if (out.req) { /* a decision record */
        if (!out.resp)
            return fail(r, RK_ECORRUPT, r->pos, "decision record without a 'resp' bin");
        if (!have_crc)
            return fail(r, RK_ECORRUPT, r->pos, "decision record without a uint32 'crc'");
        uint32_t got = rk_crc32c(rk_crc32c(0, out.req, out.req_len), out.resp, out.resp_len);
        if (got != crc)
            return fail(r, RK_ECORRUPT, r->pos,
                        "decision record fails its crc (stored 0x%08x, computed 0x%08x)",
                        (unsigned)crc, (unsigned)got);
        rk_mp_item lv;
        out.label = rk_mp_map_find(out.req, out.req_len, "label", &lv, NULL) == 0
                        ? label_of(&lv) : -1;
    } else {
        out.req = r->buf + r->pos;
        out.req_len = out.len;
        out.resp = NULL;
        out.resp_len = 0;
        out.ruleset = NULL;
        out.ruleset_len = 0;
        out.at = 0;
    }
    r->pos += out.len;
    *rec = out;
    return 1;
}

/* ---- Writing ------------------------------------------------------------------ */

static int outbuf_done(const rk_outbuf *out) { return out->overflow ? RK_ETOOBIG : 0; }

static void pack_key(rk_outbuf *out, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(&out->pk, n);
    msgpack_pack_str_body(&out->pk, key, n);
}

static void pack_bin(rk_outbuf *out, const char *key, const uint8_t *p, size_t n)
{
    pack_key(out, key);
    msgpack_pack_bin(&out->pk, n);
    msgpack_pack_bin_body(&out->pk, p, n);
}

size_t rk_rlog_decision_size(const rk_rlog_decision *d)
{
    /* fixmap + 5 keys (<= 8 bytes each) + bin32/str32 headers + at (9) + crc (5). */
    return 1 + 5 * 8 + 5 + d->req_len + 5 + d->resp_len + 5 + d->ruleset_len + 9 + 5;
}

int rk_rlog_encode_decision(rk_outbuf *out, const rk_rlog_decision *d)
{
    if (rk_rlog_decision_size(d) > RK_RLOG_REC_MAX || d->req_len > UINT32_MAX ||
        d->resp_len > UINT32_MAX)
        return RK_ETOOBIG;
    uint32_t crc = rk_crc32c(rk_crc32c(0, d->req, d->req_len), d->resp, d->resp_len);
    msgpack_pack_map(&out->pk, 5);
    pack_bin(out, "req", d->req, d->req_len);
    pack_bin(out, "resp", d->resp, d->resp_len);
    pack_key(out, "ruleset");
    msgpack_pack_str(&out->pk, d->ruleset_len);
    msgpack_pack_str_body(&out->pk, d->ruleset, d->ruleset_len);
    pack_key(out, "at");
    msgpack_pack_int64(&out->pk, d->at);
    pack_key(out, "crc");
    msgpack_pack_uint32(&out->pk, crc);
    return outbuf_done(out);
}

static bool key_eq(const rk_rlog_field *f, const char *key)
{
    size_t n = strlen(key);
    return f->key_len == n && memcmp(f->key, key, n) == 0;
}

static void pack_value(rk_outbuf *out, const rk_value *v)
{
    switch (v->type) {
    case RK_T_INT:
        msgpack_pack_int64(&out->pk, v->i);
        break;
    case RK_T_FLOAT:
        msgpack_pack_double(&out->pk, v->f);
        break;
    case RK_T_STR:
        msgpack_pack_str(&out->pk, v->len);
        msgpack_pack_str_body(&out->pk, v->s, v->len);
        break;
    case RK_T_BOOL:
        if (v->b)
            msgpack_pack_true(&out->pk);
        else
            msgpack_pack_false(&out->pk);
        break;
    default:
        break;
    }
}

#define TRAFFIC_FIELDS_MAX RK_MAX_SLOTS /* keys one plain record may have */

int rk_rlog_encode_traffic(rk_outbuf *out, const rk_rlog_field *f, int n)
{
    if (n < 0 || n > TRAFFIC_FIELDS_MAX)
        return RK_EINVAL;
    /* order[]: the indexes of f in canonical order, missing values left out. */
    int order[TRAFFIC_FIELDS_MAX];
    bool placed[TRAFFIC_FIELDS_MAX] = {false};
    int k = 0;
    size_t bytes = 1 + 5;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            if (f[j].key_len == f[i].key_len && memcmp(f[j].key, f[i].key, f[i].key_len) == 0)
                return RK_EEXISTS;
        bytes += 10 + f[i].key_len + (f[i].v.type == RK_T_STR ? f[i].v.len : 0);
    }
    if (bytes > RK_RLOG_REC_MAX)
        return RK_ETOOBIG;
    for (int s = 0; s <= RK_F__STD; s++) { /* s == RK_F__STD stands for `label` */
        const char *name = s < RK_F__STD ? rk_field_name(s) : "label";
        for (int i = 0; i < n; i++)
            if (!placed[i] && key_eq(&f[i], name)) {
                placed[i] = true;
                if (f[i].v.type != RK_T_MISSING)
                    order[k++] = i;
            }
    }
    for (int i = 0; i < n; i++)
        if (!placed[i] && f[i].v.type != RK_T_MISSING)
            order[k++] = i;
    msgpack_pack_map(&out->pk, (size_t)k);
    for (int j = 0; j < k; j++) {
        const rk_rlog_field *fi = &f[order[j]];
        msgpack_pack_str(&out->pk, fi->key_len);
        msgpack_pack_str_body(&out->pk, fi->key, fi->key_len);
        pack_value(out, &fi->v);
    }
    return outbuf_done(out);
}
