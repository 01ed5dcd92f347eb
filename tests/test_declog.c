/* The decision log (engine/declog.h): records written in order and read back
 * valid through the rlog reader, rotation by size into several files and
 * keep_files, several producing threads at once, the ring wrapping, the
 * bounded queue (overflow by records and by bytes with a paused writer,
 * counted and never blocking; records too large for the log),
 * pseudonymisation (same value same pseudonym, across a restart too; other
 * values and fields untouched; no raw value in the file; `id` refused), file
 * and directory modes, a torn tail cut at every byte of the last record (the
 * reader never returns it) and a restart that starts a new file, and the
 * pipeline's hook: score replies (replayed included) logged, errors and pings
 * not, and the stats section. Waits are rk_declog_flush, never sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "support/rk_test.h"

#include "engine/declog.h"
#include "engine/engine.h"
#include "engine/pipeline.h"
#include "lib/err.h"
#include "lib/log.h"
#include "proto/mp.h"
#include "proto/rlog.h"
#include "proto/txn.h"

static char tmpdir[256];  /* the test's data directory (the secret lives here) */
static char logdir[300];  /* tmpdir/decisions */

static int setup(void **state)
{
    rk_log_set_level(RK_LOG_ERROR + 1); /* quiet: start-up and rotation lines */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rk_test_declog_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(logdir, sizeof logdir, "%s/decisions", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers -------------------------------------------------------------------- */

static rk_declog *open_log(uint64_t max_file, int keep, uint32_t queue, uint32_t pseudo)
{
    rk_declog_config c;
    rk_declog_config_default(&c);
    c.enabled = true;
    c.dir = logdir;
    c.max_file_bytes = max_file;
    c.keep_files = keep;
    c.queue = queue;
    c.pseudonymise = pseudo;
    rk_declog *dl = NULL;
    assert_int_equal(rk_declog_open(&c, tmpdir, &dl), 0);
    return dl;
}

/* A score request {id, account, amount, card, device} in sb. */
static void pack_req(msgpack_sbuffer *sb, const char *id, const char *account, const char *card,
                     const char *device)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "account");
    pk_str(&pk, account);
    pk_str(&pk, "amount");
    msgpack_pack_int(&pk, 1234);
    pk_str(&pk, "card");
    pk_str(&pk, card);
    pk_str(&pk, "device");
    pk_str(&pk, device);
}

/* A reply {id, decision} in sb. */
static void pack_resp(msgpack_sbuffer *sb, const char *id, const char *decision)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "decision");
    pk_str(&pk, decision);
}

/* Appends decision i: id "t<i>", account "acct-<i%7>". */
static void append_n(rk_declog *dl, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32], acct[32];
        snprintf(id, sizeof id, "t%d", i);
        snprintf(acct, sizeof acct, "acct-%d", i % 7);
        msgpack_sbuffer rq, rp;
        pack_req(&rq, id, acct, "tok-1", "dev-1");
        pack_resp(&rp, id, i % 2 ? "review" : "allow");
        rk_declog_append(dl, (const uint8_t *)rq.data, rq.size, (const uint8_t *)rp.data, rp.size,
                         "test@1", 1795000000000LL + i);
        msgpack_sbuffer_destroy(&rq);
        msgpack_sbuffer_destroy(&rp);
    }
}

/* The log files in logdir, oldest first (by the sequence number in the
 * name). Returns how many; names[i] is the full path. */
static int list_logs(char names[][512], int max)
{
    DIR *d = opendir(logdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max)
        if (strncmp(e->d_name, "decisions-", 10) == 0)
            snprintf(names[n++], 512, "%.300s/%.200s", logdir, e->d_name);
    closedir(d);
    /* insertion sort by the number before ".rlog" */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            long a = atol(strrchr(names[j - 1], '-') + 1), b = atol(strrchr(names[j], '-') + 1);
            if (a <= b)
                break;
            char t[512];
            memcpy(t, names[j], 512);
            memcpy(names[j], names[j - 1], 512);
            memcpy(names[j - 1], t, 512);
        }
    return n;
}

/* The string value of key in a msgpack map, copied into buf ("" when absent). */
static const char *str_of(const uint8_t *map, size_t len, const char *key, char *buf, size_t size)
{
    rk_mp_item it;
    buf[0] = '\0';
    if (rk_mp_map_find(map, len, key, &it, NULL) == 0 && it.type == RK_MP_STR)
        snprintf(buf, size, "%.*s", (int)it.raw.len, (const char *)it.raw.p);
    return buf;
}

/* Reads every file in order and checks that together they hold exactly the
 * decisions t<from>..t<to-1> of append_n, valid, untorn, in order. Returns
 * the number of files. */
static int expect_records(int from, int to)
{
    static char names[256][512];
    int n = list_logs(names, 256);
    int next = from;
    for (int f = 0; f < n; f++) {
        rk_rlog *r;
        assert_int_equal(rk_rlog_open(names[f], &r), 0);
        rk_rlog_rec rec;
        int rc;
        while ((rc = rk_rlog_next(r, &rec)) == 1) {
            char want[32], got[64];
            snprintf(want, sizeof want, "t%d", next);
            assert_string_equal(str_of(rec.req, rec.req_len, "id", got, sizeof got), want);
            assert_string_equal(str_of(rec.resp, rec.resp_len, "id", got, sizeof got), want);
            assert_string_equal(str_of(rec.resp, rec.resp_len, "decision", got, sizeof got),
                                next % 2 ? "review" : "allow");
            assert_int_equal(rec.ruleset_len, 6);
            assert_memory_equal(rec.ruleset, "test@1", 6);
            assert_int_equal(rec.at, 1795000000000LL + next);
            next++;
        }
        if (rc < 0)
            fail_msg("%s: %s", names[f], rk_rlog_error(r));
        assert_false(rk_rlog_torn(r, NULL));
        rk_rlog_close(r);
    }
    assert_int_equal(next, to);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* ---- tests ------------------------------------------------------------------------ */

/* Rotation by size: a tiny max gives many files, none over it, every record
 * valid and in order; the stats add up. */
static void test_write_rotate_in_order(void **state)
{
    rk_declog *dl = open_log(4096, 0, 1024, 0);
    append_n(dl, 0, 300);
    assert_int_equal(rk_declog_flush(dl), 0);
    append_n(dl, 300, 500);
    rk_declog_close(dl); /* writes what is still queued */

    int nfiles = expect_records(0, 500);
    assert_true(nfiles >= 10);
    static char names[256][512];
    assert_int_equal(list_logs(names, 256), nfiles);
    uint64_t total = 0;
    for (int i = 0; i < nfiles; i++) {
        off_t sz = file_size(names[i]);
        assert_true(sz > 0 && sz <= 4096);
        total += (uint64_t)sz;
    }

    /* the stats of a second run over the same directory: numbering goes on */
    dl = open_log(4096, 0, 1024, 0);
    append_n(dl, 500, 600);
    assert_int_equal(rk_declog_flush(dl), 0);
    rk_declog_stats st;
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.written, 100);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.queue_depth, 0);
    assert_true(st.files >= 2);
    assert_int_equal(st.rotations, st.files - 1);
    rk_declog_close(dl);
    int n2 = list_logs(names, 256);
    assert_int_equal(n2, nfiles + (int)st.files);
    uint64_t after = 0;
    for (int i = nfiles; i < n2; i++)
        after += (uint64_t)file_size(names[i]);
    assert_int_equal(after, st.bytes);
    assert_true(total > 0);
    expect_records(0, 600);
}

/* Bytes of record i of test_ring_wraps: its own length and seed. */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    p[0] = 0x80; /* the log copies whatever it is given */
    for (size_t i = 1; i < n; i++)
        p[i] = (uint8_t)((seed * 2654435761u) >> 24 ^ i);
}

/* Appends one record whose queue slot takes exactly slot_bytes (a multiple
 * of 8: a 24-byte header, req, a 1-byte reply and the 6-byte label), waits
 * for it to be written, and remembers its request for check_wraps. */
static size_t wrap_len[16];
static int nwraps;
static void append_slot(rk_declog *dl, size_t slot_bytes)
{
    size_t n = slot_bytes - 24 - 1 - 6;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    fill(p, n, (uint32_t)nwraps);
    wrap_len[nwraps++] = n;
    rk_declog_append(dl, p, n, (const uint8_t *)"\x80", 1, "test@1", 1);
    free(p);
    assert_int_equal(rk_declog_flush(dl), 0);
}

/* The ring wraps: a record that does not fit before the end of the buffer
 * starts over at offset 0, after a pad slot or, when not even a header fits,
 * a bare remainder. With a small `queue` the ring is its 2 MiB minimum
 * (docs/logs.md), so slot sizes can place the end exactly: 16 bytes left
 * (bare), then 40 (a pad slot). Every record reads back byte for byte. */
static void test_ring_wraps(void **state)
{
    const size_t cap = 2u << 20, big = 699048;
    rk_declog *dl = open_log(0, 0, 16, 0);
    nwraps = 0;
    append_slot(dl, big);
    append_slot(dl, big);
    append_slot(dl, cap - 16 - 2 * big); /* 16 bytes left: less than a header */
    append_slot(dl, 1000);               /* wraps to offset 0 */
    append_slot(dl, big);
    append_slot(dl, big);
    append_slot(dl, cap - 40 - 1000 - 2 * big); /* 40 bytes left: a pad slot */
    append_slot(dl, 2000);                      /* wraps again */
    rk_declog_stats st;
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.written, 8);
    assert_int_equal(st.dropped, 0);
    rk_declog_close(dl);

    static char names[4][512];
    assert_int_equal(list_logs(names, 4), 1);
    rk_rlog *r;
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    rk_rlog_rec rec;
    uint8_t *want = malloc(big);
    for (int i = 0; i < nwraps; i++) {
        assert_int_equal(rk_rlog_next(r, &rec), 1);
        assert_int_equal(rec.req_len, wrap_len[i]);
        fill(want, wrap_len[i], (uint32_t)i);
        assert_memory_equal(rec.req, want, wrap_len[i]);
    }
    free(want);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    rk_rlog_close(r);
}

enum { PRODUCERS = 4, PER_PRODUCER = 5000 };

typedef struct prod {
    rk_declog *dl; /* shared */
    int t;         /* producer number */
} prod;

static void *produce(void *arg)
{
    prod *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        char id[32];
        snprintf(id, sizeof id, "T%d-%d", p->t, i);
        msgpack_sbuffer rq, rp;
        pack_req(&rq, id, "acct", "tok", "dev");
        pack_resp(&rp, id, "allow");
        rk_declog_append(p->dl, (const uint8_t *)rq.data, rq.size, (const uint8_t *)rp.data,
                         rp.size, "test@1", i);
        msgpack_sbuffer_destroy(&rq);
        msgpack_sbuffer_destroy(&rp);
    }
    return NULL;
}

/* Several scoring threads at once: every record is written whole, each
 * thread's records in the order it appended them, across rotations. */
static void test_concurrent_producers(void **state)
{
    rk_declog *dl = open_log(64 * 1024, 0, 65536, 0);
    pthread_t th[PRODUCERS];
    prod p[PRODUCERS];
    for (int t = 0; t < PRODUCERS; t++) {
        p[t] = (prod){dl, t};
        assert_int_equal(pthread_create(&th[t], NULL, produce, &p[t]), 0);
    }
    for (int t = 0; t < PRODUCERS; t++)
        pthread_join(th[t], NULL);
    rk_declog_stats st;
    assert_int_equal(rk_declog_flush(dl), 0);
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.written, PRODUCERS * PER_PRODUCER);
    assert_int_equal(st.dropped, 0);
    rk_declog_close(dl);

    static char names[256][512];
    int n = list_logs(names, 256), next[PRODUCERS] = {0}, total = 0;
    assert_true(n > 1);
    for (int f = 0; f < n; f++) {
        rk_rlog *r;
        assert_int_equal(rk_rlog_open(names[f], &r), 0);
        rk_rlog_rec rec;
        int rc;
        while ((rc = rk_rlog_next(r, &rec)) == 1) {
            char id[64];
            str_of(rec.req, rec.req_len, "id", id, sizeof id);
            int t = id[1] - '0', i = atoi(strchr(id, '-') + 1);
            assert_true(t >= 0 && t < PRODUCERS);
            assert_int_equal(i, next[t]);
            assert_int_equal(rec.at, i);
            next[t]++;
            total++;
        }
        assert_int_equal(rc, 0);
        assert_false(rk_rlog_torn(r, NULL));
        rk_rlog_close(r);
    }
    assert_int_equal(total, PRODUCERS * PER_PRODUCER);
}

/* keep_files: only the newest files remain, holding the newest records. */
static void test_keep_files(void **state)
{
    rk_declog *dl = open_log(2048, 3, 1024, 0);
    append_n(dl, 0, 400);
    rk_declog_close(dl);
    static char names[256][512];
    assert_int_equal(list_logs(names, 256), 3);
    /* the three files hold a contiguous run ending at the last record */
    int first = -1, count = 0;
    for (int f = 0; f < 3; f++) {
        rk_rlog *r;
        assert_int_equal(rk_rlog_open(names[f], &r), 0);
        rk_rlog_rec rec;
        while (rk_rlog_next(r, &rec) == 1) {
            char got[64];
            int i = atoi(str_of(rec.req, rec.req_len, "id", got, sizeof got) + 1);
            if (first < 0)
                first = i;
            assert_int_equal(i, first + count);
            count++;
        }
        rk_rlog_close(r);
    }
    assert_int_equal(first + count, 400);
    assert_true(first > 0);
}

/* A paused writer: the queue fills, the rest is dropped and counted, and
 * appending never waits. Bounded by records, and by bytes. */
static void test_overflow_never_blocks(void **state)
{
    rk_declog *dl = open_log(0, 0, 8, 0);
    rk_declog_pause(dl, true);
    assert_int_equal(rk_declog_flush(dl), 0); /* nothing queued: nothing to wait for */
    append_n(dl, 0, 100);
    assert_int_equal(rk_declog_flush(dl), RK_EINVAL); /* would never finish */
    rk_declog_stats st;
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.queue_depth, 8);
    assert_int_equal(st.dropped, 92);
    assert_int_equal(st.written, 0);
    rk_declog_pause(dl, false);
    assert_int_equal(rk_declog_flush(dl), 0);
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.written, 8);
    assert_int_equal(st.queue_depth, 0);
    rk_declog_close(dl);
    expect_records(0, 8);
    teardown(state);
    setup(state);

    /* bytes: the ring is 2 MiB at least; records of 700 KB fill it after two */
    dl = open_log(0, 0, 100, 0);
    rk_declog_pause(dl, true);
    size_t big = 700 * 1000;
    uint8_t *body = calloc(1, big);
    assert_non_null(body);
    body[0] = 0x80; /* whatever the bytes: the log copies them as they are */
    for (int i = 0; i < 4; i++)
        rk_declog_append(dl, body, big, (const uint8_t *)"\x80", 1, "test@1", 1);
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.queue_depth, 2);
    assert_int_equal(st.dropped, 2);
    /* larger than any log record: counted as an error, never queued */
    uint8_t *huge = calloc(1, RK_RLOG_REC_MAX);
    assert_non_null(huge);
    rk_declog_append(dl, huge, RK_RLOG_REC_MAX, (const uint8_t *)"\x80", 1, "test@1", 1);
    rk_declog_stats_get(dl, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.queue_depth, 2);
    rk_declog_close(dl); /* unpauses and writes the two */
    free(body);
    free(huge);
    static char names[4][512];
    assert_int_equal(list_logs(names, 4), 1);
    rk_rlog *r;
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    rk_rlog_rec rec;
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rec.req_len, big);
    assert_int_equal(rk_rlog_next(r, &rec), 1);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

/* Whether the file at path contains the bytes of s anywhere. */
static bool file_has(const char *path, const char *s)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, s, strlen(s)) != NULL;
}

/* account and card pseudonymised: equal values stay equal, different ones
 * differ, other fields are untouched, no raw value reaches the file, and the
 * pseudonyms survive a restart. `id` cannot be pseudonymised. */
static void test_pseudonymise(void **state)
{
    uint32_t mask = 1u << RK_F_ACCOUNT | 1u << RK_F_CARD;
    rk_declog *dl = open_log(0, 0, 64, mask);
    static const char *const acct[] = {"alice@example", "bob@example", "alice@example"};
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        msgpack_sbuffer rq, rp;
        pack_req(&rq, id, acct[i], i == 1 ? "4111-card-two" : "4111-card-one", "dev-raw-9");
        pack_resp(&rp, id, "allow");
        rk_declog_append(dl, (const uint8_t *)rq.data, rq.size, (const uint8_t *)rp.data, rp.size,
                         "test@1", 5);
        msgpack_sbuffer_destroy(&rq);
        msgpack_sbuffer_destroy(&rp);
    }
    char alice[RK_DECLOG_PSEUDONYM_LEN + 1];
    assert_int_equal(rk_declog_pseudonym(dl, "alice@example", 13, alice), 0);
    rk_declog_close(dl);

    static char names[4][512];
    assert_int_equal(list_logs(names, 4), 1);
    for (int i = 0; i < 3; i++)
        assert_false(file_has(names[0], acct[i]));
    assert_false(file_has(names[0], "4111-card"));
    assert_true(file_has(names[0], "dev-raw-9")); /* not listed: as received */

    rk_rlog *r;
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    rk_rlog_rec rec[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(rk_rlog_next(r, &rec[i]), 1);
    rk_rlog_rec extra;
    assert_int_equal(rk_rlog_next(r, &extra), 0);
    char a[3][64], c[3][64], buf[64];
    for (int i = 0; i < 3; i++) {
        str_of(rec[i].req, rec[i].req_len, "account", a[i], sizeof a[i]);
        str_of(rec[i].req, rec[i].req_len, "card", c[i], sizeof c[i]);
        assert_int_equal(strlen(a[i]), RK_DECLOG_PSEUDONYM_LEN);
        assert_memory_equal(a[i], "p:", 2);
        assert_int_equal(strlen(c[i]), RK_DECLOG_PSEUDONYM_LEN);
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        assert_string_equal(str_of(rec[i].req, rec[i].req_len, "id", buf, sizeof buf), id);
        assert_string_equal(str_of(rec[i].req, rec[i].req_len, "device", buf, sizeof buf),
                            "dev-raw-9");
        rk_mp_item amount;
        assert_int_equal(rk_mp_map_find(rec[i].req, rec[i].req_len, "amount", &amount, NULL), 0);
        assert_int_equal(amount.u, 1234);
    }
    assert_string_equal(a[0], a[2]);
    assert_string_equal(a[0], alice);
    assert_string_not_equal(a[0], a[1]);
    assert_string_equal(c[0], c[2]);
    assert_string_not_equal(c[0], c[1]);
    assert_string_not_equal(a[0], c[0]);
    rk_rlog_close(r);

    /* after a restart, on the same installation secret: the same pseudonym */
    dl = open_log(0, 0, 64, mask);
    char again[RK_DECLOG_PSEUDONYM_LEN + 1];
    assert_int_equal(rk_declog_pseudonym(dl, "alice@example", 13, again), 0);
    assert_string_equal(again, alice);
    rk_declog_close(dl);

    /* no pseudonymisation: no key, and `id` is never allowed */
    dl = open_log(0, 0, 64, 0);
    assert_int_equal(rk_declog_pseudonym(dl, "x", 1, again), RK_EINVAL);
    rk_declog_close(dl);
    rk_declog_config cfg;
    rk_declog_config_default(&cfg);
    cfg.dir = logdir;
    cfg.pseudonymise = 1u << RK_F_ID;
    assert_int_equal(rk_declog_open(&cfg, tmpdir, &dl), RK_EINVAL);
    assert_false(rk_declog_pseudonymisable() & (1u << RK_F_ID));
}

/* Files 0600 in a directory 0700, which is tightened if it was looser. */
static void test_modes(void **state)
{
    assert_int_equal(mkdir(logdir, 0755), 0);
    assert_int_equal(chmod(logdir, 0755), 0);
    rk_declog *dl = open_log(0, 0, 64, 0);
    append_n(dl, 0, 3);
    rk_declog_close(dl);
    struct stat st;
    assert_int_equal(stat(logdir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    static char names[4][512];
    assert_int_equal(list_logs(names, 4), 1);
    assert_int_equal(stat(names[0], &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* A crash mid-append, at every byte of the last record: the reader returns
 * the whole records before it and reports the torn tail, never the torn
 * record. A restart starts a new file and leaves the torn one as it is. */
static void test_torn_tail_and_restart(void **state)
{
    rk_declog *dl = open_log(0, 0, 64, 0);
    append_n(dl, 0, 20);
    rk_declog_close(dl);
    static char names[8][512];
    assert_int_equal(list_logs(names, 8), 1);

    /* the last record's offset */
    rk_rlog *r;
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    rk_rlog_rec rec;
    uint64_t last = 0;
    while (rk_rlog_next(r, &rec) == 1)
        last = rec.offset;
    rk_rlog_close(r);
    off_t size = file_size(names[0]);
    FILE *f = fopen(names[0], "rb");
    uint8_t *bytes = malloc((size_t)size);
    assert_int_equal(fread(bytes, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (off_t cut = (off_t)last + 1; cut < size; cut++) {
        assert_int_equal(rk_rlog_open_mem(bytes, (size_t)cut, &r), 0);
        int n = 0, rc;
        while ((rc = rk_rlog_next(r, &rec)) == 1)
            n++;
        assert_int_equal(rc, 0);
        assert_int_equal(n, 19);
        uint64_t at = 0;
        assert_true(rk_rlog_torn(r, &at));
        assert_int_equal(at, last);
        rk_rlog_close(r);
    }
    free(bytes);

    /* the file itself, cut in the middle of its last record */
    assert_int_equal(truncate(names[0], (off_t)last + (size - (off_t)last) / 2), 0);
    off_t torn_size = file_size(names[0]);
    dl = open_log(0, 0, 64, 0);
    append_n(dl, 20, 25);
    rk_declog_close(dl);
    assert_int_equal(list_logs(names, 8), 2);
    assert_int_equal(file_size(names[0]), torn_size); /* nothing appended after the tear */
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    int n = 0;
    while (rk_rlog_next(r, &rec) == 1)
        n++;
    assert_int_equal(n, 19);
    assert_true(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
    assert_int_equal(rk_rlog_open(names[1], &r), 0);
    n = 0;
    while (rk_rlog_next(r, &rec) == 1) {
        char got[64], want[16];
        snprintf(want, sizeof want, "t%d", 20 + n++);
        assert_string_equal(str_of(rec.req, rec.req_len, "id", got, sizeof got), want);
    }
    assert_int_equal(n, 5);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

/* ---- through the pipeline ---------------------------------------------------------- */

static const char *const RULES = "ruleset: dl\n"
                                 "version: \"7\"\n"
                                 "rules:\n"
                                 "  - id: big\n"
                                 "    when: amount > 1000\n"
                                 "    action: review\n";

/* The engine writes the decision log when enabled: score replies (the
 * replayed retry too) with the request as received and the reply as sent;
 * not errors, pings or admin ops. The stats map has its section. */
static void test_pipeline_logs_score_replies(void **state)
{
    char rules[400];
    snprintf(rules, sizeof rules, "%s/rules.yaml", tmpdir);
    FILE *f = fopen(rules, "w");
    fputs(RULES, f);
    fclose(f);
    rk_engine_config cfg;
    rk_engine_config_default(&cfg);
    cfg.rules_path = rules;
    cfg.store.dir = tmpdir;
    cfg.store.sweep_interval_ms = 0;
    cfg.declog.enabled = true;
    rk_engine *e;
    rk_worker *w;
    rk_diag d;
    assert_int_equal(rk_engine_open(&cfg, &e, &d), 0);
    assert_non_null(rk_engine_declog(e));
    assert_int_equal(rk_worker_new(e, &w), 0);

    /* two new requests, a retry of the first, junk, a ping */
    msgpack_sbuffer sb[3];
    pack_req(&sb[0], "x1", "acct", "c", "d");
    pack_req(&sb[1], "x2", "acct", "c", "d");
    pack_req(&sb[2], "x1", "acct", "c", "d");
    static uint8_t replies[3][4096];
    size_t reply_len[3];
    for (int i = 0; i < 3; i++) {
        const uint8_t *rp;
        reply_len[i] = rk_pipeline_run(w, (const uint8_t *)sb[i].data, sb[i].size, false, &rp);
        memcpy(replies[i], rp, reply_len[i]);
    }
    const uint8_t *rp;
    static const uint8_t junk[] = {0xc1};
    rk_pipeline_run(w, junk, 1, false, &rp);
    static const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    rk_pipeline_run(w, ping, sizeof ping, false, &rp);
    assert_int_equal(rk_declog_flush(rk_engine_declog(e)), 0);

    /* the stats op: not logged either, and it reports the section */
    static const uint8_t stats[] = {0x81, 0xa2, 'o', 'p', 0xa5, 's', 't', 'a', 't', 's'};
    size_t n = rk_pipeline_run(w, stats, sizeof stats, true, &rp);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, (const char *)rp, n, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *dl = NULL;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        if (kv->key.via.str.size == 12 && memcmp(kv->key.via.str.ptr, "decision_log", 12) == 0)
            dl = &kv->val;
    }
    assert_non_null(dl);
    assert_int_equal(dl->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(dl->via.map.size, 7);
    assert_int_equal(dl->via.map.ptr[0].val.via.u64, 3); /* the first key, `written` */
    msgpack_unpacked_destroy(&u);

    rk_worker_free(w);
    rk_engine_close(e);

    static char names[4][512];
    assert_int_equal(list_logs(names, 4), 1);
    rk_rlog *r;
    assert_int_equal(rk_rlog_open(names[0], &r), 0);
    rk_rlog_rec rec;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rk_rlog_next(r, &rec), 1);
        assert_int_equal(rec.req_len, sb[i].size);
        assert_memory_equal(rec.req, sb[i].data, sb[i].size);
        assert_int_equal(rec.resp_len, reply_len[i]);
        assert_memory_equal(rec.resp, replies[i], reply_len[i]);
        assert_int_equal(rec.ruleset_len, 4);
        assert_memory_equal(rec.ruleset, "dl@7", 4);
        assert_true(rec.at > 1700000000000LL);
        msgpack_sbuffer_destroy(&sb[i]);
    }
    rk_mp_item it;
    assert_int_equal(rk_mp_map_find(rec.resp, rec.resp_len, "replayed", &it, NULL), 0);
    assert_int_equal(rk_rlog_next(r, &rec), 0);
    assert_false(rk_rlog_torn(r, NULL));
    rk_rlog_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_rotate_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_producers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_never_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pseudonymise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_logs_score_replies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
