/* Crash safety of the state store, end to end: riskd in strict durability,
 * under load from a DEALER client with many requests in flight, is killed
 * with SIGKILL at a random moment, restarted on the same data directory, and
 * checked; several times over.
 *
 * The rule set counts every request per account (acct_n, a 24 h count) and
 * reveals the value in the reply's score, one rule per bit. The client keeps,
 * for every request it ever sent, whether riskd answered it and with which
 * count. After each restart:
 *   1. riskd comes up (the store opens cleanly) and reports no store error;
 *   2. every request answered in the round that was killed, and a sample of
 *      older ones, is sent again and must come back "replayed": true with the
 *      count first answered: an answered request is never counted twice and
 *      its decision survived the kill;
 *   3. every request that was in flight at the kill (sent, unanswered) is sent
 *      again: it is replayed if riskd had committed it, scored now if not;
 *      either way it is now counted exactly once;
 *   4. one new probe request per account must see exactly the number of
 *      requests sent for that account so far, itself included: nothing
 *      answered was lost and nothing was counted twice.
 * The kill moment is random (seeded from the clock, printed, and settable with
 * RK_CRASH_SEED to reproduce a run); the checks do not depend on it. Waits are
 * bounded polls on replies, never sleeps for timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "support/rk_test.h"

#define RISKD RK_BUILD_DIR "/riskd"
#define TIMEOUT_MS 15000 /* generous: the sanitizer build on a busy 2-core VM */
#define ROUNDS 8         /* kills and restarts */
#define ACCOUNTS 16
#define INFLIGHT 48      /* DEALER requests outstanding at once */
#define MAXREQ 20000
#define OLD_SAMPLE 64    /* answered requests of earlier rounds re-sent per restart */

enum { UNSENT, SENT, ANSWERED };

typedef struct crash {
    char dir[64];           /* temp dir: rules, data, log */
    char endpoint[64];      /* tcp://127.0.0.1:PORT */
    char admin[128];        /* ipc://DIR/admin.sock */
    pid_t pid;              /* riskd, or 0 */
    void *zctx;             /* ZeroMQ context */
    int n;                  /* requests created so far */
    uint8_t state[MAXREQ];  /* UNSENT, SENT, ANSWERED */
    int16_t count[MAXREQ];  /* acct_n answered (mod 4096) */
    uint8_t round[MAXREQ];  /* the round that created it */
    int sent[ACCOUNTS];     /* requests per account sent so far */
    uint64_t replayed;      /* retries answered "replayed" (for the report) */
    uint64_t inflight_committed; /* in-flight-at-kill requests found committed */
    uint64_t inflight_lost;      /* in-flight-at-kill requests not committed */
} crash;

static crash C;

static const char *log_text(void)
{
    static char buf[8192];
    char path[128];
    snprintf(path, sizeof path, "%s/riskd.log", C.dir);
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* ---- messages ------------------------------------------------------------- */

/* Request i's body: id "q<i>", account i % ACCOUNTS. */
static void pack_request(msgpack_sbuffer *sb, int i)
{
    char id[32], acct[32];
    snprintf(id, sizeof id, "q%d", i);
    snprintf(acct, sizeof acct, "acct-%d", i % ACCOUNTS);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "account");
    pk_str(&pk, acct);
    pk_str(&pk, "amount");
    msgpack_pack_int(&pk, 100);
}

/* A score reply: which request, its count, whether replayed. */
typedef struct answer {
    int index;     /* request index from the id */
    int count;     /* acct_n from the score */
    bool replayed; /* "replayed": true */
} answer;

static answer parse_reply(const void *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *id = get(&u.data, "id"), *score = get(&u.data, "score");
    if (!id || !score || get(&u.data, "degraded")) {
        char text[512];
        msgpack_object_print_buffer(text, sizeof text, u.data);
        fail_msg("not a normal decision: %s", text);
    }
    answer a = {.index = atoi(id->via.str.ptr + 1),
                .count = (int)score->via.f64,
                .replayed = get(&u.data, "replayed") != NULL};
    msgpack_unpacked_destroy(&u);
    assert_true(a.index >= 0 && a.index < C.n);
    return a;
}

static void *dealer(void)
{
    void *s = zmq_socket(C.zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, C.endpoint), 0);
    return s;
}

static void send_request(void *d, int i)
{
    msgpack_sbuffer sb;
    pack_request(&sb, i);
    assert_true(zmq_send(d, "", 0, ZMQ_SNDMORE) == 0);
    assert_true(zmq_send(d, sb.data, sb.size, 0) >= 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Receives one reply on d within timeout_ms; returns false on timeout. */
static bool recv_answer(void *d, int timeout_ms, answer *a)
{
    zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) != 1)
        return false;
    char delim[8];
    assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, d, 0) >= 0);
    *a = parse_reply(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return true;
}

/* Sends request i again (lockstep) and returns the answer. */
static answer resend(void *d, int i)
{
    send_request(d, i);
    answer a;
    if (!recv_answer(d, TIMEOUT_MS, &a))
        fail_msg("no answer to q%d within %d ms: %s", i, TIMEOUT_MS, log_text());
    assert_int_equal(a.index, i);
    return a;
}

/* ---- riskd ------------------------------------------------------------------ */

static void start_riskd(void)
{
    char rules[128], data[128], logp[128];
    snprintf(rules, sizeof rules, "%s/rules.yaml", C.dir);
    snprintf(data, sizeof data, "%s/data", C.dir);
    snprintf(logp, sizeof logp, "%s/riskd.log", C.dir);
    char *argv[] = {RISKD,       "--rules",         rules,   "--data-dir", data,
                    "--endpoint", C.endpoint,       "--admin-endpoint", C.admin,
                    "--workers", "8", "--durability", "strict", NULL};
    C.pid = fork();
    assert_true(C.pid >= 0);
    if (C.pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    /* up when it answers a ping */
    static const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    void *d = dealer();
    int64_t end = now_ms() + TIMEOUT_MS;
    for (;;) {
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, ping, sizeof ping, 0);
        zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) == 1)
            break;
        int status;
        if (waitpid(C.pid, &status, WNOHANG) == C.pid) {
            C.pid = 0;
            fail_msg("riskd exited at start-up (the store did not open?): %s", log_text());
        }
        if (now_ms() > end)
            fail_msg("riskd did not answer a ping: %s", log_text());
    }
    zmq_close(d);
}

static void kill_riskd(int sig)
{
    if (!C.pid)
        return;
    kill(C.pid, sig);
    int status;
    waitpid(C.pid, &status, 0);
    if (sig == SIGTERM)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    C.pid = 0;
}

/* ---- the rounds ------------------------------------------------------------- */

/* Sends requests with INFLIGHT outstanding until kill_after of them are
 * answered, then kills riskd at once; replies that had already reached the
 * socket are collected (riskd sent them: they were answered). */
static void load_and_kill(int round, int kill_after)
{
    void *d = dealer();
    int inflight = 0, answered = 0;
    while (answered < kill_after) {
        while (inflight < INFLIGHT && C.n < MAXREQ) {
            int i = C.n++;
            C.round[i] = (uint8_t)round;
            C.state[i] = SENT;
            C.sent[i % ACCOUNTS]++;
            send_request(d, i);
            inflight++;
        }
        answer a;
        if (!recv_answer(d, TIMEOUT_MS, &a))
            fail_msg("round %d: no answer within %d ms: %s", round, TIMEOUT_MS, log_text());
        assert_false(a.replayed);
        assert_int_equal(C.state[a.index], SENT);
        C.state[a.index] = ANSWERED;
        C.count[a.index] = (int16_t)a.count;
        inflight--;
        answered++;
    }
    kill_riskd(SIGKILL);
    answer a;
    while (recv_answer(d, 0, &a)) {
        C.state[a.index] = ANSWERED;
        C.count[a.index] = (int16_t)a.count;
    }
    zmq_close(d);
}

/* The checks after a restart (see the top of the file). */
static void verify(int killed_round, unsigned *seed)
{
    void *d = dealer();
    /* 2. answered requests: replayed with their first answer */
    int checked_old = 0;
    for (int i = 0; i < C.n; i++) {
        if (C.state[i] != ANSWERED)
            continue;
        if (C.round[i] != killed_round &&
            (checked_old >= OLD_SAMPLE || rand_r(seed) % 8 != 0))
            continue;
        checked_old += C.round[i] != killed_round;
        answer a = resend(d, i);
        if (!a.replayed || a.count != C.count[i])
            fail_msg("q%d was answered with count %d before the kill; after it: %d%s", i,
                     C.count[i], a.count, a.replayed ? " (replayed)" : " (counted again!)");
        C.replayed++;
    }
    /* 3. in flight at the kill: committed (replayed) or not (counted now) */
    for (int i = 0; i < C.n; i++) {
        if (C.state[i] != SENT)
            continue;
        answer a = resend(d, i);
        C.state[i] = ANSWERED;
        C.count[i] = (int16_t)a.count;
        if (a.replayed)
            C.inflight_committed++;
        else
            C.inflight_lost++;
    }
    /* 4. one probe per account sees exactly what was sent for it */
    for (int acct = 0; acct < ACCOUNTS && C.n < MAXREQ; acct++) {
        int i = C.n;
        while (i % ACCOUNTS != acct)
            i++; /* an index of this account (the gaps are never sent) */
        if (i >= MAXREQ)
            break;
        C.n = i + 1;
        C.round[i] = (uint8_t)(killed_round + 1);
        C.sent[acct]++;
        C.state[i] = SENT;
        answer a = resend(d, i);
        C.state[i] = ANSWERED;
        C.count[i] = (int16_t)a.count;
        if (a.replayed || a.count != C.sent[acct] % 4096)
            fail_msg("account %d: count %d after the restart, but %d requests were sent for it",
                     acct, a.count, C.sent[acct]);
    }
    zmq_close(d);
}

static void write_rules(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/rules.yaml", C.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("ruleset: crash\n"
          "version: \"1\"\n"
          "counters:\n"
          "  acct_n: {by: account, window: 24h}\n"
          "rules:\n",
          f);
    for (int b = 0; b < 12; b++)
        fprintf(f, "  - id: bit%d\n    when: acct_n %% %d >= %d\n    score: %d\n", b, 2 << b,
                1 << b, 1 << b);
    fclose(f);
}

static void test_kill9_under_load(void **state)
{
    const char *env = getenv("RK_CRASH_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("crash test seed %u (RK_CRASH_SEED=%u reproduces the kill moments)\n", seed, seed);
    int64_t t0 = now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        start_riskd();
        if (round > 0)
            verify(round - 1, &seed);
        load_and_kill(round, 100 + (int)(rand_r(&seed) % 600));
    }
    start_riskd();
    verify(ROUNDS - 1, &seed);

    /* the store is sound: no error since the last start */
    void *req = zmq_socket(C.zctx, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(req, C.admin), 0);
    static const uint8_t stats[] = {0x81, 0xa2, 'o', 'p', 0xa5, 's', 't', 'a', 't', 's'};
    assert_true(zmq_send(req, stats, sizeof stats, 0) >= 0);
    static char buf[1 << 16];
    zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, TIMEOUT_MS), 1);
    int n = zmq_recv(req, buf, sizeof buf, 0);
    assert_true(n > 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, buf, (size_t)n, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *st = get(&u.data, "store");
    assert_non_null(st);
    assert_int_equal(get(st, "store_errors")->via.u64, 0);
    assert_int_equal(get(&u.data, "degraded")->via.u64, 0);
    msgpack_unpacked_destroy(&u);
    zmq_close(req);
    kill_riskd(SIGTERM);

    printf("%d kills, %d requests, %llu answered requests re-sent and replayed, in flight at a "
           "kill: %llu committed, %llu not; %.1f s\n",
           ROUNDS, C.n, (unsigned long long)C.replayed,
           (unsigned long long)C.inflight_committed, (unsigned long long)C.inflight_lost,
           (double)(now_ms() - t0) / 1000);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(C.dir, sizeof C.dir, "/tmp/rk_crash_XXXXXX");
    if (!mkdtemp(C.dir))
        return -1;
    snprintf(C.endpoint, sizeof C.endpoint, "tcp://127.0.0.1:%d", free_port());
    snprintf(C.admin, sizeof C.admin, "ipc://%s/admin.sock", C.dir);
    write_rules();
    C.zctx = zmq_ctx_new();
    return C.zctx ? 0 : -1;
}

static int teardown(void **state)
{
    if (C.pid)
        kill_riskd(SIGKILL);
    zmq_ctx_term(C.zctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", C.dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_under_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
