/* Tests of the request decoder (src/proto/decode.c) and the msgpack cursor
 * under it (src/proto/mp.c): valid requests in every integer and float
 * encoding, nil handling, unknown keys skipped however nested, and every
 * class of malformed, mistyped or oversized input with its exact message.
 * Requests are built with msgpack-c's packer, or as raw bytes where the test
 * is about one particular encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/mp.h"
#include "proto/proto.h"

static rk_request req;
static rk_txn txn;
static rk_proto_err perr;

/* The schema used throughout: one extra of each type. */
static const rk_schema schema = {
    .n = 4,
    .f = {{"account_age_days", RK_T_INT},
          {"risk_hint", RK_T_FLOAT},
          {"segment", RK_T_STR},
          {"is_vip", RK_T_BOOL}},
};
enum {
    S_AGE = RK_F__STD,
    S_HINT,
    S_SEGMENT,
    S_VIP,
};

/* ---- building requests -------------------------------------------------- */

typedef struct msg {
    msgpack_sbuffer sb; /* the bytes */
    msgpack_packer pk;  /* packs into sb */
} msg;

static void msg_init(msg *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void msg_free(msg *m) { msgpack_sbuffer_destroy(&m->sb); }

static void raw(msg *m, const void *b, size_t n) { msgpack_sbuffer_write(&m->sb, b, n); }

static void str(msg *m, const char *s)
{
    msgpack_pack_str_with_body(&m->pk, s, strlen(s));
}

static void kv_str(msg *m, const char *k, const char *v)
{
    str(m, k);
    str(m, v);
}

static void kv_int(msg *m, const char *k, int64_t v)
{
    str(m, k);
    msgpack_pack_int64(&m->pk, v);
}

/* A request {id: "t1", account: "a1", amount: 1999} plus `key` whose value
 * is the raw bytes val; when key is id, account or amount it replaces that
 * base key instead of adding one. key NULL: just the base request. */
static void build_with(msg *m, const char *key, const void *val, size_t vlen)
{
    static const char *const base[] = {"id", "account", "amount"};
    int replaced = -1;
    for (int i = 0; i < 3; i++)
        if (key && strcmp(key, base[i]) == 0)
            replaced = i;
    msg_init(m);
    msgpack_pack_map(&m->pk, key && replaced < 0 ? 4 : 3);
    for (int i = 0; i < 3; i++) {
        str(m, base[i]);
        if (i == replaced)
            raw(m, val, vlen);
        else if (i == 2)
            msgpack_pack_int64(&m->pk, 1999);
        else
            str(m, i == 0 ? "t1" : "a1");
    }
    if (key && replaced < 0) {
        str(m, key);
        raw(m, val, vlen);
    }
}

static int decode_buf(const void *b, size_t n)
{
    return rk_proto_decode(b, n, &schema, &req, &txn, &perr);
}

static int decode_msg(const msg *m) { return decode_buf(m->sb.data, m->sb.size); }

/* Decodes the base request with key set to the raw value; returns the result. */
static int decode_with(const char *key, const void *val, size_t vlen)
{
    msg m;
    build_with(&m, key, val, vlen);
    int rc = decode_msg(&m);
    msg_free(&m);
    return rc;
}

static void expect_error(int rc, rk_wire_err code, const char *text)
{
    assert_int_equal(rc, RK_EPARSE);
    assert_int_equal(perr.code, code);
    assert_string_equal(perr.msg, text);
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static int reset(void **state)
{
    memset(&req, 0xab, sizeof req);
    /* A sentinel in every slot, to see which ones the decoder writes. */
    for (int i = 0; i < RK_MAX_SLOTS; i++)
        txn.v[i] = rk_value_int(777);
    memset(&perr, 0, sizeof perr);
    return 0;
}

static void assert_str_value(const rk_value *v, const char *s)
{
    assert_int_equal(v->type, RK_T_STR);
    assert_int_equal(v->len, strlen(s));
    assert_memory_equal(v->s, s, v->len);
}

/* ---- valid requests ----------------------------------------------------- */

static void test_minimal(void **state)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    assert_int_equal(decode_msg(&m), 0);
    assert_int_equal(req.op, RK_OP_SCORE);
    assert_int_equal(req.id_len, 2);
    assert_memory_equal(req.id, "t1", 2);
    assert_false(req.explain);
    assert_ptr_equal(req.body, m.sb.data);
    assert_int_equal(req.body_len, m.sb.size);
    assert_str_value(&txn.v[RK_F_ID], "t1");
    assert_str_value(&txn.v[RK_F_ACCOUNT], "a1");
    assert_int_equal(txn.v[RK_F_AMOUNT].type, RK_T_INT);
    assert_int_equal(txn.v[RK_F_AMOUNT].i, 1999);
    /* Strings borrow the buffer. */
    assert_true(txn.v[RK_F_ID].s >= m.sb.data && txn.v[RK_F_ID].s < m.sb.data + m.sb.size);
    for (int s = RK_F_TS; s < RK_F__STD + schema.n; s++)
        if (s != RK_F_AMOUNT)
            assert_int_equal(txn.v[s].type, RK_T_MISSING);
    /* Slots past the schema's are not the decoder's. */
    for (int s = RK_F__STD + schema.n; s < RK_MAX_SLOTS; s++)
        assert_int_equal(txn.v[s].i, 777);
    msg_free(&m);
}

static void test_all_standard_fields(void **state)
{
    msg m;
    msg_init(&m);
    msgpack_pack_map(&m.pk, RK_F__STD + 3);
    /* Protocol keys first and last, fields in between, in reverse order. */
    kv_int(&m, "v", 1);
    for (int f = RK_F__STD - 1; f >= 0; f--) {
        if (rk_field_type(f) == RK_T_INT)
            kv_int(&m, rk_field_name(f), 1000 + f);
        else
            kv_str(&m, rk_field_name(f), rk_field_name(f));
    }
    kv_str(&m, "op", "score");
    str(&m, "explain");
    msgpack_pack_true(&m.pk);
    assert_int_equal(decode_msg(&m), 0);
    assert_true(req.explain);
    for (int f = 0; f < RK_F__STD; f++) {
        if (rk_field_type(f) == RK_T_INT) {
            assert_int_equal(txn.v[f].type, RK_T_INT);
            assert_int_equal(txn.v[f].i, 1000 + f);
        } else {
            assert_str_value(&txn.v[f], rk_field_name(f));
        }
    }
    msg_free(&m);
}

/* Every msgpack integer encoding of 5, and of larger values where the
 * encoding needs them, is accepted for an int field. */
static void test_int_widths(void **state)
{
    static const struct {
        uint8_t b[9];
        size_t n;
        int64_t v;
    } cases[] = {
        {{0x05}, 1, 5},
        {{0xcc, 0x05}, 2, 5},
        {{0xcd, 0x00, 0x05}, 3, 5},
        {{0xce, 0x00, 0x00, 0x00, 0x05}, 5, 5},
        {{0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05}, 9, 5},
        {{0xd0, 0x05}, 2, 5},
        {{0xd1, 0x00, 0x05}, 3, 5},
        {{0xd2, 0x00, 0x00, 0x00, 0x05}, 5, 5},
        {{0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05}, 9, 5},
        {{0xcc, 0xff}, 2, 255},
        {{0xcd, 0xff, 0xff}, 3, 65535},
        {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, 4294967295},
        {{0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
        {{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
        {{0x00}, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset(state);
        assert_int_equal(decode_with("amount", cases[i].b, cases[i].n), 0);
        assert_int_equal(txn.v[RK_F_AMOUNT].type, RK_T_INT);
        assert_int_equal(txn.v[RK_F_AMOUNT].i, cases[i].v);
        reset(state);
        assert_int_equal(decode_with("account_age_days", cases[i].b, cases[i].n), 0);
        assert_int_equal(txn.v[S_AGE].i, cases[i].v);
    }
    /* ts as a JavaScript encoder sends it: uint64. */
    reset(state);
    assert_int_equal(decode_with("ts", BYTES(0xcf, 0, 0, 0x01, 0x9a, 0xb3, 0x4c, 0x1e, 0x00)),
                     0);
    assert_int_equal(txn.v[RK_F_TS].i, 0x019ab34c1e00);
    /* Negative values in every signed width, where the field allows them. */
    static const struct {
        uint8_t b[9];
        size_t n;
        int64_t v;
    } neg[] = {
        {{0xff}, 1, -1},
        {{0xe0}, 1, -32},
        {{0xd0, 0x80}, 2, -128},
        {{0xd1, 0x80, 0x00}, 3, -32768},
        {{0xd2, 0x80, 0, 0, 0}, 5, INT32_MIN},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, INT64_MIN},
    };
    for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++) {
        reset(state);
        assert_int_equal(decode_with("mcc", neg[i].b, neg[i].n), 0);
        assert_int_equal(txn.v[RK_F_MCC].i, neg[i].v);
        reset(state);
        assert_int_equal(decode_with("ts", neg[i].b, neg[i].n), 0);
        assert_int_equal(txn.v[RK_F_TS].i, neg[i].v);
    }
}

static void test_int_out_of_range(void **state)
{
    expect_error(decode_with("ts", BYTES(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
                 RK_WERR_BAD_REQUEST,
                 "field 'ts': integer 18446744073709551615 is out of range "
                 "(max 9223372036854775807)");
    expect_error(decode_with("amount", BYTES(0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0)),
                 RK_WERR_BAD_REQUEST,
                 "field 'amount': integer 9223372036854775808 is out of range "
                 "(max 9223372036854775807)");
}

static void test_schema_float_accepts_any_number(void **state)
{
    static const struct {
        uint8_t b[9];
        size_t n;
        double v;
    } cases[] = {
        {{0x64}, 1, 100.0},                                            /* fixint */
        {{0xcc, 0xc8}, 2, 200.0},                                      /* uint8 */
        {{0xcf, 0, 0, 0, 0, 0, 0, 0x01, 0x00}, 9, 256.0},              /* uint64 */
        {{0xd0, 0x9c}, 2, -100.0},                                     /* int8 */
        {{0xfb}, 1, -5.0},                                             /* negative fixint */
        {{0xca, 0x3f, 0xc0, 0x00, 0x00}, 5, 1.5},                      /* float32 */
        {{0xcb, 0x40, 0x59, 0, 0, 0, 0, 0, 0}, 9, 100.0},              /* float64 */
        {{0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a}, 9, 0.1}, /* float64 0.1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset(state);
        assert_int_equal(decode_with("risk_hint", cases[i].b, cases[i].n), 0);
        assert_int_equal(txn.v[S_HINT].type, RK_T_FLOAT);
        assert_true(txn.v[S_HINT].f == cases[i].v);
    }
    expect_error(decode_with("risk_hint", BYTES(0xa1, 'x')), RK_WERR_BAD_REQUEST,
                 "field 'risk_hint': expected a number, got str");
    expect_error(decode_with("risk_hint", BYTES(0xc3)), RK_WERR_BAD_REQUEST,
                 "field 'risk_hint': expected a number, got bool");
}

static void test_schema_str_and_bool(void **state)
{
    assert_int_equal(decode_with("segment", BYTES(0xa3, 'v', 'i', 'p')), 0);
    assert_str_value(&txn.v[S_SEGMENT], "vip");
    assert_int_equal(decode_with("is_vip", BYTES(0xc3)), 0);
    assert_int_equal(txn.v[S_VIP].type, RK_T_BOOL);
    assert_true(txn.v[S_VIP].b);
    assert_int_equal(decode_with("is_vip", BYTES(0xc2)), 0);
    assert_false(txn.v[S_VIP].b);
    expect_error(decode_with("is_vip", BYTES(0x01)), RK_WERR_BAD_REQUEST,
                 "field 'is_vip': expected true or false, got int");
    expect_error(decode_with("segment", BYTES(0xc3)), RK_WERR_BAD_REQUEST,
                 "field 'segment': expected a string, got bool");
    expect_error(decode_with("account_age_days", BYTES(0xcb, 0x40, 0x59, 0, 0, 0, 0, 0, 0)),
                 RK_WERR_BAD_REQUEST, "field 'account_age_days': expected an integer, got float");
    /* Without a schema, extras are keys nobody reads: any type goes. */
    msg m;
    reset(state);
    build_with(&m, "segment", BYTES(0x01));
    assert_int_equal(rk_proto_decode((const uint8_t *)m.sb.data, m.sb.size, NULL, &req, &txn,
                                     &perr), 0);
    assert_int_equal(txn.v[S_SEGMENT].i, 777);
    msg_free(&m);
}

/* A schema name is matched exactly: a key with a NUL after the name is not it. */
static void test_schema_key_with_nul(void **state)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x84;
    msgpack_pack_str_with_body(&m.pk, "segment\0", 8);
    msgpack_pack_int64(&m.pk, 5);
    assert_int_equal(decode_msg(&m), 0);
    assert_int_equal(txn.v[S_SEGMENT].type, RK_T_MISSING);
    msg_free(&m);
}

static void test_nil(void **state)
{
    /* nil for an optional field is the same as leaving it out */
    assert_int_equal(decode_with("email", BYTES(0xc0)), 0);
    assert_int_equal(txn.v[RK_F_EMAIL].type, RK_T_MISSING);
    assert_int_equal(decode_with("is_vip", BYTES(0xc0)), 0);
    assert_int_equal(txn.v[S_VIP].type, RK_T_MISSING);
    assert_int_equal(decode_with("op", BYTES(0xc0)), 0);
    assert_int_equal(req.op, RK_OP_SCORE);
    assert_int_equal(decode_with("v", BYTES(0xc0)), 0);
    assert_int_equal(decode_with("explain", BYTES(0xc0)), 0);
    assert_false(req.explain);
    /* nil for a required one is missing it */
    expect_error(decode_with("amount", BYTES(0xc0)), RK_WERR_BAD_REQUEST,
                 "field 'amount' is required");
    expect_error(decode_with("id", BYTES(0xc0)), RK_WERR_BAD_REQUEST, "field 'id' is required");
    assert_null(req.id);
}

static void test_missing_required_in_order(void **state)
{
    msg m;
    msg_init(&m);
    msgpack_pack_map(&m.pk, 0);
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "field 'id' is required");
    assert_null(req.id);
    msg_free(&m);

    msg_init(&m);
    msgpack_pack_map(&m.pk, 1);
    kv_int(&m, "amount", 1);
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "field 'id' is required");
    msg_free(&m);

    msg_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_int(&m, "amount", 1);
    kv_str(&m, "id", "t9");
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "field 'account' is required");
    assert_int_equal(req.id_len, 2);
    assert_memory_equal(req.id, "t9", 2);
    msg_free(&m);

    msg_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m, "account", "a");
    kv_str(&m, "id", "t9");
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "field 'amount' is required");
    msg_free(&m);
}

static void test_explain(void **state)
{
    assert_int_equal(decode_with("explain", BYTES(0xc3)), 0);
    assert_true(req.explain);
    assert_int_equal(decode_with("explain", BYTES(0xc2)), 0);
    assert_false(req.explain);
    expect_error(decode_with("explain", BYTES(0x01)), RK_WERR_BAD_REQUEST,
                 "field 'explain': expected true or false, got int");
}

/* ---- unknown keys ------------------------------------------------------- */

static void test_unknown_keys_skipped(void **state)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x8b;
    kv_str(&m, "note", "hello");
    str(&m, "meta");
    msgpack_pack_map(&m.pk, 2);
    str(&m, "x");
    msgpack_pack_true(&m.pk);
    str(&m, "tags");
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_int64(&m.pk, 1);
    msgpack_pack_double(&m.pk, 2.5);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_int64(&m.pk, 7); /* non-string keys are fine below the top level */
    msgpack_pack_nil(&m.pk);
    str(&m, "blob");
    msgpack_pack_bin_with_body(&m.pk, "\x00\x01", 2);
    str(&m, "bin");
    msgpack_pack_bin_with_body(&m.pk, "\xff", 1);
    str(&m, "ext");
    msgpack_pack_ext_with_body(&m.pk, "abcd", 4, 5);
    str(&m, "f32");
    msgpack_pack_float(&m.pk, 1.5f);
    str(&m, "neg");
    msgpack_pack_int64(&m.pk, -70000);
    str(&m, "big");
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    assert_int_equal(decode_msg(&m), 0);
    assert_int_equal(txn.v[RK_F_AMOUNT].i, 1999);
    msg_free(&m);
}

/* A value nested `levels` arrays deep under key "x". */
static int decode_nested(int levels, const char *key)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x84;
    str(&m, key);
    for (int i = 0; i < levels; i++)
        msgpack_pack_array(&m.pk, i == levels - 1 ? 0 : 1);
    if (levels == 0)
        msgpack_pack_nil(&m.pk);
    int rc = decode_msg(&m);
    msg_free(&m);
    return rc;
}

static void test_nesting_limit(void **state)
{
    assert_int_equal(decode_nested(RK_MAX_DEPTH, "x"), 0);
    expect_error(decode_nested(RK_MAX_DEPTH + 1, "x"), RK_WERR_BAD_REQUEST,
                 "key 'x': nesting deeper than 32 levels");
    /* the key is echoed printable */
    expect_error(decode_nested(RK_MAX_DEPTH + 1, "a'b\n"), RK_WERR_BAD_REQUEST,
                 "key 'a\\x27b\\x0a': nesting deeper than 32 levels");
    /* an id before the bad key is still echoed */
    assert_int_equal(req.id_len, 2);
}

/* A megabyte of nested arrays, and a megabyte of arrays that each claim
 * four billion elements: both rejected at once, with no deep stack. */
static void test_hostile_nesting(void **state)
{
    size_t n = 1 << 20;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    static const uint8_t head[] = {0x81, 0xa1, 'x'};
    memcpy(b, head, sizeof head);
    memset(b + sizeof head, 0x91, n - sizeof head);
    expect_error(decode_buf(b, n), RK_WERR_BAD_REQUEST, "key 'x': nesting deeper than 32 levels");
    for (size_t i = sizeof head; i + 5 <= n; i += 5)
        memcpy(b + i, "\xdd\xff\xff\xff\xff", 5);
    expect_error(decode_buf(b, n), RK_WERR_BAD_REQUEST, "key 'x': nesting deeper than 32 levels");
    /* a flat array claiming more elements than there are bytes */
    memcpy(b + sizeof head, "\xdd\xff\xff\xff\xff", 5);
    memset(b + sizeof head + 5, 0x01, n - sizeof head - 5);
    expect_error(decode_buf(b, n), RK_WERR_BAD_REQUEST, "truncated msgpack at byte 1048576");
    /* the same as the request itself */
    memset(b, 0xdf, n);
    expect_error(decode_buf(b, n), RK_WERR_BAD_REQUEST, "map keys must be strings, got map");
    free(b);
}

/* ---- malformed ---------------------------------------------------------- */

static void test_not_a_map(void **state)
{
    expect_error(decode_buf(BYTES(0x92, 0x01, 0x02)), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got array");
    expect_error(decode_buf(BYTES(0xa1, 'x')), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got str");
    expect_error(decode_buf(BYTES(0x07)), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got int");
    expect_error(decode_buf(BYTES(0xc0)), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got nil");
    expect_error(decode_buf(BYTES(0xc4, 0x01, 0x00)), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got bin");
    expect_error(decode_buf("", 0), RK_WERR_BAD_REQUEST, "empty request body");
    expect_error(decode_buf(BYTES('{', '"', '}')), RK_WERR_BAD_REQUEST,
                 "request body must be a msgpack map, got int");
    expect_error(decode_buf(BYTES(0xc1)), RK_WERR_BAD_REQUEST,
                 "invalid msgpack byte 0xc1 at byte 0");
    expect_error(decode_buf(BYTES(0x81, 0xa1, 'x', 0xc1)), RK_WERR_BAD_REQUEST,
                 "invalid msgpack byte 0xc1 at byte 3");
    assert_null(req.id);
    assert_int_equal(req.body_len, 4);
}

static void test_non_string_keys(void **state)
{
    expect_error(decode_buf(BYTES(0x81, 0x01, 0x02)), RK_WERR_BAD_REQUEST,
                 "map keys must be strings, got int");
    expect_error(decode_buf(BYTES(0x81, 0xc4, 0x02, 'i', 'd', 0xa1, 'x')), RK_WERR_BAD_REQUEST,
                 "map keys must be strings, got bin");
    expect_error(decode_buf(BYTES(0x81, 0x90, 0x01)), RK_WERR_BAD_REQUEST,
                 "map keys must be strings, got array");
}

static void test_duplicate_keys(void **state)
{
    msg m;
    build_with(&m, "amount", BYTES(0x01));
    m.sb.data[0] = (char)0x84;
    kv_int(&m, "amount", 2);
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "duplicate key 'amount'");
    assert_int_equal(req.id_len, 2); /* the id came first and is echoed */
    msg_free(&m);

    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x85;
    kv_str(&m, "segment", "x");
    kv_str(&m, "segment", "y");
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "duplicate key 'segment'");
    msg_free(&m);

    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x85;
    kv_str(&m, "op", "score");
    kv_str(&m, "op", "score");
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "duplicate key 'op'");
    msg_free(&m);

    /* keys riskd does not read may repeat: it never looks at them */
    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x85;
    kv_str(&m, "note", "x");
    kv_str(&m, "note", "y");
    assert_int_equal(decode_msg(&m), 0);
    msg_free(&m);
}

static void test_trailing_bytes(void **state)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    raw(&m, BYTES(0xc0));
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "trailing bytes after the request map");
    assert_int_equal(req.id_len, 2);
    msg_free(&m);
    /* two requests in one frame */
    build_with(&m, NULL, NULL, 0);
    size_t one = m.sb.size;
    raw(&m, m.sb.data, one);
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "trailing bytes after the request map");
    msg_free(&m);
}

/* Every strict prefix of a valid request fails cleanly as bad_request; the
 * allocation is exact so that ASan catches a read one byte past the end. */
static void test_every_prefix_fails(void **state)
{
    msg m;
    build_with(&m, NULL, NULL, 0);
    m.sb.data[0] = (char)0x8a;
    kv_int(&m, "ts", 1764000000000);
    kv_str(&m, "email", "someone@example.com");
    kv_int(&m, "mcc", -5);
    str(&m, "risk_hint");
    msgpack_pack_double(&m.pk, 0.25);
    str(&m, "is_vip");
    msgpack_pack_true(&m.pk);
    str(&m, "nested");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_bin_with_body(&m.pk, "k", 1);
    msgpack_pack_ext_with_body(&m.pk, "12345678", 8, -1);
    msgpack_pack_float(&m.pk, 2.0f);
    kv_str(&m, "op", "score");
    assert_int_equal(decode_msg(&m), 0);
    for (size_t n = 0; n < m.sb.size; n++) {
        uint8_t *b = malloc(n ? n : 1);
        memcpy(b, m.sb.data, n);
        int rc = decode_buf(b, n);
        if (rc != RK_EPARSE || perr.code != RK_WERR_BAD_REQUEST)
            fail_msg("prefix of %zu bytes: rc %d code %d", n, rc, perr.code);
        assert_true(strncmp(perr.msg, "truncated msgpack at byte ", 26) == 0 ||
                    strcmp(perr.msg, "empty request body") == 0);
        free(b);
    }
    msg_free(&m);
    expect_error(decode_buf(BYTES(0x81, 0xa2, 'i')), RK_WERR_BAD_REQUEST,
                 "truncated msgpack at byte 1");
    expect_error(decode_buf(BYTES(0x82, 0xa2, 'i', 'd', 0xa1, 'x')), RK_WERR_BAD_REQUEST,
                 "truncated msgpack at byte 6");
    assert_int_equal(req.id_len, 1); /* complete before the cut: echoed */
}

/* ---- wrong types -------------------------------------------------------- */

/* Each standard field, sent each type it must refuse. */
static void test_wrong_types(void **state)
{
    static const struct {
        const char *got;
        uint8_t b[10];
        size_t n;
    } vals[] = {
        {"bool", {0xc3}, 1},
        {"int", {0x2a}, 1},
        {"int", {0xd0, 0xfb}, 2},
        {"float", {0xcb, 0x40, 0x59, 0, 0, 0, 0, 0, 0}, 9},
        {"float", {0xca, 0x3f, 0x80, 0, 0}, 5},
        {"str", {0xa1, '7'}, 2},
        {"bin", {0xc4, 0x01, '7'}, 3},
        {"array", {0x91, 0x01}, 2},
        {"map", {0x81, 0xa1, 'k', 0x01}, 4},
        {"ext", {0xd4, 0x01, 0x00}, 3},
    };
    char want[256];
    for (int f = 0; f < RK_F__STD; f++) {
        const char *name = rk_field_name(f);
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            const char *got = vals[i].got;
            rk_type t = rk_field_type(f);
            if ((t == RK_T_STR && strcmp(got, "str") == 0) ||
                (t == RK_T_INT && strcmp(got, "int") == 0))
                continue;
            if (t == RK_T_STR)
                snprintf(want, sizeof want, "field '%s': expected a string, got %s", name, got);
            else
                snprintf(want, sizeof want, "field '%s': expected %s, got %s", name,
                         f == RK_F_AMOUNT ? "a non-negative integer" : "an integer", got);
            reset(state);
            int rc = decode_with(name, vals[i].b, vals[i].n);
            if (rc != RK_EPARSE || strcmp(perr.msg, want) != 0)
                fail_msg("field %s, %s: got rc %d '%s', want '%s'", name, got, rc, perr.msg,
                         want);
            assert_int_equal(perr.code, RK_WERR_BAD_REQUEST);
        }
    }
    expect_error(decode_with("amount", BYTES(0xfb)), RK_WERR_BAD_REQUEST,
                 "field 'amount': expected a non-negative integer, got -5");
    expect_error(decode_with("amount", BYTES(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0)),
                 RK_WERR_BAD_REQUEST,
                 "field 'amount': expected a non-negative integer, got -9223372036854775808");
    /* a mistyped id is not echoed */
    assert_int_equal(decode_with("id", BYTES(0x01)), RK_EPARSE);
    assert_null(req.id);
    /* a mistyped field after a good id: the id is echoed */
    assert_int_equal(decode_with("amount", BYTES(0xa1, '5')), RK_EPARSE);
    assert_non_null(req.id); /* (the buffer it pointed into is gone now) */
    assert_int_equal(req.id_len, 2);
}

/* ---- sizes -------------------------------------------------------------- */

/* The base request with `key` (id, account, or another) set to a string of
 * len bytes. */
static int decode_long(const char *key, size_t len)
{
    char *s = malloc(len + 1);
    memset(s, 'x', len);
    msg m;
    msg_init(&m);
    int extra = strcmp(key, "id") != 0 && strcmp(key, "account") != 0;
    msgpack_pack_map(&m.pk, 3 + extra);
    str(&m, "id");
    msgpack_pack_str_with_body(&m.pk, strcmp(key, "id") == 0 ? s : "k",
                               strcmp(key, "id") == 0 ? len : 1);
    str(&m, "account");
    msgpack_pack_str_with_body(&m.pk, strcmp(key, "account") == 0 ? s : "k",
                               strcmp(key, "account") == 0 ? len : 1);
    kv_int(&m, "amount", 1);
    if (extra) {
        str(&m, key);
        msgpack_pack_str_with_body(&m.pk, s, len);
    }
    int rc = decode_msg(&m);
    msg_free(&m);
    free(s);
    return rc;
}

static void test_string_limits(void **state)
{
    assert_int_equal(decode_long("id", 128), 0);
    assert_int_equal(req.id_len, 128);
    expect_error(decode_long("id", 129), RK_WERR_BAD_REQUEST, "field 'id': longer than 128 bytes");
    assert_null(req.id); /* too long to echo */
    assert_int_equal(decode_long("account", 128), 0);
    expect_error(decode_long("account", 129), RK_WERR_BAD_REQUEST,
                 "field 'account': longer than 128 bytes");
    assert_int_equal(decode_long("email", 1024), 0);
    assert_int_equal(txn.v[RK_F_EMAIL].len, 1024);
    expect_error(decode_long("email", 1025), RK_WERR_BAD_REQUEST,
                 "field 'email': longer than 1024 bytes");
    expect_error(decode_long("card", 70000), RK_WERR_BAD_REQUEST,
                 "field 'card': longer than 1024 bytes");
    /* schema strings are bounded by the body size only */
    assert_int_equal(decode_long("segment", 5000), 0);
    assert_int_equal(txn.v[S_SEGMENT].len, 5000);
    /* the empty string is a string */
    assert_int_equal(decode_long("id", 0), 0);
    assert_int_equal(txn.v[RK_F_ID].len, 0);
    assert_non_null(req.id);
}

/* ---- v and op ----------------------------------------------------------- */

static void test_version(void **state)
{
    assert_int_equal(decode_with("v", BYTES(0x01)), 0);
    assert_int_equal(decode_with("v", BYTES(0xcf, 0, 0, 0, 0, 0, 0, 0, 1)), 0);
    expect_error(decode_with("v", BYTES(0x02)), RK_WERR_UNSUPPORTED,
                 "unsupported protocol version 2 (this server speaks 1)");
    assert_int_equal(req.id_len, 2);
    expect_error(decode_with("v", BYTES(0xff)), RK_WERR_UNSUPPORTED,
                 "unsupported protocol version -1 (this server speaks 1)");
    expect_error(decode_with("v", BYTES(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
                 RK_WERR_UNSUPPORTED,
                 "unsupported protocol version 18446744073709551615 (this server speaks 1)");
    expect_error(decode_with("v", BYTES(0xa1, '1')), RK_WERR_BAD_REQUEST,
                 "field 'v': expected an integer, got str");
    expect_error(decode_with("v", BYTES(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)), RK_WERR_BAD_REQUEST,
                 "field 'v': expected an integer, got float");
    /* v is checked before op and fields */
    msg m;
    msg_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m, "op", "frobnicate");
    kv_int(&m, "v", 3);
    expect_error(decode_msg(&m), RK_WERR_UNSUPPORTED,
                 "unsupported protocol version 3 (this server speaks 1)");
    msg_free(&m);
}

static void test_ops(void **state)
{
    expect_error(decode_with("op", BYTES(0xaa, 'f', 'r', 'o', 'b', 'n', 'i', 'c', 'a', 't', 'e')),
                 RK_WERR_UNSUPPORTED, "unknown op 'frobnicate'");
    assert_int_equal(req.id_len, 2);
    expect_error(decode_with("op", BYTES(0xa3, 'P', 0x00, 0xff)), RK_WERR_UNSUPPORTED,
                 "unknown op 'P\\x00\\xff'");
    expect_error(decode_with("op", BYTES(0x01)), RK_WERR_BAD_REQUEST,
                 "field 'op': expected a string, got int");
    assert_int_equal(decode_with("op", BYTES(0xa5, 's', 'c', 'o', 'r', 'e')), 0);
    assert_int_equal(req.op, RK_OP_SCORE);

    /* Other ops: id optional, fields not read, txn untouched. */
    static const char *const names[] = {"ping", "reload", "stats"};
    static const rk_op ops[] = {RK_OP_PING, RK_OP_RELOAD, RK_OP_STATS};
    for (int i = 0; i < 3; i++) {
        msg m;
        msg_init(&m);
        msgpack_pack_map(&m.pk, 3);
        kv_int(&m, "amount", -1);       /* would be an error for score */
        str(&m, "list");
        msgpack_pack_array(&m.pk, 1);   /* an admin op's own argument */
        str(&m, "x");
        kv_str(&m, "op", names[i]);
        reset(state);
        assert_int_equal(decode_msg(&m), 0);
        assert_int_equal(req.op, ops[i]);
        assert_null(req.id);
        assert_ptr_equal(req.body, m.sb.data);
        for (int s = 0; s < RK_MAX_SLOTS; s++)
            assert_int_equal(txn.v[s].i, 777);
        msg_free(&m);
    }
    /* ping with an id echoes it; a mistyped id is still an error */
    msg m;
    msg_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m, "op", "ping");
    kv_str(&m, "id", "p1");
    assert_int_equal(decode_msg(&m), 0);
    assert_int_equal(req.id_len, 2);
    assert_memory_equal(req.id, "p1", 2);
    msg_free(&m);
    msg_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m, "op", "ping");
    kv_int(&m, "id", 5);
    expect_error(decode_msg(&m), RK_WERR_BAD_REQUEST, "field 'id': expected a string, got int");
    msg_free(&m);
    /* structure is still checked for other ops */
    expect_error(decode_buf(BYTES(0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g', 0x00)),
                 RK_WERR_BAD_REQUEST, "trailing bytes after the request map");
}

static void test_names(void **state)
{
    assert_string_equal(rk_wire_err_name(RK_WERR_NONE), "none");
    assert_string_equal(rk_wire_err_name(RK_WERR_BAD_REQUEST), "bad_request");
    assert_string_equal(rk_wire_err_name(RK_WERR_TOO_LARGE), "too_large");
    assert_string_equal(rk_wire_err_name(RK_WERR_UNSUPPORTED), "unsupported");
    assert_string_equal(rk_wire_err_name(RK_WERR_OVERLOADED), "overloaded");
    assert_string_equal(rk_wire_err_name(RK_WERR_INTERNAL), "internal");
    assert_string_equal(rk_wire_err_name(RK_WERR__COUNT), "internal");
    assert_string_equal(rk_op_name(RK_OP_SCORE), "score");
    assert_string_equal(rk_op_name(RK_OP_PING), "ping");
    assert_string_equal(rk_op_name(RK_OP_RELOAD), "reload");
    assert_string_equal(rk_op_name(RK_OP_STATS), "stats");
    assert_null(rk_op_name(RK_OP__COUNT));
    assert_false(rk_op_is_admin(RK_OP_SCORE));
    assert_false(rk_op_is_admin(RK_OP_PING));
    assert_true(rk_op_is_admin(RK_OP_RELOAD));
    assert_true(rk_op_is_admin(RK_OP_STATS));
    assert_false(rk_op_is_admin(RK_OP__COUNT));
}

/* docs/protocol.md names every wire error code, op and standard field, so
 * the document cannot fall behind the tables in proto.h and txn.h. */
static void test_docs_cover_tables(void **state)
{
    FILE *f = fopen(RK_SOURCE_DIR "/docs/protocol.md", "r");
    assert_non_null(f);
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    char want[80];
    for (int e = RK_WERR_NONE + 1; e < RK_WERR__COUNT; e++) {
        snprintf(want, sizeof want, "| `%s` |", rk_wire_err_name((rk_wire_err)e));
        if (!strstr(doc, want))
            fail_msg("docs/protocol.md has no row for error code %s", want);
    }
    for (int o = 0; o < RK_OP__COUNT; o++) {
        snprintf(want, sizeof want, "| `%s`", rk_op_name((rk_op)o));
        if (!strstr(doc, want))
            fail_msg("docs/protocol.md has no row for op %s", want);
    }
    for (int fld = 0; fld < RK_F__STD; fld++) {
        snprintf(want, sizeof want, "`%s`", rk_field_name(fld));
        if (!strstr(doc, want))
            fail_msg("docs/protocol.md does not mention field %s", want);
    }
}

/* ---- the cursor --------------------------------------------------------- */

static void test_mp_read_and_skip(void **state)
{
    rk_mp r;
    rk_mp_item it;
    /* [[1, [2]], "ab"] : depth 3 */
    static const uint8_t v[] = {0x92, 0x92, 0x01, 0x91, 0x02, 0xa2, 'a', 'b'};
    rk_mp_init(&r, v, sizeof v);
    assert_int_equal(rk_mp_skip(&r, 3), 0);
    assert_int_equal(r.pos, sizeof v);
    rk_mp_init(&r, v, sizeof v);
    assert_int_equal(rk_mp_skip(&r, 2), RK_ERANGE);
    assert_int_equal(r.pos, 3); /* at the container too deep */
    rk_mp_init(&r, v, sizeof v - 1);
    assert_int_equal(rk_mp_skip(&r, 3), RK_EPARSE);
    assert_int_equal(r.pos, 5); /* at the truncated string */
    rk_mp_init(&r, v, sizeof v);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(it.type, RK_MP_ARRAY);
    assert_int_equal(it.n, 2);
    assert_int_equal(r.pos, 1);

    /* every integer comes back as UINT (>= 0) or INT (< 0) */
    static const uint8_t ints[] = {0xd0, 0x05, 0xd1, 0xff, 0xfe, 0xcf, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff};
    int64_t i;
    rk_mp_init(&r, ints, sizeof ints);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(it.type, RK_MP_UINT);
    assert_int_equal(it.u, 5);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(it.type, RK_MP_INT);
    assert_int_equal(rk_mp_int64(&it, &i), 0);
    assert_int_equal(i, -2);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(rk_mp_int64(&it, &i), RK_ERANGE);
    double d;
    assert_int_equal(rk_mp_double(&it, &d), 0);
    assert_true(d == 18446744073709551615.0);
    assert_int_equal(rk_mp_read(&r, &it), RK_EPARSE);

    /* ext and bin payloads borrow the buffer */
    static const uint8_t ext[] = {0xc7, 0x02, 0x09, 'h', 'i', 0xd5, 0xfe, 'a', 'b'};
    rk_mp_init(&r, ext, sizeof ext);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(it.type, RK_MP_EXT);
    assert_int_equal(it.ext_type, 9);
    assert_int_equal(it.raw.len, 2);
    assert_ptr_equal(it.raw.p, ext + 3);
    assert_int_equal(rk_mp_read(&r, &it), 0);
    assert_int_equal(it.ext_type, -2);
    assert_int_equal(it.raw.len, 2);
    assert_string_equal(rk_mp_type_name(RK_MP_FLOAT32), "float");
    assert_string_equal(rk_mp_type_name(RK_MP_UINT), "int");
}

static void test_mp_map_find(void **state)
{
    msg m;
    msg_init(&m);
    msgpack_pack_map(&m.pk, 4);
    msgpack_pack_int64(&m.pk, 1); /* non-string key, passed over */
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_int64(&m.pk, 1);
    kv_str(&m, "op", "reload");
    str(&m, "values");
    msgpack_pack_array(&m.pk, 2);
    str(&m, "a");
    str(&m, "b");
    kv_int(&m, "ttl", 3600);
    const uint8_t *b = (const uint8_t *)m.sb.data;
    rk_mp_item it;
    rk_mp next;
    assert_int_equal(rk_mp_map_find(b, m.sb.size, "ttl", &it, NULL), 0);
    assert_int_equal(it.type, RK_MP_UINT);
    assert_int_equal(it.u, 3600);
    assert_int_equal(rk_mp_map_find(b, m.sb.size, "values", &it, &next), 0);
    assert_int_equal(it.type, RK_MP_ARRAY);
    assert_int_equal(it.n, 2);
    assert_int_equal(rk_mp_read(&next, &it), 0);
    assert_true(rk_mp_str_eq(&it, "a"));
    assert_int_equal(rk_mp_map_find(b, m.sb.size, "nope", &it, NULL), RK_ENOTFOUND);
    assert_int_equal(rk_mp_map_find(b, 5, "ttl", &it, NULL), RK_EPARSE);
    assert_int_equal(rk_mp_map_find(BYTES(0x90), "ttl", &it, NULL), RK_ETYPE);
    msg_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_minimal, reset),
        cmocka_unit_test_setup(test_all_standard_fields, reset),
        cmocka_unit_test_setup(test_int_widths, reset),
        cmocka_unit_test_setup(test_int_out_of_range, reset),
        cmocka_unit_test_setup(test_schema_float_accepts_any_number, reset),
        cmocka_unit_test_setup(test_schema_str_and_bool, reset),
        cmocka_unit_test_setup(test_schema_key_with_nul, reset),
        cmocka_unit_test_setup(test_nil, reset),
        cmocka_unit_test_setup(test_missing_required_in_order, reset),
        cmocka_unit_test_setup(test_explain, reset),
        cmocka_unit_test_setup(test_unknown_keys_skipped, reset),
        cmocka_unit_test_setup(test_nesting_limit, reset),
        cmocka_unit_test_setup(test_hostile_nesting, reset),
        cmocka_unit_test_setup(test_not_a_map, reset),
        cmocka_unit_test_setup(test_non_string_keys, reset),
        cmocka_unit_test_setup(test_duplicate_keys, reset),
        cmocka_unit_test_setup(test_trailing_bytes, reset),
        cmocka_unit_test_setup(test_every_prefix_fails, reset),
        cmocka_unit_test_setup(test_wrong_types, reset),
        cmocka_unit_test_setup(test_string_limits, reset),
        cmocka_unit_test_setup(test_version, reset),
        cmocka_unit_test_setup(test_ops, reset),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_docs_cover_tables),
        cmocka_unit_test(test_mp_read_and_skip),
        cmocka_unit_test(test_mp_map_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
