/* The .rmdl file format: writing a model and reading one back, trusting
 * nothing in it.
 *
 * An .rmdl file is one msgpack map (docs/model.md has the full layout):
 *
 *   format "rmdl", version 1, objective, base_margin (float32), features
 *   [str...], then either trees [{feature, threshold, left, right,
 *   default_left, value, cover}...] (parallel arrays, one entry per node,
 *   node 0 the root, children -1 at leaves) or weights [float32...] and bias,
 *   an optional meta {str: str}, and last crc32c.
 *
 * The file always starts with the bytes of `{"format": "rmdl", "version": 1`
 * and always ends with the key "crc32c" and its value as a 4-byte msgpack
 * uint32: the CRC-32C of every byte before those 4. So the reader can tell
 * "not a model", "a newer version", "truncated" and "corrupt" apart before it
 * parses anything, and any msgpack tool can still read the whole file.
 *
 * Reading never trusts a count: every array length is checked against the
 * limits in model.h and against the bytes left before anything is allocated
 * for it, every item's type is checked, and all structural validation of the
 * trees happens in rk_model_finish (model.c), shared with the importer. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "lib/err.h"
#include "model/model_int.h"
#include "proto/mp.h"

#define RMDL_VERSION 1
#define TRAILER_LEN 12 /* fixstr "crc32c" (7 bytes) + 0xce + 4 bytes of CRC */

static const uint8_t trailer_key[8] = {0xa6, 'c', 'r', 'c', '3', '2', 'c', 0xce};

/* ---- Writing ------------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The columns of a tree, in file order. One function writes any of them so
 * that the writer and the reader's key table cannot disagree on a name. */
enum { COL_FEATURE, COL_THRESHOLD, COL_LEFT, COL_RIGHT, COL_DEFAULT_LEFT, COL_VALUE, COL_COVER, NCOLS };
static const char *const col_names[NCOLS] = {"feature", "threshold", "left", "right",
                                             "default_left", "value", "cover"};

static void pack_column(msgpack_packer *pk, const rk_model *m, uint32_t t, int col)
{
    uint32_t first = m->root[t], end = m->root[t + 1];
    pack_str(pk, col_names[col]);
    msgpack_pack_array(pk, end - first);
    for (uint32_t i = first; i < end; i++) {
        const rk_node *nd = &m->nodes[i];
        bool leaf = nd->child[0] == i;
        switch (col) {
        case COL_FEATURE:
            msgpack_pack_uint32(pk, leaf ? 0 : nd->feature & RK_NODE_FEATURE_MASK);
            break;
        case COL_THRESHOLD:
            msgpack_pack_float(pk, leaf ? 0.0f : nd->value);
            break;
        case COL_LEFT:
        case COL_RIGHT:
            if (leaf)
                msgpack_pack_int32(pk, -1);
            else
                msgpack_pack_uint32(pk, nd->child[col - COL_LEFT] - first);
            break;
        case COL_DEFAULT_LEFT:
            if (!leaf && (nd->feature & RK_NODE_DEFAULT_LEFT))
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
            break;
        case COL_VALUE:
            msgpack_pack_float(pk, m->mean[i]);
            break;
        case COL_COVER:
            msgpack_pack_float(pk, m->cover[i]);
            break;
        }
    }
}

int rk_model_encode(const rk_model *m, uint8_t **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    bool trees = m->objective == RK_MODEL_TREES;
    msgpack_pack_map(&pk, 6 + (trees ? 1 : 2) + (m->nmeta > 0));
    pack_str(&pk, "format");
    pack_str(&pk, "rmdl");
    pack_str(&pk, "version");
    msgpack_pack_uint32(&pk, RMDL_VERSION);
    pack_str(&pk, "objective");
    pack_str(&pk, rk_model_objective_name(m->objective));
    pack_str(&pk, "base_margin");
    msgpack_pack_float(&pk, m->base_margin);
    pack_str(&pk, "features");
    msgpack_pack_array(&pk, m->nfeatures);
    for (uint32_t i = 0; i < m->nfeatures; i++)
        pack_str(&pk, m->names[i]);
    if (trees) {
        pack_str(&pk, "trees");
        msgpack_pack_array(&pk, m->ntrees);
        for (uint32_t t = 0; t < m->ntrees; t++) {
            msgpack_pack_map(&pk, NCOLS);
            for (int c = 0; c < NCOLS; c++)
                pack_column(&pk, m, t, c);
        }
    } else {
        pack_str(&pk, "weights");
        msgpack_pack_array(&pk, m->nfeatures);
        for (uint32_t i = 0; i < m->nfeatures; i++)
            msgpack_pack_float(&pk, m->weights[i]);
        pack_str(&pk, "bias");
        msgpack_pack_float(&pk, m->bias);
    }
    if (m->nmeta) {
        pack_str(&pk, "meta");
        msgpack_pack_map(&pk, m->nmeta);
        for (uint32_t i = 0; i < m->nmeta; i++) {
            pack_str(&pk, m->meta_key[i]);
            pack_str(&pk, m->meta_val[i]);
        }
    }
    /* The trailer: key and type byte through msgpack_sbuffer_write, the CRC
     * of everything so far in big-endian order, as msgpack stores a uint32. */
    msgpack_sbuffer_write(&sb, (const char *)trailer_key, sizeof trailer_key);
    uint32_t crc = sb.data ? rk_model_crc32c(0, sb.data, sb.size) : 0;
    uint8_t be[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                     (uint8_t)crc};
    msgpack_sbuffer_write(&sb, (const char *)be, sizeof be);
    /* msgpack_sbuffer_write returns -1 when realloc fails and drops the bytes;
     * a buffer without its full trailer is the sign. */
    if (!sb.data || sb.size < TRAILER_LEN ||
        memcmp(sb.data + sb.size - TRAILER_LEN, trailer_key, sizeof trailer_key) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return RK_ENOMEM;
    }
    *len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

int rk_model_save(const rk_model *m, const char *path, rk_diag *diag)
{
    uint8_t *buf;
    size_t len;
    if (rk_model_encode(m, &buf, &len) < 0) {
        rk_diag_set(diag, path, 0, 0, "out of memory");
        return RK_ENOMEM;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) {
        free(buf);
        rk_diag_set(diag, path, 0, 0, "out of memory");
        return RK_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int fd = mkstemp(tmp);
    int rc = 0;
    if (fd < 0) {
        rk_diag_set(diag, path, 0, 0, "cannot create a temporary file next to it: %s",
                    strerror(errno));
        rc = RK_EIO;
    } else {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(fd, buf + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        if (done < len || fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
            rk_diag_set(diag, path, 0, 0, "cannot write: %s", strerror(errno));
            rc = RK_EIO;
        }
        if (close(fd) < 0 && rc == 0) {
            rk_diag_set(diag, path, 0, 0, "cannot write: %s", strerror(errno));
            rc = RK_EIO;
        }
        if (rc == 0 && rename(tmp, path) < 0) {
            rk_diag_set(diag, path, 0, 0, "cannot rename the temporary file over it: %s",
                        strerror(errno));
            rc = RK_EIO;
        }
        if (rc < 0)
            unlink(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}

/* ---- Reading ------------------------------------------------------------------ */

typedef struct reader {
    rk_mp r;          /* the cursor over the whole file */
    const char *file; /* name for diagnostics */
    rk_diag *diag;    /* where problems go */
    rk_model *m;      /* the model being filled */
} reader;

static int rfail(reader *rd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rfail(reader *rd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rk_model_vfail(rd->diag, rd->file, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Reads the item at rd->r into *it, which must be of type want (RK_MP_UINT
 * also accepts RK_MP_INT, for the caller to range-check; RK_MP_FLOAT64 accepts
 * any number). what names the item in the message: "'features'",
 * "tree 3 'left'". */
static int read_as(reader *rd, rk_mp_type want, const char *what, rk_mp_item *it)
{
    size_t at = rd->r.pos;
    int rc = rk_mp_read(&rd->r, it);
    if (rc == RK_EPARSE)
        return rfail(rd, RK_EPARSE, "byte %zu: %s is cut short (the file is truncated)", at,
                     what);
    if (rc < 0)
        return rfail(rd, RK_EPARSE, "byte %zu: %s is not valid msgpack", at, what);
    bool ok = it->type == want;
    if (want == RK_MP_UINT)
        ok = it->type == RK_MP_UINT || it->type == RK_MP_INT;
    if (want == RK_MP_FLOAT64)
        ok = it->type == RK_MP_UINT || it->type == RK_MP_INT || it->type == RK_MP_FLOAT32 ||
             it->type == RK_MP_FLOAT64;
    if (!ok) {
        rd->r.pos = at;
        return rfail(rd, RK_EPARSE, "byte %zu: %s must be %s, not %s", at, what,
                     want == RK_MP_FLOAT64 ? "a number" : want == RK_MP_UINT ? "an integer"
                     : want == RK_MP_BOOL ? "true or false" : want == RK_MP_STR ? "a string"
                     : want == RK_MP_ARRAY ? "an array" : "a map",
                     rk_mp_type_name(it->type));
    }
    /* A container announcing more elements than there are bytes left is
     * hostile or truncated; refuse before anyone allocates for it. */
    if ((want == RK_MP_ARRAY || want == RK_MP_MAP) && it->n > rk_mp_left(&rd->r))
        return rfail(rd, RK_EPARSE, "byte %zu: %s has %u entries but the file ends first", at,
                     what, it->n);
    return 0;
}

/* A number that must be exactly a float32 (NaN and infinities pass through,
 * for rk_model_finish to report with the node they belong to). */
static int read_f32(reader *rd, const char *what, float *out)
{
    rk_mp_item it;
    double d;
    int rc = read_as(rd, RK_MP_FLOAT64, what, &it);
    if (rc < 0)
        return rc;
    rk_mp_double(&it, &d);
    if (isfinite(d) && (fabs(d) > FLT_MAX || (double)(float)d != d))
        return rfail(rd, RK_ERANGE, "%s: %.17g is not a float32 value", what, d);
    *out = (float)d;
    return 0;
}

/* Reads a map's keys against a table: for each key in names, where its value
 * starts (pos[k], 0 when absent). Unknown and repeated keys are errors. The
 * cursor ends after the map. */
static int index_map(reader *rd, uint32_t n, const char *const *names, size_t nnames,
                     size_t *pos, const char *what)
{
    for (size_t k = 0; k < nnames; k++)
        pos[k] = 0;
    for (uint32_t e = 0; e < n; e++) {
        rk_mp_item key;
        size_t at = rd->r.pos;
        int rc = read_as(rd, RK_MP_STR, "a key", &key);
        if (rc < 0)
            return rc;
        size_t k = 0;
        while (k < nnames && !rk_mp_str_eq(&key, names[k]))
            k++;
        if (k == nnames) {
            const char *near = NULL;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(key.raw.len < 60 ? key.raw.len : 60),
                     (const char *)key.raw.p);
            near = rk_suggest(name, names, nnames);
            return rfail(rd, RK_EPARSE, "byte %zu: unknown key '%s' in %s%s%s%s", at, name, what,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        }
        if (pos[k])
            return rfail(rd, RK_EEXISTS, "byte %zu: key '%s' appears twice in %s", at, names[k],
                         what);
        pos[k] = rd->r.pos;
        rc = rk_mp_skip(&rd->r, 4);
        if (rc == RK_ERANGE)
            return rfail(rd, RK_EPARSE, "byte %zu: the value of '%s' is nested too deeply", at,
                         names[k]);
        if (rc < 0)
            return rfail(rd, RK_EPARSE,
                         "byte %zu: the value of '%s' is cut short or not valid msgpack", at,
                         names[k]);
    }
    return 0;
}

/* One column of tree t (n nodes, the first at index first). */
static int read_column(reader *rd, uint32_t t, int col, uint32_t n, uint32_t first)
{
    rk_model *m = rd->m;
    char what[64];
    snprintf(what, sizeof what, "tree %u '%s'", t, col_names[col]);
    rk_mp_item it;
    int rc = read_as(rd, RK_MP_ARRAY, what, &it);
    if (rc < 0)
        return rc;
    if (it.n != n)
        return rfail(rd, RK_EPARSE, "tree %u: '%s' has %u entries but 'left' has %u", t,
                     col_names[col], it.n, n);
    for (uint32_t i = 0; i < n; i++) {
        rk_node *nd = &m->nodes[first + i];
        snprintf(what, sizeof what, "tree %u node %u '%s'", t, i, col_names[col]);
        int64_t v;
        switch (col) {
        case COL_FEATURE:
        case COL_LEFT:
        case COL_RIGHT:
            if ((rc = read_as(rd, RK_MP_UINT, what, &it)) < 0)
                return rc;
            if (rk_mp_int64(&it, &v) < 0)
                v = INT64_MAX;
            if (col == COL_FEATURE) {
                /* Range-checked against the feature count by rk_model_finish;
                 * here only what cannot be stored is refused. */
                if (v < 0 || v > (int64_t)RK_NODE_FEATURE_MASK)
                    return rfail(rd, RK_ERANGE, "%s: %lld is not a feature index", what,
                                 (long long)v);
                nd->feature |= (uint32_t)v;
            } else {
                if (v < -1 || v >= (int64_t)RK_NODE_NONE)
                    return rfail(rd, RK_ECORRUPT, "%s: %lld is not a node index (-1 for none)",
                                 what, (long long)v);
                nd->child[col - COL_LEFT] = v < 0 ? RK_NODE_NONE : (uint32_t)v;
            }
            break;
        case COL_DEFAULT_LEFT:
            if ((rc = read_as(rd, RK_MP_BOOL, what, &it)) < 0)
                return rc;
            if (it.b)
                nd->feature |= RK_NODE_DEFAULT_LEFT;
            break;
        case COL_THRESHOLD:
            rc = read_f32(rd, what, &nd->value);
            break;
        case COL_VALUE:
            rc = read_f32(rd, what, &m->mean[first + i]);
            break;
        case COL_COVER:
            rc = read_f32(rd, what, &m->cover[first + i]);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_tree(reader *rd, uint32_t t)
{
    char what[32];
    snprintf(what, sizeof what, "tree %u", t);
    rk_mp_item it;
    int rc = read_as(rd, RK_MP_MAP, what, &it);
    if (rc < 0)
        return rc;
    size_t pos[NCOLS];
    if ((rc = index_map(rd, it.n, col_names, NCOLS, pos, what)) < 0)
        return rc;
    size_t end = rd->r.pos;
    for (int c = 0; c < NCOLS; c++)
        if (!pos[c])
            return rfail(rd, RK_EPARSE, "tree %u: no '%s'", t, col_names[c]);

    /* The node count is the length of 'left'; the other columns must agree. */
    rd->r.pos = pos[COL_LEFT];
    snprintf(what, sizeof what, "tree %u 'left'", t);
    if ((rc = read_as(rd, RK_MP_ARRAY, what, &it)) < 0)
        return rc;
    uint32_t n = it.n, first;
    if (n == 0)
        return rfail(rd, RK_EPARSE, "tree %u: has no nodes", t);
    rc = rk_model_add_tree(rd->m, n, &first);
    if (rc == RK_ETOOBIG)
        return rfail(rd, rc, "tree %u: %u nodes is too many (at most %u in a tree, %u in all)",
                     t, n, RK_MODEL_MAX_TREE_NODES, RK_MODEL_MAX_NODES);
    if (rc < 0)
        return rfail(rd, rc, "out of memory");
    for (int c = 0; c < NCOLS; c++) {
        rd->r.pos = pos[c];
        if ((rc = read_column(rd, t, c, n, first)) < 0)
            return rc;
    }
    rd->r.pos = end;
    return 0;
}

/* The top-level keys, in the order the writer puts them. */
enum { K_FORMAT, K_VERSION, K_OBJECTIVE, K_BASE_MARGIN, K_FEATURES, K_TREES, K_WEIGHTS, K_BIAS,
       K_META, K_CRC, NKEYS };
static const char *const key_names[NKEYS] = {
    "format", "version", "objective", "base_margin", "features", "trees", "weights", "bias",
    "meta",   "crc32c",
};

/* Reads a string item into a NUL-terminated buffer. */
static int read_str(reader *rd, const char *what, char *buf, size_t size, size_t max)
{
    rk_mp_item it;
    int rc = read_as(rd, RK_MP_STR, what, &it);
    if (rc < 0)
        return rc;
    if (it.raw.len > max || it.raw.len >= size)
        return rfail(rd, RK_ETOOBIG, "%s is longer than %zu bytes", what, max);
    memcpy(buf, it.raw.p, it.raw.len);
    buf[it.raw.len] = '\0';
    return 0;
}

static int read_meta(reader *rd)
{
    rk_mp_item it;
    int rc = read_as(rd, RK_MP_MAP, "'meta'", &it);
    if (rc < 0)
        return rc;
    if (it.n > RK_MODEL_MAX_META)
        return rfail(rd, RK_ETOOBIG, "'meta' has %u entries; the limit is %u", it.n,
                     RK_MODEL_MAX_META);
    char key[RK_MODEL_MAX_META_LEN + 1], val[RK_MODEL_MAX_META_LEN + 1];
    for (uint32_t i = 0; i < it.n; i++) {
        if ((rc = read_str(rd, "a 'meta' key", key, sizeof key, RK_MODEL_MAX_META_LEN)) < 0 ||
            (rc = read_str(rd, "a 'meta' value", val, sizeof val, RK_MODEL_MAX_META_LEN)) < 0)
            return rc;
        size_t before = rd->m->nmeta;
        rc = rk_model_set_meta(rd->m, key, val);
        if (rc == 0 && rd->m->nmeta == before)
            rc = RK_EEXISTS;
        if (rc < 0)
            return rfail(rd, rc, "'meta' entry '%s': %s", key,
                         rc == RK_EEXISTS ? "appears twice" : rk_strerror(rc));
    }
    return 0;
}

static int read_linear(reader *rd, const size_t *pos)
{
    rk_model *m = rd->m;
    rk_mp_item it;
    rd->r.pos = pos[K_WEIGHTS];
    int rc = read_as(rd, RK_MP_ARRAY, "'weights'", &it);
    if (rc < 0)
        return rc;
    if (it.n != m->nfeatures)
        return rfail(rd, RK_EPARSE, "'weights' has %u entries but there are %u features", it.n,
                     m->nfeatures);
    char what[48];
    for (uint32_t i = 0; i < it.n; i++) {
        snprintf(what, sizeof what, "weight %u", i);
        if ((rc = read_f32(rd, what, &m->weights[i])) < 0)
            return rc;
    }
    rd->r.pos = pos[K_BIAS];
    return read_f32(rd, "'bias'", &m->bias);
}

/* Everything after the checks of the header and the checksum: the keys of the
 * top-level map (n entries, the first two already read), in any order. */
static int read_body(reader *rd, uint32_t n, size_t first_key)
{
    size_t pos[NKEYS];
    rd->r.pos = first_key;
    int rc = index_map(rd, n, key_names, NKEYS, pos, "the model");
    if (rc < 0)
        return rc;
    if (pos[K_FORMAT] || pos[K_VERSION])
        return rfail(rd, RK_EEXISTS, "'%s' appears twice", pos[K_FORMAT] ? "format" : "version");
    if (rd->r.pos != rd->r.len)
        return rfail(rd, RK_EPARSE, "byte %zu: data after the end of the model", rd->r.pos);
    if (pos[K_CRC] != rd->r.len - 5)
        return rfail(rd, RK_EPARSE, "'crc32c' must be the last entry");
    static const int required[] = {K_OBJECTIVE, K_BASE_MARGIN, K_FEATURES};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++)
        if (!pos[required[k]])
            return rfail(rd, RK_EPARSE, "no '%s'", key_names[required[k]]);

    rk_mp_item it;
    rd->r.pos = pos[K_OBJECTIVE];
    if ((rc = read_as(rd, RK_MP_STR, "'objective'", &it)) < 0)
        return rc;
    int obj = rk_model_objective_find((const char *)it.raw.p, it.raw.len);
    if (obj < 0)
        return rfail(rd, RK_EUNSUPPORTED,
                     "objective '%.*s' is not supported (binary:logistic or "
                     "logistic_regression)",
                     (int)(it.raw.len < 64 ? it.raw.len : 64), (const char *)it.raw.p);
    /* Which keys the objective needs, and which it must not have. */
    static const int own[2][3] = {[RK_MODEL_TREES] = {K_TREES, -1, -1},
                                  [RK_MODEL_LINEAR] = {K_WEIGHTS, K_BIAS, -1}};
    static const int other[2][3] = {[RK_MODEL_TREES] = {K_WEIGHTS, K_BIAS, -1},
                                    [RK_MODEL_LINEAR] = {K_TREES, -1, -1}};
    for (int k = 0; k < 3 && own[obj][k] >= 0; k++)
        if (!pos[own[obj][k]])
            return rfail(rd, RK_EPARSE, "no '%s' (a %s model has one)", key_names[own[obj][k]],
                         rk_model_objective_name(obj));
    for (int k = 0; k < 3 && other[obj][k] >= 0; k++)
        if (pos[other[obj][k]])
            return rfail(rd, RK_EPARSE, "'%s' does not belong in a %s model",
                         key_names[other[obj][k]], rk_model_objective_name(obj));

    rd->m = rk_model_new((rk_model_objective)obj);
    if (!rd->m)
        return rfail(rd, RK_ENOMEM, "out of memory");
    rk_model *m = rd->m;

    rd->r.pos = pos[K_BASE_MARGIN];
    if ((rc = read_f32(rd, "'base_margin'", &m->base_margin)) < 0)
        return rc;

    rd->r.pos = pos[K_FEATURES];
    if ((rc = read_as(rd, RK_MP_ARRAY, "'features'", &it)) < 0)
        return rc;
    rc = rk_model_set_nfeatures(m, it.n);
    if (rc == RK_ETOOBIG)
        return rfail(rd, rc, "%u features is too many (the limit is %u)", it.n,
                     RK_MODEL_MAX_FEATURES);
    if (rc < 0)
        return rfail(rd, rc, "out of memory");
    for (uint32_t i = 0; i < m->nfeatures; i++) {
        rk_mp_item s;
        char what[32];
        snprintf(what, sizeof what, "feature %u", i);
        if ((rc = read_as(rd, RK_MP_STR, what, &s)) < 0 ||
            (rc = rk_model_set_name(m, i, (const char *)s.raw.p, s.raw.len, rd->file,
                                    rd->diag)) < 0)
            return rc;
    }

    if (obj == RK_MODEL_TREES) {
        rd->r.pos = pos[K_TREES];
        if ((rc = read_as(rd, RK_MP_ARRAY, "'trees'", &it)) < 0)
            return rc;
        rc = rk_model_reserve_trees(m, it.n);
        if (rc == RK_ETOOBIG)
            return rfail(rd, rc, "%u trees is too many (the limit is %u)", it.n,
                         RK_MODEL_MAX_TREES);
        if (rc < 0)
            return rfail(rd, rc, "out of memory");
        for (uint32_t t = 0; t < it.n; t++)
            if ((rc = read_tree(rd, t)) < 0)
                return rc;
    } else if ((rc = read_linear(rd, pos)) < 0) {
        return rc;
    }

    if (pos[K_META]) {
        rd->r.pos = pos[K_META];
        if ((rc = read_meta(rd)) < 0)
            return rc;
    }
    return rk_model_finish(m, rd->file, rd->diag);
}

/* The fixed start: a map whose first entries are format "rmdl" and version 1.
 * Sets *n to the map's size and *next to the offset after the version. */
static int read_header(reader *rd, uint32_t *n, size_t *next)
{
    rk_mp_item map, k, v;
    if (rk_mp_read(&rd->r, &map) < 0 || map.type != RK_MP_MAP || map.n < 2 ||
        rk_mp_read(&rd->r, &k) < 0 || !rk_mp_str_eq(&k, "format") ||
        rk_mp_read(&rd->r, &v) < 0 || !rk_mp_str_eq(&v, "rmdl"))
        return rfail(rd, RK_EPARSE, "not an rmdl model file (it does not start with format "
                                    "\"rmdl\")");
    int64_t version;
    if (rk_mp_read(&rd->r, &k) < 0 || !rk_mp_str_eq(&k, "version") ||
        rk_mp_read(&rd->r, &v) < 0 || rk_mp_int64(&v, &version) < 0)
        return rfail(rd, RK_EPARSE, "truncated or corrupt: no version after format \"rmdl\"");
    if (version != RMDL_VERSION)
        return rfail(rd, RK_EUNSUPPORTED,
                     "rmdl version %lld is not supported (this riskd reads version %d)",
                     (long long)version, RMDL_VERSION);
    *n = map.n;
    *next = rd->r.pos;
    return 0;
}

static int check_trailer(reader *rd)
{
    const uint8_t *b = rd->r.buf;
    size_t len = rd->r.len;
    if (len < TRAILER_LEN || memcmp(b + len - TRAILER_LEN, trailer_key, sizeof trailer_key) != 0)
        return rfail(rd, RK_EPARSE,
                     "truncated or corrupt: the file does not end with its crc32c checksum");
    const uint8_t *s = b + len - 4;
    uint32_t stored = (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3];
    uint32_t actual = rk_model_crc32c(0, b, len - 4);
    if (stored != actual)
        return rfail(rd, RK_ECORRUPT,
                     "checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                     stored, actual);
    return 0;
}

int rk_model_load_mem(const char *name, const uint8_t *buf, size_t len, rk_model **out,
                      rk_diag *diag)
{
    reader rd = {.file = name, .diag = diag};
    if (len > RK_MODEL_FILE_MAX)
        return rfail(&rd, RK_ETOOBIG, "file is %zu bytes; the limit is %u", len,
                     RK_MODEL_FILE_MAX);
    rk_mp_init(&rd.r, buf, len);
    uint32_t n = 0;
    size_t first_key = 0;
    int rc = read_header(&rd, &n, &first_key);
    if (rc == 0)
        rc = check_trailer(&rd);
    if (rc == 0)
        rc = read_body(&rd, n - 2, first_key);
    if (rc < 0) {
        rk_model_free(rd.m);
        return rc;
    }
    *out = rd.m;
    return 0;
}

int rk_model_load(const char *path, rk_model **out, rk_diag *diag)
{
    uint8_t *buf;
    size_t len;
    int rc = rk_model_read_file(path, RK_MODEL_FILE_MAX, &buf, &len, diag);
    if (rc < 0)
        return rc;
    rc = rk_model_load_mem(path, buf, len, out, diag);
    free(buf);
    return rc;
}
