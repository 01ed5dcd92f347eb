/* The reply encoder: score replies, error replies and {"ok": true}, packed by
 * msgpack-c into a caller-owned fixed buffer (DESIGN.md section 2).
 *
 * rk_outbuf's packer writes through write_fixed(), which appends while the
 * bytes fit and otherwise sets `overflow` and drops this write and every later
 * one, so an overflowed buffer holds a clean prefix and never a message with
 * a hole in it. The packer keeps a pointer to its rk_outbuf: an outbuf must
 * not be copied or moved after rk_outbuf_init. The encode functions append
 * (call rk_outbuf_reset for a fresh message) and report an overflow, theirs or
 * an earlier one, as RK_ETOOBIG. Nothing here allocates. */
#include <math.h>
#include <string.h>

#include "lib/err.h"
#include "proto/proto.h"

static int write_fixed(void *data, const char *p, size_t n)
{
    rk_outbuf *out = data;
    if (out->overflow || n > out->cap - out->len) {
        out->overflow = true;
        return -1;
    }
    memcpy(out->buf + out->len, p, n);
    out->len += n;
    return 0;
}

void rk_outbuf_init(rk_outbuf *out, uint8_t *mem, size_t cap)
{
    out->buf = mem;
    out->cap = cap;
    out->len = 0;
    out->overflow = false;
    msgpack_packer_init(&out->pk, out, write_fixed);
}

/* A string of known length; NULL packs nil. */
static void pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void rk_outbuf_str(rk_outbuf *out, const char *s)
{
    pack_strn(&out->pk, s, s ? strlen(s) : 0);
}

static void pack_strs(rk_outbuf *out, const char *const *v, int n)
{
    msgpack_pack_array(&out->pk, n > 0 ? (size_t)n : 0);
    for (int i = 0; i < n; i++)
        rk_outbuf_str(out, v[i]);
}

/* explain: {bias, contributions: [{feature, value, contribution}, ...]} */
static void pack_explain(rk_outbuf *out, const rk_reply *r)
{
    msgpack_packer *pk = &out->pk;
    rk_outbuf_str(out, "explain");
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "bias");
    msgpack_pack_double(pk, r->explain_bias);
    rk_outbuf_str(out, "contributions");
    msgpack_pack_array(pk, r->ncontribs > 0 ? (size_t)r->ncontribs : 0);
    for (int i = 0; i < r->ncontribs; i++) {
        const rk_reply_contrib *c = &r->contribs[i];
        msgpack_pack_map(pk, 3);
        rk_outbuf_str(out, "feature");
        rk_outbuf_str(out, c->feature);
        rk_outbuf_str(out, "value");
        if (isnan(c->value))
            msgpack_pack_nil(pk);
        else
            msgpack_pack_double(pk, c->value);
        rk_outbuf_str(out, "contribution");
        msgpack_pack_double(pk, c->contribution);
    }
}

static int done(const rk_outbuf *out)
{
    return out->overflow ? RK_ETOOBIG : 0;
}

size_t rk_proto_reply_id_at(size_t id_len)
{
    /* fixmap (at most 12 keys), fixstr "id", then the id's str header */
    size_t str_hdr = id_len < 32 ? 1 : id_len < 256 ? 2 : id_len < 65536 ? 3 : 5;
    return 1 + 3 + str_hdr;
}

int rk_proto_encode_reply(rk_outbuf *out, const rk_reply *r)
{
    msgpack_packer *pk = &out->pk;
    bool shadow = r->nshadow > 0;
    bool shadow_decision = r->shadow_decision != NULL;
    /* id decision score model_score reasons ruleset took_us, then the optional keys */
    size_t nkeys = 7 + shadow + shadow_decision + r->degraded + r->replayed + r->has_explain;

    msgpack_pack_map(pk, nkeys);
    rk_outbuf_str(out, "id");
    pack_strn(pk, r->id, r->id_len);
    rk_outbuf_str(out, "decision");
    rk_outbuf_str(out, r->decision);
    rk_outbuf_str(out, "score");
    msgpack_pack_double(pk, r->score);
    rk_outbuf_str(out, "model_score");
    if (r->has_model_score)
        msgpack_pack_double(pk, r->model_score);
    else
        msgpack_pack_nil(pk);
    rk_outbuf_str(out, "reasons");
    pack_strs(out, r->reasons, r->nreasons);
    if (shadow) {
        rk_outbuf_str(out, "shadow");
        pack_strs(out, r->shadow, r->nshadow);
    }
    if (shadow_decision) {
        rk_outbuf_str(out, "shadow_decision");
        rk_outbuf_str(out, r->shadow_decision);
    }
    rk_outbuf_str(out, "ruleset");
    rk_outbuf_str(out, r->ruleset);
    rk_outbuf_str(out, "took_us");
    msgpack_pack_int64(pk, r->took_us);
    if (r->degraded) {
        rk_outbuf_str(out, "degraded");
        msgpack_pack_true(pk);
    }
    if (r->replayed) {
        rk_outbuf_str(out, "replayed");
        msgpack_pack_true(pk);
    }
    if (r->has_explain)
        pack_explain(out, r);
    return done(out);
}

int rk_proto_encode_error(rk_outbuf *out, const char *id, uint32_t id_len, rk_wire_err code,
                          const char *msg)
{
    msgpack_packer *pk = &out->pk;
    msgpack_pack_map(pk, id ? 2 : 1);
    if (id) {
        rk_outbuf_str(out, "id");
        pack_strn(pk, id, id_len);
    }
    rk_outbuf_str(out, "error");
    msgpack_pack_map(pk, 2);
    rk_outbuf_str(out, "code");
    rk_outbuf_str(out, rk_wire_err_name(code));
    rk_outbuf_str(out, "message");
    rk_outbuf_str(out, msg ? msg : rk_wire_err_name(code));
    return done(out);
}

int rk_proto_encode_ok(rk_outbuf *out)
{
    msgpack_pack_map(&out->pk, 1);
    rk_outbuf_str(out, "ok");
    msgpack_pack_true(&out->pk);
    return done(out);
}
