/* libFuzzer target for the request decoder: arbitrary bytes go to
 * rk_proto_decode with a schema declaring one extra of each type, and the
 * outcome is encoded as the server would (an error reply, or a score reply
 * echoing the decoded id) into a small buffer. Beyond "no crash, no
 * sanitizer report", it checks the decoder's contract: error codes and
 * messages are well formed, decoded values have their declared types and
 * point inside the input, required fields are there, and anything encoded
 * without overflow is exactly one well-formed msgpack value.
 *
 *   build/fuzz_decode -max_len=8192 tests/fuzz/corpus/decode */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "proto/mp.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const rk_schema schema = {
    .n = 4,
    .f = {{"age", RK_T_INT}, {"hint", RK_T_FLOAT}, {"seg", RK_T_STR}, {"vip", RK_T_BOOL}},
};

static void check(int ok)
{
    if (!ok)
        abort();
}

static int inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
    const uint8_t *q = p;
    return q >= data && n <= size && q - data <= (ptrdiff_t)(size - n);
}

/* The encoded reply is one complete msgpack value, unless it overflowed. */
static void check_encoded(const rk_outbuf *out, int rc)
{
    check((rc == RK_ETOOBIG) == out->overflow);
    check(out->len <= out->cap);
    if (rc == 0) {
        rk_mp r;
        rk_mp_init(&r, out->buf, out->len);
        check(rk_mp_skip(&r, 4) == 0 && r.pos == out->len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rk_txn txn;
    static const char *const reasons[] = {"card_testing", "model_high"};
    rk_request req;
    rk_proto_err err;
    uint8_t mem[200];
    rk_outbuf out;

    /* The look-up admin handlers use, on the same bytes. */
    rk_mp_item it;
    rk_mp next;
    if (rk_mp_map_find(data, size, "seg", &it, &next) == 0) {
        check(next.pos <= size);
        if (it.type == RK_MP_STR || it.type == RK_MP_BIN || it.type == RK_MP_EXT)
            check(inside(it.raw.p, it.raw.len, data, size));
    }

    for (int i = 0; i < RK_MAX_SLOTS; i++)
        txn.v[i] = rk_value_int(-777);
    int rc = rk_proto_decode(data, size, &schema, &req, &txn, &err);
    rk_outbuf_init(&out, mem, sizeof mem);

    check(req.body == data && req.body_len == size);
    if (req.id)
        check(req.id_len <= RK_STR_FIELD_MAX && inside(req.id, req.id_len, data, size));

    if (rc < 0) {
        check(rc == RK_EPARSE);
        check(err.code == RK_WERR_BAD_REQUEST || err.code == RK_WERR_UNSUPPORTED);
        size_t n = strnlen(err.msg, sizeof err.msg);
        check(n > 0 && n < sizeof err.msg);
        for (size_t i = 0; i < n; i++)
            check(err.msg[i] >= 0x20 && err.msg[i] < 0x7f);
        rc = rk_proto_encode_error(&out, req.id, req.id_len, err.code, err.msg);
        check_encoded(&out, rc);
        return 0;
    }

    check(err.code == RK_WERR_NONE);
    check(req.op >= 0 && req.op < RK_OP__COUNT);
    if (req.op != RK_OP_SCORE) {
        for (int i = 0; i < RK_MAX_SLOTS; i++)
            check(txn.v[i].type == RK_T_INT && txn.v[i].i == -777);
        rc = rk_proto_encode_ok(&out);
        check_encoded(&out, rc);
        return 0;
    }

    int nslots = RK_F__STD + schema.n;
    for (int s = 0; s < nslots; s++) {
        const rk_value *v = &txn.v[s];
        rk_type want = s < RK_F__STD ? rk_field_type(s) : schema.f[s - RK_F__STD].type;
        check(v->type == RK_T_MISSING || v->type == want);
        if (s < RK_F__STD && rk_field_required(s))
            check(v->type != RK_T_MISSING);
        if (v->type == RK_T_STR)
            check(inside(v->s, v->len, data, size));
    }
    for (int s = nslots; s < RK_MAX_SLOTS; s++)
        check(txn.v[s].type == RK_T_INT && txn.v[s].i == -777);
    check(txn.v[RK_F_AMOUNT].i >= 0);
    check(txn.v[RK_F_ID].len <= RK_STR_FIELD_MAX && txn.v[RK_F_ACCOUNT].len <= RK_STR_FIELD_MAX);
    check(req.id == txn.v[RK_F_ID].s && req.id_len == txn.v[RK_F_ID].len);

    rk_reply reply = {
        .id = req.id,
        .id_len = req.id_len,
        .decision = "review",
        .score = (double)(txn.v[RK_F_AMOUNT].i % 1000),
        .has_model_score = txn.v[RK_F__STD + 1].type == RK_T_FLOAT,
        .model_score = txn.v[RK_F__STD + 1].f,
        .reasons = reasons,
        .nreasons = 2,
        .shadow = reasons,
        .nshadow = req.explain,
        .shadow_decision = req.explain ? "block" : NULL,
        .ruleset = "fuzz@1",
        .took_us = txn.v[RK_F_AMOUNT].i,
        .degraded = txn.v[RK_F__STD + 3].type == RK_T_BOOL && txn.v[RK_F__STD + 3].b,
    };
    rc = rk_proto_encode_reply(&out, &reply);
    check_encoded(&out, rc);
    return 0;
}
