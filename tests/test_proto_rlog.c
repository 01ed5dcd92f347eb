/* Tests of traffic logs and decision-log records (src/proto/rlog.c): CRC-32C
 * against the standard check value and a bitwise reference, both writers
 * (canonical key order, msgpack encodings, overflow), and the reader on every
 * shape a log can take on disk: a plain stream, decision records, the two
 * mixed, a torn tail cut at every byte, a zero-filled tail, a bad crc in the
 * middle, a corrupt length, an empty file, a file that is not msgpack, and
 * files that cannot be opened. Logs go through real files in a temporary
 * directory so the mmap path is the one tested. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "proto/rlog.h"

static char dir[] = "/tmp/rk-test-rlog-XXXXXX";
static char path[128];
static uint8_t mem[1 << 16];
static rk_outbuf out;

static int group_setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/t.rlog", dir);
    return 0;
}

static int group_teardown(void **state)
{
    unlink(path);
    rmdir(dir);
    return 0;
}

static int setup(void **state)
{
    rk_outbuf_init(&out, mem, sizeof mem);
    return 0;
}

static void write_file(const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static rk_rlog *open_bytes(const void *p, size_t n)
{
    write_file(p, n);
    rk_rlog *r = NULL;
    assert_int_equal(rk_rlog_open(path, &r), 0);
    assert_int_equal(rk_rlog_size(r), n);
    return r;
}

#define F_STR(k, text) {k, sizeof k - 1, {.type = RK_T_STR, .len = sizeof text - 1, .s = text}}
#define F_INT(k, num) {k, sizeof k - 1, {.type = RK_T_INT, .i = num}}

/* Appends a plain request with this id and label (-1: none) to out. */
static size_t put_plain(const char *id, int label)
{
    size_t before = out.len;
    rk_rlog_field f[] = {
        {"id", 2, rk_value_str(id, (uint32_t)strlen(id))},
        F_STR("account", "acct-1"),
        F_INT("amount", 1999),
        {"label", 5, label < 0 ? rk_value_missing() : rk_value_int(label)},
    };
    assert_int_equal(rk_rlog_encode_traffic(&out, f, 4), 0);
    return out.len - before;
}

static const uint8_t req_bytes[] = {0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa5, 'l', 'a', 'b', 'e', 'l', 0x01};
static const uint8_t resp_bytes[] = {0x81, 0xa8, 'd', 'e', 'c', 'i', 's', 'i', 'o', 'n', 0xa5,
                                     'a', 'l', 'l', 'o', 'w'};

static size_t put_decision(int64_t at)
{
    size_t before = out.len;
    rk_rlog_decision d = {req_bytes, sizeof req_bytes, resp_bytes, sizeof resp_bytes,
                          "default@1", 9, at};
    assert_true(rk_rlog_decision_size(&d) >= 1 + sizeof req_bytes + sizeof resp_bytes);
    assert_int_equal(rk_rlog_encode_decision(&out, &d), 0);
    assert_true(out.len - before <= rk_rlog_decision_size(&d));
    return out.len - before;
}

/* ---- CRC-32C ---- */

static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c(void **state)
{
    assert_int_equal(rk_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(rk_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(rk_crc32c(0, "", 0), 0);
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 13) {
            uint32_t want = crc_ref(buf + off, n);
            assert_int_equal(rk_crc32c(0, buf + off, n), want);
            assert_int_equal(rk_crc32c_sw(0, buf + off, n), want);
            size_t half = n / 3;
            assert_int_equal(rk_crc32c(rk_crc32c(0, buf + off, half), buf + off + half, n - half),
                             want);
        }
}

/* ---- writers ---- */

static void test_traffic_canonical_order(void **state)
{
    /* Given scrambled: extras keep their order, label comes after the standard
     * fields, the standard fields follow RK_FIELD_MAP, missing ones drop out. */
    rk_rlog_field f[] = {
        F_STR("zeta", "z"),   F_INT("label", 0),    F_INT("amount", 5),
        F_STR("id", "a"),     F_INT("alpha", -40),  {"ts", 2, rk_value_missing()},
        F_STR("account", "b"), {"ok", 2, rk_value_bool(true)}, {"r", 1, rk_value_float(0.5)},
    };
    assert_int_equal(rk_rlog_encode_traffic(&out, f, 9), 0);
    static const uint8_t want[] = {
        0x88, 0xa2, 'i', 'd', 0xa1, 'a', 0xa7, 'a', 'c', 'c', 'o', 'u', 'n', 't', 0xa1, 'b',
        0xa6, 'a', 'm', 'o', 'u', 'n', 't', 0x05, 0xa5, 'l', 'a', 'b', 'e', 'l', 0x00,
        0xa4, 'z', 'e', 't', 'a', 0xa1, 'z', 0xa5, 'a', 'l', 'p', 'h', 'a', 0xd0, 0xd8,
        0xa2, 'o', 'k', 0xc3, 0xa1, 'r', 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0,
    };
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.buf, want, sizeof want);
}

static void test_traffic_errors(void **state)
{
    rk_rlog_field dup[] = {F_STR("id", "a"), F_STR("x", "1"), F_STR("x", "2")};
    assert_int_equal(rk_rlog_encode_traffic(&out, dup, 3), RK_EEXISTS);
    assert_int_equal(out.len, 0);
    uint8_t small[8];
    rk_outbuf tiny;
    rk_outbuf_init(&tiny, small, sizeof small);
    rk_rlog_field f[] = {F_STR("id", "abcdefghij")};
    assert_int_equal(rk_rlog_encode_traffic(&tiny, f, 1), RK_ETOOBIG);
    rk_rlog_decision d = {req_bytes, sizeof req_bytes, resp_bytes, sizeof resp_bytes, "r@1", 3, 1};
    rk_outbuf_reset(&tiny);
    assert_int_equal(rk_rlog_encode_decision(&tiny, &d), RK_ETOOBIG);
    d.req_len = RK_RLOG_REC_MAX; /* never read: refused on size alone */
    assert_int_equal(rk_rlog_encode_decision(&out, &d), RK_ETOOBIG);
}

/* ---- reader ---- */

static void test_plain_stream(void **state)
{
    size_t n1 = put_plain("t1", 1), n2 = put_plain("t2", -1), n3 = put_plain("t3", 0);
    rk_rlog *r = open_bytes(out.buf, out.len);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, 0);
    assert_int_equal(rec.len, n1);
    assert_int_equal(rec.req_len, n1);
    assert_memory_equal(rec.req, out.buf, n1);
    assert_ptr_equal(rec.raw, rec.req);
    assert_null(rec.resp);
    assert_null(rec.ruleset);
    assert_int_equal(rec.label, 1);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, n1);
    assert_int_equal(rec.label, -1);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, n1 + n2);
    assert_int_equal(rec.len, n3);
    assert_int_equal(rec.label, 0);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_false(rk_rlog_torn(r, NULL));
    assert_string_equal(rk_rlog_error(r), "");
    rk_rlog_rewind(r);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, 0);
    rk_rlog_close(r);
    rk_rlog_close(NULL);
}

static void test_decision_records(void **state)
{
    size_t n1 = put_decision(1795000000123LL);
    size_t n2 = put_plain("p", -1);
    put_decision(7);
    rk_rlog *r = open_bytes(out.buf, out.len);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, 0);
    assert_int_equal(rec.len, n1);
    assert_memory_equal(rec.raw, out.buf, n1);
    assert_int_equal(rec.req_len, sizeof req_bytes);
    assert_memory_equal(rec.req, req_bytes, sizeof req_bytes);
    assert_int_equal(rec.resp_len, sizeof resp_bytes);
    assert_memory_equal(rec.resp, resp_bytes, sizeof resp_bytes);
    assert_int_equal(rec.ruleset_len, 9);
    assert_memory_equal(rec.ruleset, "default@1", 9);
    assert_int_equal(rec.at, 1795000000123LL);
    assert_int_equal(rec.label, 1); /* from inside req */
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_null(rec.resp);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.offset, n1 + n2);
    assert_int_equal(rec.at, 7);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

/* Lengths that need msgpack's bin16 and bin32 headers read back whole. */
static void test_large_decision(void **state)
{
    size_t req_len = 70000, resp_len = 300;
    uint8_t *req = malloc(req_len), *resp = malloc(resp_len), *buf = malloc(req_len + 1024);
    assert_non_null(req);
    assert_non_null(resp);
    assert_non_null(buf);
    for (size_t i = 0; i < req_len; i++)
        req[i] = (uint8_t)(i * 7);
    memset(resp, 0xab, resp_len);
    rk_outbuf big;
    rk_outbuf_init(&big, buf, req_len + 1024);
    rk_rlog_decision d = {req, req_len, resp, resp_len, "r@2", 3, 42};
    assert_int_equal(rk_rlog_encode_decision(&big, &d), 0);
    rk_rlog *r = NULL;
    assert_int_equal(rk_rlog_open_mem(big.buf, big.len, &r), 0);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.len, big.len);
    assert_int_equal(rec.req_len, req_len);
    assert_memory_equal(rec.req, req, req_len);
    assert_int_equal(rec.resp_len, resp_len);
    assert_memory_equal(rec.resp, resp, resp_len);
    assert_int_equal(rec.label, -1); /* req is not a map */
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    rk_rlog_close(r);
    free(req);
    free(resp);
    free(buf);
}

/* Every cut of the last record, at every byte, is a torn tail at its offset
 * after the whole records before it. */
static void test_torn_tail(void **state)
{
    put_plain("a", 0);
    size_t keep = out.len + put_decision(1);
    put_plain("c", 1);
    size_t plain_end = out.len;
    put_decision(2);
    size_t total = out.len;
    for (size_t cut = plain_end + 1; cut < total; cut++) {
        rk_rlog *r = open_bytes(out.buf, cut);
        rk_rlog_rec rec;
        int n = 0, rc;
        while ((rc = rk_rlog_next(r, &rec)) == 1)
            n++;
        assert_int_equal(rc, 0);
        assert_int_equal(n, 3);
        uint64_t at = 0;
        assert_true(rk_rlog_torn(r, &at));
        assert_int_equal(at, plain_end);
        rk_rlog_close(r);
    }
    for (size_t cut = keep + 1; cut < plain_end; cut++) { /* a truncated plain map */
        rk_rlog *r = open_bytes(out.buf, cut);
        rk_rlog_rec rec;
        int n = 0, rc;
        while ((rc = rk_rlog_next(r, &rec)) == 1)
            n++;
        assert_int_equal(rc, 0);
        assert_int_equal(n, 2);
        assert_true(rk_rlog_torn(r, NULL));
        rk_rlog_close(r);
    }
}

static void test_truncated_map_header(void **state)
{
    /* A map that promises three pairs and holds one: torn at its start. */
    put_plain("a", -1);
    size_t first = out.len;
    static const uint8_t partial[] = {0x83, 0xa2, 'i', 'd', 0xa1, 'b'};
    memcpy(mem + out.len, partial, sizeof partial);
    rk_rlog *r = open_bytes(out.buf, out.len + sizeof partial);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    uint64_t at;
    assert_true(rk_rlog_torn(r, &at));
    assert_int_equal(at, first);
    rk_rlog_close(r);
}

static void test_zero_tail(void **state)
{
    size_t n = put_plain("a", -1);
    memset(mem + n, 0, 100);
    rk_rlog *r = open_bytes(out.buf, n + 100);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    uint64_t at;
    assert_true(rk_rlog_torn(r, &at));
    assert_int_equal(at, n);
    rk_rlog_close(r);
}

/* A flipped byte inside a decision record's req: the records before it come
 * back, then an error naming its offset, again on every later call. */
static void test_bad_crc_in_middle(void **state)
{
    size_t n1 = put_plain("a", -1);
    put_decision(1);
    put_plain("c", -1);
    mem[n1 + 10] ^= 0x20; /* inside the req bin: "id" -> "iD" or the like */
    rk_rlog *r = open_bytes(out.buf, out.len);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    char want[64];
    snprintf(want, sizeof want, "record at byte %zu: decision record fails its crc", n1);
    assert_non_null(strstr(rk_rlog_error(r), want));
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

static void test_decision_missing_parts(void **state)
{
    /* {"req": bin} alone: recognised as a decision record, refused. */
    static const uint8_t no_resp[] = {0x81, 0xa3, 'r', 'e', 'q', 0xc4, 0x01, 0x80};
    rk_rlog *r = open_bytes(no_resp, sizeof no_resp);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    assert_string_equal(rk_rlog_error(r), "record at byte 0: decision record without a 'resp' bin");
    rk_rlog_close(r);
    static const uint8_t no_crc[] = {0x82, 0xa3, 'r', 'e', 'q', 0xc4, 0x01, 0x80,
                                     0xa4, 'r', 'e', 's', 'p', 0xc4, 0x01, 0x80};
    r = open_bytes(no_crc, sizeof no_crc);
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    assert_string_equal(rk_rlog_error(r), "record at byte 0: decision record without a uint32 'crc'");
    rk_rlog_close(r);
    /* "req" holding a str is an ordinary extra key of a plain record. */
    static const uint8_t str_req[] = {0x81, 0xa3, 'r', 'e', 'q', 0xa1, 'x'};
    r = open_bytes(str_req, sizeof str_req);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_null(rec.resp);
    assert_int_equal(rec.req_len, sizeof str_req);
    rk_rlog_close(r);
}

static void test_nested_and_odd_keys(void **state)
{
    /* {[1, 2]: {"a": [nil]}, "label": true} */
    static const uint8_t rec_bytes[] = {0x82, 0x92, 0x01, 0x02, 0x81, 0xa1, 'a', 0x91, 0xc0,
                                        0xa5, 'l', 'a', 'b', 'e', 'l', 0xc3};
    rk_rlog *r = open_bytes(rec_bytes, sizeof rec_bytes);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.len, sizeof rec_bytes);
    assert_int_equal(rec.label, 1);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    rk_rlog_close(r);
}

static void test_empty_file(void **state)
{
    rk_rlog *r = open_bytes("", 0);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

static void test_not_msgpack(void **state)
{
    static const char text[] = "id,account,amount\nt1,a,5\n";
    rk_rlog *r = open_bytes(text, sizeof text - 1);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    assert_string_equal(rk_rlog_error(r),
                        "record at byte 0: expected a msgpack map (a request or a decision "
                        "record), found int");
    rk_rlog_close(r);
    /* The byte msgpack never uses, inside a record after a good one. */
    size_t n = put_plain("a", -1);
    static const uint8_t bad[] = {0x81, 0xa1, 'k', 0xc1};
    memcpy(mem + n, bad, sizeof bad);
    r = open_bytes(out.buf, n + sizeof bad);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rk_rlog_next(r, &rec), RK_ECORRUPT);
    char want[96];
    snprintf(want, sizeof want, "record at byte %zu: not msgpack (byte 0xc1) at byte %zu", n,
             n + 3);
    assert_string_equal(rk_rlog_error(r), want);
    rk_rlog_close(r);
}

/* A length that claims more than the file holds, with more than any record's
 * worth of bytes after it, is corruption, not a torn tail. */
static void test_corrupt_length(void **state)
{
    size_t len = RK_RLOG_REC_MAX + 64;
    uint8_t *big = calloc(1, len);
    assert_non_null(big);
    static const uint8_t head[] = {0x81, 0xa1, 'k', 0xdb, 0xff, 0xff, 0xff, 0xff};
    memcpy(big, head, sizeof head);
    memset(big + sizeof head, 'x', len - sizeof head);
    rk_rlog *r = NULL;
    assert_int_equal(rk_rlog_open_mem(big, len, &r), 0);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), RK_EPARSE);
    assert_string_equal(rk_rlog_error(r), "record at byte 0: a value runs past the end of the "
                                          "file (a corrupt length?) at byte 3");
    rk_rlog_close(r);
    free(big);
}

static void test_open_errors(void **state)
{
    rk_rlog *r = NULL;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.rlog", dir);
    assert_int_equal(rk_rlog_open(missing, &r), RK_ENOTFOUND);
    assert_int_equal(rk_rlog_open(dir, &r), RK_EIO);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_crc32c, setup),
        cmocka_unit_test_setup(test_traffic_canonical_order, setup),
        cmocka_unit_test_setup(test_traffic_errors, setup),
        cmocka_unit_test_setup(test_plain_stream, setup),
        cmocka_unit_test_setup(test_decision_records, setup),
        cmocka_unit_test_setup(test_large_decision, setup),
        cmocka_unit_test_setup(test_torn_tail, setup),
        cmocka_unit_test_setup(test_truncated_map_header, setup),
        cmocka_unit_test_setup(test_zero_tail, setup),
        cmocka_unit_test_setup(test_bad_crc_in_middle, setup),
        cmocka_unit_test_setup(test_decision_missing_parts, setup),
        cmocka_unit_test_setup(test_nested_and_odd_keys, setup),
        cmocka_unit_test_setup(test_empty_file, setup),
        cmocka_unit_test_setup(test_not_msgpack, setup),
        cmocka_unit_test_setup(test_corrupt_length, setup),
        cmocka_unit_test_setup(test_open_errors, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
