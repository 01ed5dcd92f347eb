/* Tests of the reply encoder (src/proto/encode.c): each reply is read back
 * with msgpack-c's own unpacker and checked key by key, including which keys
 * are left out when, and a buffer too small for the reply must give
 * RK_ETOOBIG at every size short of the full one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/proto.h"

static uint8_t mem[4096];
static rk_outbuf out;
static msgpack_unpacked up;

/* Unpacks the whole of out into `up`: exactly one object, nothing after it. */
static const msgpack_object *unpack(void)
{
    size_t off = 0;
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, (const char *)out.buf, out.len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, out.len);
    return &up.data;
}

/* The value of key in map o, or NULL. */
static const msgpack_object *get(const msgpack_object *o, const char *key)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
        if (kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

static void assert_str(const msgpack_object *o, const char *s)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(s));
    assert_memory_equal(o->via.str.ptr, s, o->via.str.size);
}

static void assert_strs(const msgpack_object *o, const char *const *v, int n)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, n);
    for (int i = 0; i < n; i++)
        assert_str(&o->via.array.ptr[i], v[i]);
}

static void assert_true_obj(const msgpack_object *o)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(o->via.boolean);
}

static int setup(void **state)
{
    rk_outbuf_init(&out, mem, sizeof mem);
    msgpack_unpacked_init(&up);
    return 0;
}

static int teardown(void **state)
{
    msgpack_unpacked_destroy(&up);
    return 0;
}

static const char *const reasons[] = {"card_testing", "model_high"};
static const char *const shadow[] = {"night_foreign_candidate"};

static rk_reply full_reply(void)
{
    return (rk_reply){
        .id = "txn-0001xyz",
        .id_len = 8, /* only a prefix is the id: lengths are honoured */
        .decision = "block",
        .score = 110.5,
        .has_model_score = true,
        .model_score = 0.93,
        .reasons = reasons,
        .nreasons = 2,
        .shadow = shadow,
        .nshadow = 1,
        .shadow_decision = "block",
        .ruleset = "default@2026.11.1",
        .took_us = 87,
        .degraded = true,
        .replayed = true,
    };
}

static void test_full_reply(void **state)
{
    rk_reply r = full_reply();
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    assert_false(out.overflow);
    const msgpack_object *o = unpack();
    assert_int_equal(o->via.map.size, 11);
    assert_str(get(o, "id"), "txn-0001");
    assert_str(get(o, "decision"), "block");
    const msgpack_object *score = get(o, "score");
    assert_int_equal(score->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(score->via.f64 == 110.5);
    const msgpack_object *ms = get(o, "model_score");
    assert_int_equal(ms->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(ms->via.f64 == 0.93);
    assert_strs(get(o, "reasons"), reasons, 2);
    assert_strs(get(o, "shadow"), shadow, 1);
    assert_str(get(o, "shadow_decision"), "block");
    assert_str(get(o, "ruleset"), "default@2026.11.1");
    const msgpack_object *took = get(o, "took_us");
    assert_int_equal(took->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(took->via.u64, 87);
    assert_true_obj(get(o, "degraded"));
    assert_true_obj(get(o, "replayed"));
    /* the documented key order */
    static const char *const order[] = {"id",      "decision",        "score",   "model_score",
                                        "reasons", "shadow",          "shadow_decision",
                                        "ruleset", "took_us",         "degraded", "replayed"};
    for (int i = 0; i < 11; i++)
        assert_str(&o->via.map.ptr[i].key, order[i]);
}

static void test_omissions(void **state)
{
    rk_reply r = {
        .id = "t1",
        .id_len = 2,
        .decision = "allow",
        .score = 0,
        .has_model_score = false,
        .model_score = 0.5, /* ignored: no model */
        .reasons = NULL,
        .nreasons = 0,
        .shadow = shadow, /* ignored: nshadow is 0 */
        .nshadow = 0,
        .shadow_decision = NULL,
        .ruleset = "default@1",
        .took_us = 0,
    };
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    const msgpack_object *o = unpack();
    assert_int_equal(o->via.map.size, 7);
    assert_str(get(o, "decision"), "allow");
    assert_int_equal(get(o, "score")->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(get(o, "score")->via.f64 == 0.0);
    assert_int_equal(get(o, "model_score")->type, MSGPACK_OBJECT_NIL);
    assert_strs(get(o, "reasons"), NULL, 0);
    assert_null(get(o, "shadow"));
    assert_null(get(o, "shadow_decision"));
    assert_null(get(o, "degraded"));
    assert_null(get(o, "replayed"));
    assert_int_equal(get(o, "took_us")->via.u64, 0);

    /* a rule set with shadow rules, none of which matched: shadow_decision
     * is there, shadow is not */
    rk_outbuf_reset(&out);
    r.shadow_decision = "allow";
    r.score = -20;
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    o = unpack();
    assert_int_equal(o->via.map.size, 8);
    assert_str(get(o, "shadow_decision"), "allow");
    assert_null(get(o, "shadow"));
    assert_true(get(o, "score")->via.f64 == -20.0);

    /* only one of degraded and replayed */
    rk_outbuf_reset(&out);
    r.degraded = true;
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    o = unpack();
    assert_int_equal(o->via.map.size, 9);
    assert_true_obj(get(o, "degraded"));
    assert_null(get(o, "replayed"));
}

static void test_error(void **state)
{
    assert_int_equal(rk_proto_encode_error(&out, "t7", 2, RK_WERR_BAD_REQUEST,
                                           "field 'amount' is required"),
                     0);
    const msgpack_object *o = unpack();
    assert_int_equal(o->via.map.size, 2);
    assert_str(get(o, "id"), "t7");
    const msgpack_object *e = get(o, "error");
    assert_non_null(e);
    assert_int_equal(e->via.map.size, 2);
    assert_str(get(e, "code"), "bad_request");
    assert_str(get(e, "message"), "field 'amount' is required");

    /* without an id the key is left out */
    static const struct {
        rk_wire_err code;
        const char *name;
    } codes[] = {
        {RK_WERR_BAD_REQUEST, "bad_request"}, {RK_WERR_TOO_LARGE, "too_large"},
        {RK_WERR_UNSUPPORTED, "unsupported"}, {RK_WERR_OVERLOADED, "overloaded"},
        {RK_WERR_INTERNAL, "internal"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        rk_outbuf_reset(&out);
        assert_int_equal(rk_proto_encode_error(&out, NULL, 0, codes[i].code, "m"), 0);
        o = unpack();
        assert_int_equal(o->via.map.size, 1);
        assert_null(get(o, "id"));
        assert_str(get(get(o, "error"), "code"), codes[i].name);
        assert_str(get(get(o, "error"), "message"), "m");
    }
    /* an empty id is an id */
    rk_outbuf_reset(&out);
    assert_int_equal(rk_proto_encode_error(&out, "", 0, RK_WERR_INTERNAL, NULL), 0);
    o = unpack();
    assert_str(get(o, "id"), "");
    assert_str(get(get(o, "error"), "message"), "internal");
}

static void test_ok_and_str(void **state)
{
    assert_int_equal(rk_proto_encode_ok(&out), 0);
    const msgpack_object *o = unpack();
    assert_int_equal(o->via.map.size, 1);
    assert_true_obj(get(o, "ok"));
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.buf, "\x81\xa2ok\xc3", 5);
    rk_outbuf_reset(&out);
    rk_outbuf_str(&out, NULL);
    assert_int_equal(out.len, 1);
    assert_int_equal(out.buf[0], 0xc0);
    rk_outbuf_reset(&out);
    rk_outbuf_str(&out, "stats");
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.buf, "\xa5stats", 6);
}

/* Every buffer size short of the full reply overflows cleanly: RK_ETOOBIG,
 * nothing written past cap (ASan would see it: the buffer is exact). */
static void test_overflow(void **state)
{
    rk_reply r = full_reply();
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    size_t need = out.len;
    uint8_t *want = malloc(need);
    memcpy(want, out.buf, need);
    for (size_t cap = 0; cap <= need; cap++) {
        uint8_t *b = malloc(cap ? cap : 1);
        rk_outbuf o;
        rk_outbuf_init(&o, b, cap);
        int rc = rk_proto_encode_reply(&o, &r);
        if (cap < need) {
            assert_int_equal(rc, RK_ETOOBIG);
            assert_true(o.overflow);
            assert_true(o.len <= cap);
            assert_memory_equal(b, want, o.len); /* a clean prefix */
            /* an overflowed buffer stays overflowed until reset */
            assert_int_equal(rk_proto_encode_ok(&o), RK_ETOOBIG);
            rk_outbuf_reset(&o);
            assert_int_equal(rk_proto_encode_ok(&o) == 0, cap >= 5);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(o.len, need);
            assert_memory_equal(b, want, need);
        }
        free(b);
    }
    free(want);
    /* the tiny buffer case, and errors and ok too */
    uint8_t tiny[8];
    rk_outbuf t;
    rk_outbuf_init(&t, tiny, sizeof tiny);
    assert_int_equal(rk_proto_encode_error(&t, "t1", 2, RK_WERR_INTERNAL, "storage error"),
                     RK_ETOOBIG);
    rk_outbuf_init(&t, tiny, 3);
    assert_int_equal(rk_proto_encode_ok(&t), RK_ETOOBIG);
}

/* Encoding appends: reset, and the same reply gives the same bytes. */
static void test_append_and_reset(void **state)
{
    rk_reply r = full_reply();
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    size_t one = out.len;
    assert_int_equal(rk_proto_encode_ok(&out), 0);
    assert_int_equal(out.len, one + 5);
    rk_outbuf_reset(&out);
    assert_int_equal(out.len, 0);
    assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
    assert_int_equal(out.len, one);
    /* the packer is open for ad-hoc replies too */
    rk_outbuf_reset(&out);
    msgpack_pack_map(&out.pk, 1);
    rk_outbuf_str(&out, "requests");
    msgpack_pack_uint64(&out.pk, 12345);
    const msgpack_object *o = unpack();
    assert_int_equal(get(o, "requests")->via.u64, 12345);
}

/* rk_proto_reply_id_at says where the id's bytes are, for ids whose str
 * header is one, two or three bytes long. */
static void test_reply_id_at(void **state)
{
    (void)state;
    static char id[300];
    memset(id, 'q', sizeof id);
    const size_t lens[] = {1, 8, 31, 32, 128, 255, 256, 300};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        rk_reply r = full_reply();
        r.id = id;
        r.id_len = lens[i];
        rk_outbuf_reset(&out);
        assert_int_equal(rk_proto_encode_reply(&out, &r), 0);
        size_t at = rk_proto_reply_id_at(lens[i]);
        assert_true(at + lens[i] <= out.len);
        assert_memory_equal(out.buf + at, id, lens[i]);
        /* the byte after the id starts the next key, "decision" */
        assert_int_equal(out.buf[at + lens[i]], 0xa0 | 8);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_omissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ok_and_str, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_id_at, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
