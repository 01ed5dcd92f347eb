/* The real riskd, started as a process on a free TCP port with a temporary
 * rule file, admin socket and data directory, and spoken to as a gateway and
 * an operator would: REQ and DEALER clients, malformed input, reloads through
 * the admin op, SIGHUP and riskctl, a broken rule file, SIGTERM with requests
 * in flight, start-up failures, the docs/examples clients, and the state
 * store: velocity counters and retries across a restart, riskctl list,
 * feedback and backup, and a second riskd started on the backup; the decision
 * log, read back with `riskctl log dump` after a SIGTERM and after a kill -9
 * under load. Waits are bounded polls on replies or on stats, never sleeps for
 * timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "support/rk_test.h"

#define RISKD RK_BUILD_DIR "/riskd"
#define RISKCTL RK_BUILD_DIR "/riskctl"
#define TIMEOUT_MS 10000 /* generous: the sanitizer build on a busy 2-core VM */

static void *zctx;
/* Every riskd started, so that a failed assertion (which longjmps past the
 * test's own clean-up) does not leave one running: teardown kills these. */
static pid_t spawned[16];
static int nspawned;
/* Likewise every socket: zmq_ctx_term would wait forever for one left open. */
static void *sockets[64];

static const char *const RULES_V1 = "ruleset: itest\n"
                                    "version: \"1\"\n"
                                    "thresholds:\n"
                                    "  review: 50\n"
                                    "rules:\n"
                                    "  - id: big\n"
                                    "    when: amount > 100000\n"
                                    "    score: 60\n";
static const char *const RULES_V2 = "ruleset: itest\n"
                                    "version: \"2\"\n"
                                    "rules:\n"
                                    "  - id: big_blocked\n"
                                    "    when: amount > 100000\n"
                                    "    action: block\n";
static const char *const RULES_V3 = "ruleset: itest\n"
                                    "version: \"3\"\n"
                                    "rules:\n"
                                    "  - id: all_reviewed\n"
                                    "    when: amount >= 0\n"
                                    "    action: review\n";
static const char *const RULES_BROKEN = "ruleset: itest\n"
                                        "version: \"4\"\n"
                                        "rules:\n"
                                        "  - id: typo\n"
                                        "    when: amout > 1\n"
                                        "    action: block\n";

/* ---- process helpers -------------------------------------------------------- */

typedef struct server {
    pid_t pid;           /* riskd, or 0 when not running */
    char dir[64];        /* temp dir holding everything below */
    char rules[128];     /* rule file */
    char log[128];       /* riskd's stderr */
    char endpoint[64];   /* tcp://127.0.0.1:PORT */
    char admin[160];     /* ipc://DIR/run/admin.sock (run/ is created by riskd) */
} server;

static void write_file(const char *path, const char *text)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static char *read_file(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f)
        return strcpy(buf, "");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* fork/exec argv with stdout and stderr to files; returns the pid. */
static pid_t spawn(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid to exit (bounded); returns its wait status, or -1. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    int status;
    while (now_ms() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL); /* polling for exit, not timing anything */
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* ---- messaging helpers ------------------------------------------------------- */

static void pack_score(msgpack_sbuffer *sb, const char *id, int64_t amount)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "account");
    pk_str(&pk, "acct-1");
    pk_str(&pk, "amount");
    msgpack_pack_int64(&pk, amount);
}

static void pack_op(msgpack_sbuffer *sb, const char *op)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "op");
    pk_str(&pk, op);
}

static uint64_t uint_at(const msgpack_object *map, const char *k1, const char *k2)
{
    const msgpack_object *o = get(map, k1);
    if (k2)
        o = get(o, k2);
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return o->via.u64;
}

static void *connect_socket(int type, const char *ep)
{
    void *s = zmq_socket(zctx, type);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, ep), 0);
    for (int i = 0; i < 64; i++)
        if (!sockets[i]) {
            sockets[i] = s;
            break;
        }
    return s;
}

static void close_socket(void *s)
{
    for (int i = 0; i < 64; i++)
        if (sockets[i] == s)
            sockets[i] = NULL;
    zmq_close(s);
}

static bool wait_readable(void *sock, int timeout_ms)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, timeout_ms) == 1;
}

/* Receives one frame into u (unpacked); fails the test on timeout. */
static void recv_unpack(void *sock, msgpack_unpacked *u)
{
    if (!wait_readable(sock, TIMEOUT_MS))
        fail_msg("no reply within %d ms", TIMEOUT_MS);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
    /* msgpack_unpack_next leaves strings pointing into the buffer: keep the
     * bytes alive past this call, in a ring long enough for every caller here. */
    static char ring[4][1 << 16];
    static int next;
    char *buf = ring[next++ % 4];
    size_t len = zmq_msg_size(&m);
    assert_true(len <= sizeof ring[0]);
    memcpy(buf, zmq_msg_data(&m), len);
    zmq_msg_close(&m);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
}

/* REQ round trip of sb (destroyed); the reply's root map. */
static const msgpack_object *call(void *req, msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    assert_true(zmq_send(req, sb->data, sb->size, 0) >= 0);
    msgpack_sbuffer_destroy(sb);
    recv_unpack(req, u);
    return &u->data;
}

static const msgpack_object *admin_op(server *s, const char *op, msgpack_unpacked *u)
{
    void *a = connect_socket(ZMQ_REQ, s->admin);
    msgpack_sbuffer sb;
    pack_op(&sb, op);
    call(a, &sb, u);
    close_socket(a);
    return &u->data;
}

/* Starts riskd with rules_text (and config_text as its -c file when not NULL)
 * on the data directory data_dir (NULL: a new one in its temp dir) and waits
 * until it answers a ping. */
static void start_server_data(server *s, const char *rules_text, const char *config_text,
                              const char *data_dir)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/rk_itest_XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->rules, sizeof s->rules, "%s/rules.yaml", s->dir);
    snprintf(s->log, sizeof s->log, "%s/riskd.log", s->dir);
    snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", free_port());
    snprintf(s->admin, sizeof s->admin, "ipc://%s/run/admin.sock", s->dir);
    write_file(s->rules, rules_text);
    char data[128], out[128];
    if (data_dir)
        snprintf(data, sizeof data, "%s", data_dir);
    else
        snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(out, sizeof out, "%s/stdout", s->dir);
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/riskd.yaml", s->dir);
    write_file(cfg, config_text ? config_text : "");
    char *argv[] = {RISKD, "--rules", s->rules, "--endpoint", s->endpoint, "--admin-endpoint",
                    s->admin, "--data-dir", data, "--workers", "2", "-c", cfg, NULL};
    s->pid = spawn(argv, out, s->log);
    if (nspawned < 16)
        spawned[nspawned++] = s->pid;

    void *d = connect_socket(ZMQ_DEALER, s->endpoint);
    msgpack_sbuffer sb;
    pack_op(&sb, "ping");
    int64_t end = now_ms() + TIMEOUT_MS;
    bool up = false;
    while (!up && now_ms() < end) {
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, sb.data, sb.size, 0);
        up = wait_readable(d, 100);
        int status;
        if (!up && waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            fail_msg("riskd exited at start-up: %s", read_file(s->log));
        }
    }
    msgpack_sbuffer_destroy(&sb);
    close_socket(d);
    if (!up)
        fail_msg("riskd did not answer a ping: %s", read_file(s->log));
}

static void start_server_cfg(server *s, const char *rules_text, const char *config_text)
{
    start_server_data(s, rules_text, config_text, NULL);
}

static void start_server(server *s, const char *rules_text)
{
    start_server_cfg(s, rules_text, NULL);
}

/* Stops riskd with sig and returns its wait status. */
static int stop_server(server *s, int sig)
{
    if (!s->pid)
        return -1;
    kill(s->pid, sig);
    int status = wait_exit(s->pid, TIMEOUT_MS);
    s->pid = 0;
    return status;
}

static void cleanup_server(server *s)
{
    if (s->pid)
        stop_server(s, SIGKILL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

/* Scores one request over a fresh REQ socket and checks its ruleset label. */
static void expect_label(server *s, const char *label, const char *decision)
{
    void *req = connect_socket(ZMQ_REQ, s->endpoint);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_sbuffer sb;
    static int n;
    char id[32];
    snprintf(id, sizeof id, "label-check-%d", n++); /* a repeated id would be a retry */
    pack_score(&sb, id, 200000);
    const msgpack_object *r = call(req, &sb, &u);
    assert_str(get(r, "ruleset"), label);
    assert_str(get(r, "decision"), decision);
    msgpack_unpacked_destroy(&u);
    close_socket(req);
}

/* Polls stats until reloads.<key> reaches want (a reload on SIGHUP is async). */
static void wait_reloads(server *s, const char *key, uint64_t want)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int64_t end = now_ms() + TIMEOUT_MS;
    uint64_t got = 0;
    while (now_ms() < end) {
        got = uint_at(admin_op(s, "stats", &u), "reloads", key);
        if (got >= want)
            break;
    }
    msgpack_unpacked_destroy(&u);
    if (got < want)
        fail_msg("reloads.%s stayed at %llu, wanted %llu", key, (unsigned long long)got,
                 (unsigned long long)want);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_req_and_dealer(void **state)
{
    server s;
    start_server(&s, RULES_V1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_sbuffer sb;

    void *req = connect_socket(ZMQ_REQ, s.endpoint);
    pack_op(&sb, "ping");
    assert_true(get(call(req, &sb, &u), "ok")->via.boolean);
    pack_score(&sb, "r1", 200000);
    const msgpack_object *r = call(req, &sb, &u);
    assert_str(get(r, "id"), "r1");
    assert_str(get(r, "decision"), "review");
    assert_str(get(r, "ruleset"), "itest@1");

    /* admin ops are refused on the gateway endpoint */
    pack_op(&sb, "reload");
    r = call(req, &sb, &u);
    assert_str(get(get(r, "error"), "code"), "unsupported");

    /* malformed input: an error, and the server keeps serving */
    assert_true(zmq_send(req, "\xc1\x00", 2, 0) >= 0);
    recv_unpack(req, &u);
    assert_str(get(get(&u.data, "error"), "code"), "bad_request");
    pack_score(&sb, "r2", 5);
    assert_str(get(call(req, &sb, &u), "decision"), "allow");

    /* DEALER: many in flight, replies matched by id */
    enum { N = 2000 };
    void *d = connect_socket(ZMQ_DEALER, s.endpoint);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "d%d", i);
        pack_score(&sb, id, i % 2 ? 200000 : 5);
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, sb.data, sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int got = 0; got < N; got++) {
        if (!wait_readable(d, TIMEOUT_MS))
            fail_msg("DEALER: %d of %d replies", got, N);
        char delim[8];
        assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
        recv_unpack(d, &u);
        const msgpack_object *id = get(&u.data, "id");
        assert_non_null(id);
        int i = atoi(id->via.str.ptr + 1);
        assert_true(i >= 0 && i < N && !seen[i]);
        seen[i] = true;
        assert_str(get(&u.data, "decision"), i % 2 ? "review" : "allow");
    }

    /* a DEALER without the empty delimiter: identity-only envelope */
    void *nd = connect_socket(ZMQ_DEALER, s.endpoint);
    pack_score(&sb, "nd1", 5);
    zmq_send(nd, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    recv_unpack(nd, &u);
    assert_str(get(&u.data, "id"), "nd1");
    int more = 1;
    size_t sz = sizeof more;
    zmq_getsockopt(nd, ZMQ_RCVMORE, &more, &sz);
    assert_int_equal(more, 0);

    /* two body frames: bad_request */
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "\x80", 1, ZMQ_SNDMORE);
    zmq_send(d, "\x80", 1, 0);
    char delim[8];
    assert_true(wait_readable(d, TIMEOUT_MS));
    assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
    recv_unpack(d, &u);
    assert_str(get(get(&u.data, "error"), "code"), "bad_request");
    assert_str(get(get(&u.data, "error"), "message"), "a request is one body frame, got 2");

    /* the stats count all of it */
    r = admin_op(&s, "stats", &u);
    assert_int_equal(uint_at(r, "decisions", "review"), 1 + N / 2);
    assert_int_equal(uint_at(r, "errors", "bad_request"), 2);
    assert_int_equal(uint_at(r, "errors", "unsupported"), 1);
    assert_int_equal(uint_at(r, "workers", NULL), 2);

    close_socket(req);
    close_socket(d);
    close_socket(nd);
    msgpack_unpacked_destroy(&u);
    assert_int_equal(stop_server(&s, SIGTERM), 0);
    assert_non_null(strstr(read_file(s.log), "riskd started: endpoint"));
    cleanup_server(&s);
}

static void test_reloads(void **state)
{
    server s;
    start_server(&s, RULES_V1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    expect_label(&s, "itest@1", "review");

    /* the admin reload op */
    write_file(s.rules, RULES_V2);
    const msgpack_object *r = admin_op(&s, "reload", &u);
    assert_true(get(r, "ok")->via.boolean);
    assert_str(get(r, "ruleset"), "itest@2");
    expect_label(&s, "itest@2", "block");

    /* SIGHUP */
    write_file(s.rules, RULES_V3);
    kill(s.pid, SIGHUP);
    wait_reloads(&s, "ok", 2);
    expect_label(&s, "itest@3", "review");
    r = admin_op(&s, "stats", &u);
    assert_str(get(r, "ruleset"), "itest@3");
    assert_int_equal(uint_at(r, "rules", "all_reviewed"), 1);

    /* riskctl reload and stats over the admin endpoint */
    write_file(s.rules, RULES_V2);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "RISKD_ADMIN='%s' " RISKCTL " reload >/dev/null", s.admin);
    assert_int_equal(system(cmd), 0);
    expect_label(&s, "itest@2", "block");
    snprintf(cmd, sizeof cmd, "RISKD_ADMIN='%s' " RISKCTL " stats | grep -q 'itest@2'", s.admin);
    assert_int_equal(system(cmd), 0);

    /* a broken rule file: the reload fails, the old rules keep serving */
    write_file(s.rules, RULES_BROKEN);
    char want[256];
    snprintf(want, sizeof want, "%s:5:11: unknown field 'amout' (did you mean 'amount'?)",
             s.rules);
    r = admin_op(&s, "reload", &u);
    assert_false(get(r, "ok")->via.boolean);
    assert_str(get(get(r, "error"), "code"), "bad_request");
    assert_str(get(get(r, "error"), "message"), want);
    expect_label(&s, "itest@2", "block");
    kill(s.pid, SIGHUP);
    wait_reloads(&s, "failed", 2);
    r = admin_op(&s, "stats", &u);
    assert_int_equal(uint_at(r, "reloads", "ok"), 3);
    assert_int_equal(uint_at(r, "reloads", "failed"), 2);
    assert_str(get(get(r, "reloads"), "last_error"), want);
    assert_str(get(r, "ruleset"), "itest@2");
    expect_label(&s, "itest@2", "block");

    msgpack_unpacked_destroy(&u);
    assert_int_equal(stop_server(&s, SIGINT), 0);
    const char *log = read_file(s.log);
    assert_non_null(strstr(log, "reload ok: ruleset itest@2 (was itest@1)"));
    assert_non_null(strstr(log, "reload failed, still serving the previous rule set: "));
    assert_non_null(strstr(log, want));
    cleanup_server(&s);
}

static void test_sigterm_answers_in_flight(void **state)
{
    server s;
    start_server(&s, RULES_V1);
    enum { N = 5000 };
    void *d = connect_socket(ZMQ_DEALER, s.endpoint);
    msgpack_sbuffer sb;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d", i);
        pack_score(&sb, id, i);
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, sb.data, sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
    /* Right after sending: riskd is still reading and scoring them (a
     * thousand microseconds' work at the least), so most are in flight. */
    kill(s.pid, SIGTERM);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    int got = 0;
    for (; got < N; got++) {
        if (!wait_readable(d, TIMEOUT_MS))
            break;
        char delim[8];
        assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
        recv_unpack(d, &u);
        const msgpack_object *id = get(&u.data, "id");
        assert_non_null(get(&u.data, "decision"));
        int i = atoi(id->via.str.ptr + 1);
        assert_false(seen[i]);
        seen[i] = true;
    }
    assert_int_equal(got, N);
    int status = wait_exit(s.pid, TIMEOUT_MS);
    s.pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    const char *log = read_file(s.log);
    const char *line = strstr(log, "shutdown: ");
    /* How many were still in flight when the signal landed depends on the
     * scheduler (on a loaded machine riskd may have read them all already);
     * the contract checked above is that every one was answered. */
    assert_non_null(line);
    assert_true(atoi(line + 10) >= 0);
    assert_non_null(strstr(line, "in-flight answered"));
    msgpack_unpacked_destroy(&u);
    close_socket(d);
    cleanup_server(&s);
}

/* max_inflight: 1 and a burst: the excess is answered `overloaded` at once,
 * with its id, and nothing goes unanswered. */
static void test_overloaded(void **state)
{
    server s;
    start_server_cfg(&s, RULES_V1, "max_inflight: 1\n");
    enum { N = 3000 };
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    /* Start-up pings can be refused too, when a slow start queued several. */
    uint64_t before = uint_at(admin_op(&s, "stats", &u), "errors", "overloaded");
    void *d = connect_socket(ZMQ_DEALER, s.endpoint);
    msgpack_sbuffer sb;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "o%d", i);
        pack_score(&sb, id, i);
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, sb.data, sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    uint64_t overloaded = 0;
    for (int got = 0; got < N; got++) {
        if (!wait_readable(d, TIMEOUT_MS))
            fail_msg("%d of %d replies", got, N);
        char delim[8];
        assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
        recv_unpack(d, &u);
        const msgpack_object *id = get(&u.data, "id");
        assert_non_null(id);
        int i = atoi(id->via.str.ptr + 1);
        assert_false(seen[i]);
        seen[i] = true;
        if (get(&u.data, "error")) {
            assert_str(get(get(&u.data, "error"), "code"), "overloaded");
            overloaded++;
        } else {
            assert_non_null(get(&u.data, "decision"));
        }
    }
    /* A burst this size always queues behind the front thread. */
    assert_true(overloaded > 0);
    const msgpack_object *r = admin_op(&s, "stats", &u);
    assert_int_equal(uint_at(r, "errors", "overloaded") - before, overloaded);
    assert_int_equal(uint_at(r, "inflight", NULL), 0);
    msgpack_unpacked_destroy(&u);
    close_socket(d);
    assert_int_equal(stop_server(&s, SIGTERM), 0);
    cleanup_server(&s);
}

/* Runs riskd with extra arguments to completion; returns the wait status and
 * leaves its stdout and stderr in dir. */
static int run_riskd(const char *dir, char *const argv[])
{
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    return wait_exit(spawn(argv, out, err), TIMEOUT_MS);
}

static void test_startup_failures(void **state)
{
    char dir[] = "/tmp/rk_itest_start_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char rules[128], cfg[128], path[160];
    snprintf(rules, sizeof rules, "%s/rules.yaml", dir);
    snprintf(cfg, sizeof cfg, "%s/riskd.yaml", dir);
    write_file(rules, RULES_BROKEN);
    write_file(cfg, "rules: rules.yaml\nworkers: 1\nendpint: tcp://127.0.0.1:1\n");

    char *broken[] = {RISKD, "--rules", rules, NULL};
    int st = run_riskd(dir, broken);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    snprintf(path, sizeof path, "%s/stderr", dir);
    char want[256];
    snprintf(want, sizeof want, "%s:5:11: unknown field 'amout' (did you mean 'amount'?)\n", rules);
    assert_string_equal(read_file(path), want);

    char *badkey[] = {RISKD, "-c", cfg, NULL};
    st = run_riskd(dir, badkey);
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(want, sizeof want, "riskd: %s:3:1: unknown key 'endpint' (did you mean 'endpoint'?)\n",
             cfg);
    assert_string_equal(read_file(path), want);

    char *badflag[] = {RISKD, "--workres", "2", NULL};
    st = run_riskd(dir, badflag);
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_string_equal(read_file(path), "riskd: unknown option '--workres' (try --help)\n");

    char *help[] = {RISKD, "--help", NULL};
    st = run_riskd(dir, help);
    assert_int_equal(WEXITSTATUS(st), 0);
    snprintf(path, sizeof path, "%s/stdout", dir);
    assert_non_null(strstr(read_file(path), "usage: riskd"));

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The docs' example clients work against a live riskd. */
static void test_doc_examples(void **state)
{
    const char *py = RK_SOURCE_DIR "/docs/examples/client.py";
    const char *c = RK_SOURCE_DIR "/docs/examples/client.c";
    bool have_py = access(py, R_OK) == 0, have_c = access(c, R_OK) == 0;
    if (!have_py)
        printf("skip: %s does not exist\n", py);
    if (!have_c)
        printf("skip: %s does not exist\n", c);
    if (!have_py && !have_c)
        return;
    server s;
    start_server(&s, RULES_V1);
    char cmd[1024];
    if (have_py) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s > %s/py.out", py, s.endpoint, s.dir);
        int st = system(cmd);
        snprintf(cmd, sizeof cmd, "%s/py.out", s.dir);
        if (st != 0)
            fail_msg("client.py exited %d: %s", st, read_file(cmd));
        assert_non_null(strstr(read_file(cmd), "itest@1"));
    }
    if (have_c) {
        snprintf(cmd, sizeof cmd,
                 "cc -std=c11 -Wall -o %s/client %s $(pkg-config --cflags --libs libzmq msgpack) "
                 "2> %s/cc.err",
                 s.dir, c, s.dir);
        if (system(cmd) != 0) {
            snprintf(cmd, sizeof cmd, "%s/cc.err", s.dir);
            fail_msg("client.c does not compile: %s", read_file(cmd));
        }
        snprintf(cmd, sizeof cmd, "%s/client %s > %s/c.out", s.dir, s.endpoint, s.dir);
        int st = system(cmd);
        snprintf(cmd, sizeof cmd, "%s/c.out", s.dir);
        if (st != 0)
            fail_msg("client.c exited %d: %s", st, read_file(cmd));
        assert_non_null(strstr(read_file(cmd), "itest@1"));
    }
    assert_int_equal(stop_server(&s, SIGTERM), 0);
    cleanup_server(&s);
}

/* ---- the state store ----------------------------------------------------------- */

/* Velocity counters and dynamic lists; the score is acct_n (mod 4096), one
 * rule per bit, so a reply shows the counter's value. */
static const char *state_rules(void)
{
    static char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "ruleset: istate\n"
                     "version: \"1\"\n"
                     "lists:\n"
                     "  blocked_cards: {dynamic: true, add_on_fraud: card, ttl: 30d}\n"
                     "counters:\n"
                     "  acct_n: {by: account, window: 24h}\n"
                     "  card_fraud_90d: {by: card, window: 90d, feedback: fraud}\n"
                     "rules:\n"
                     "  - id: blocked_card\n"
                     "    when: card in @blocked_cards\n"
                     "    action: block\n"
                     "  - id: known_fraud_card\n"
                     "    when: card_fraud_90d >= 1\n"
                     "    action: block\n");
    for (int b = 0; b < 12; b++)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "  - id: n_bit%d\n    when: acct_n %% %d >= %d\n    score: %d\n", b, 2 << b,
                      1 << b, 1 << b);
    return buf;
}

static void pack_card(msgpack_sbuffer *sb, const char *id, const char *account, const char *card)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pk_str(&pk, "id");
    pk_str(&pk, id);
    pk_str(&pk, "account");
    pk_str(&pk, account);
    pk_str(&pk, "amount");
    msgpack_pack_int(&pk, 100);
    pk_str(&pk, "card");
    pk_str(&pk, card);
}

/* Scores one request on a fresh REQ socket; returns acct_n from the score and
 * sets *decision (static) and *replayed. */
static int state_score(server *s, const char *id, const char *account, const char *card,
                       const char **decision, bool *replayed)
{
    void *req = connect_socket(ZMQ_REQ, s->endpoint);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_sbuffer sb;
    pack_card(&sb, id, account, card);
    const msgpack_object *r = call(req, &sb, &u);
    const msgpack_object *d = get(r, "decision"), *sc = get(r, "score");
    if (!d || !sc)
        fail_msg("no decision for %s", id);
    static char dec[16];
    snprintf(dec, sizeof dec, "%.*s", (int)d->via.str.size, d->via.str.ptr);
    *decision = dec;
    *replayed = get(r, "replayed") != NULL;
    int n = (int)sc->via.f64;
    msgpack_unpacked_destroy(&u);
    close_socket(req);
    return n;
}

/* Runs riskctl with RISKD_ADMIN set to s's admin endpoint; returns its exit
 * status and leaves its stdout (one line) in out. */
static int riskctl(server *s, char *out, size_t size, const char *args)
{
    char cmd[1024], path[128];
    snprintf(path, sizeof path, "%s/riskctl.out", s->dir);
    snprintf(cmd, sizeof cmd, "RISKD_ADMIN='%s' " RISKCTL " %s > '%s' 2>&1", s->admin, args, path);
    int st = system(cmd);
    snprintf(out, size, "%s", read_file(path));
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n')
        out[n - 1] = '\0';
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Counters, retries, lists and feedback survive a restart; riskctl list,
 * feedback and backup work against a live riskd (in strict mode); a second
 * riskd started on the backup carries the counter values, lists and retry
 * answers as they were when the backup was taken. */
static void test_state_backup_restore(void **state)
{
    server a, b;
    start_server_cfg(&a, state_rules(), "durability: strict\n");
    const char *dec;
    bool rp;
    char id[32], out[512], args[512];
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "i%d", i);
        snprintf(args, sizeof args, "tok-%d", i);
        assert_int_equal(state_score(&a, id, "acct-7", args, &dec, &rp), i);
        assert_string_equal(dec, "allow");
        assert_false(rp);
    }
    /* a retry: the first answer, nothing counted */
    assert_int_equal(state_score(&a, "i3", "acct-7", "tok-3", &dec, &rp), 3);
    assert_true(rp);

    /* lists and feedback through riskctl */
    assert_int_equal(riskctl(&a, out, sizeof out, "list add blocked_cards tok-9 --ttl 30d"), 0);
    assert_non_null(strstr(out, "added 'tok-9' to blocked_cards (expires "));
    assert_int_equal(state_score(&a, "i6", "acct-7", "tok-9", &dec, &rp), 6);
    assert_string_equal(dec, "block");
    assert_int_equal(riskctl(&a, out, sizeof out, "list get blocked_cards tok-9"), 0);
    assert_int_equal(riskctl(&a, out, sizeof out, "list get blocked_cards tok-8"), 1);
    assert_string_equal(out, "'tok-8' is not on blocked_cards");
    assert_int_equal(riskctl(&a, out, sizeof out, "feedback i2 fraud"), 0);
    assert_string_equal(out, "recorded fraud for i2: 1 counter update, 1 list entry added");
    assert_int_equal(riskctl(&a, out, sizeof out, "feedback i99 fraud"), 1);
    assert_string_equal(out, "riskctl: feedback failed: unknown transaction id 'i99'");
    assert_int_equal(state_score(&a, "i7", "acct-7", "tok-2", &dec, &rp), 7);
    assert_string_equal(dec, "block");

    /* restart: everything committed is still there */
    assert_int_equal(stop_server(&a, SIGTERM), 0);
    char data_a[128];
    snprintf(data_a, sizeof data_a, "%s/data", a.dir);
    server a2;
    start_server_data(&a2, state_rules(), "durability: strict\n", data_a);
    assert_int_equal(state_score(&a2, "i8", "acct-7", "tok-1", &dec, &rp), 8);
    assert_int_equal(state_score(&a2, "i5", "acct-7", "tok-5", &dec, &rp), 5);
    assert_true(rp);

    /* backup, then keep scoring */
    char bk[160];
    snprintf(bk, sizeof bk, "%s/backup", a.dir);
    snprintf(args, sizeof args, "backup '%s'", bk);
    assert_int_equal(riskctl(&a2, out, sizeof out, args), 0);
    assert_non_null(strstr(out, "backup written to "));
    assert_int_equal(riskctl(&a2, out, sizeof out, args), 1);
    assert_non_null(strstr(out, "already holds a store"));
    assert_int_equal(state_score(&a2, "i9", "acct-7", "tok-1", &dec, &rp), 9);
    assert_int_equal(state_score(&a2, "i10", "acct-7", "tok-1", &dec, &rp), 10);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *r = admin_op(&a2, "stats", &u);
    assert_int_equal(uint_at(r, "replayed", NULL), 1);
    assert_int_equal(uint_at(r, "degraded", NULL), 0);
    const msgpack_object *st = get(r, "store");
    assert_str(get(st, "durability"), "strict");
    assert_true(uint_at(st, "entries_recent", NULL) >= 10);
    assert_int_equal(uint_at(st, "entries_lists", NULL), 2); /* tok-9, and tok-2 by feedback */
    assert_true(uint_at(st, "syncs", NULL) > 0); /* strict: every answered commit was fsynced */
    assert_true(uint_at(st, "durable_commits", NULL) >= 3); /* i8, i9, i10 since the restart */
    msgpack_unpacked_destroy(&u);

    /* restore: a second riskd on the backup, beside the first */
    start_server_data(&b, state_rules(), NULL, bk);
    assert_int_equal(state_score(&b, "j1", "acct-7", "tok-1", &dec, &rp), 9); /* 8 at backup */
    assert_int_equal(state_score(&b, "i8", "acct-7", "tok-1", &dec, &rp), 8);
    assert_true(rp);
    assert_int_equal(state_score(&b, "i9", "acct-7", "tok-1", &dec, &rp), 10); /* after: new */
    assert_false(rp);
    state_score(&b, "j2", "acct-8", "tok-9", &dec, &rp);
    assert_string_equal(dec, "block"); /* the list entry */
    state_score(&b, "j3", "acct-8", "tok-2", &dec, &rp);
    assert_string_equal(dec, "block"); /* the feedback's list entry and counter */
    assert_int_equal(riskctl(&b, out, sizeof out, "feedback i3 legit"), 0);

    assert_int_equal(stop_server(&b, SIGTERM), 0);
    assert_int_equal(stop_server(&a2, SIGTERM), 0);
    cleanup_server(&b);
    cleanup_server(&a2);
    cleanup_server(&a);
}

/* ---- the decision log ---------------------------------------------------------- */

/* Dumps every decision log file of the data directory data (oldest first)
 * with `riskctl log dump` into s->dir/dump.jsonl. Returns the number of
 * files; each dump must exit 0 (a torn tail is allowed, reported on stderr;
 * a corrupt record is not). */
static int dump_decisions(server *s, const char *data)
{
    char dir[256], out[256], err[256];
    snprintf(dir, sizeof dir, "%s/decisions", data);
    snprintf(out, sizeof out, "%s/dump.jsonl", s->dir);
    snprintf(err, sizeof err, "%s/dump.err", s->dir);
    unlink(out);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    int files = 0;
    /* Names sort by creation time, then sequence number: one riskd run at a
     * time, so that is the order they were written in. */
    for (int i = 0; i < n; i++) {
        if (strncmp(names[i]->d_name, "decisions-", 10) == 0) {
            char cmd[2048];
            snprintf(cmd, sizeof cmd, RISKCTL " log dump '%s/%s' >> '%s' 2>> '%s'", dir,
                     names[i]->d_name, out, err);
            int st = system(cmd);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("riskctl log dump %s failed: %s", names[i]->d_name, read_file(err));
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

/* From a dump line: the string after the first `"key":"` at or after from,
 * copied into buf. */
static const char *json_str(const char *from, const char *key, char *buf, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = from ? strstr(from, pat) : NULL;
    buf[0] = '\0';
    if (!p)
        return buf;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    return buf;
}

/* Reads the dump: every line a decision record whose reply echoes its
 * request's id, with the expected prefix; calls back with id and decision.
 * Returns the number of lines. */
static int read_dump(server *s, const char *prefix, void (*each)(int i, const char *decision))
{
    char path[256];
    snprintf(path, sizeof path, "%s/dump.jsonl", s->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        char id[64], rid[64], dec[32];
        assert_true(strncmp(line, "{\"req\":{", 8) == 0);
        json_str(line, "id", id, sizeof id);
        const char *resp = strstr(line, "\"resp\":{");
        assert_non_null(resp);
        json_str(resp, "id", rid, sizeof rid);
        json_str(resp, "decision", dec, sizeof dec);
        assert_string_equal(rid, id);
        assert_true(strncmp(id, prefix, strlen(prefix)) == 0);
        assert_true(strcmp(dec, "allow") == 0 || strcmp(dec, "review") == 0 ||
                    strcmp(dec, "block") == 0);
        if (each)
            each(atoi(id + strlen(prefix)), dec);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

enum { DL_N = 2000 };
static char dl_reply[DL_N][16]; /* decision answered to d<i> */
static int dl_logged[DL_N];     /* times d<i> appears in the log */

static void check_logged(int i, const char *decision)
{
    assert_true(i >= 0 && i < DL_N);
    assert_string_equal(decision, dl_reply[i]);
    dl_logged[i]++;
}

/* Sends ids <prefix>0..n-1 on a DEALER and returns it (replies unread). */
static void *send_burst(server *s, const char *prefix, int n)
{
    void *d = connect_socket(ZMQ_DEALER, s->endpoint);
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        char id[32];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        pack_score(&sb, id, (int64_t)i * 100); /* above 1000: review */
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, sb.data, sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
    return d;
}

/* A live riskd logs every decision it answers, and only those: after a
 * SIGTERM, `riskctl log dump` shows one record per score reply, with the
 * decision that was answered; the junk request and the ping are not there. */
static void test_decision_log_live(void **state)
{
    server s;
    start_server(&s, RULES_V1);
    void *d = send_burst(&s, "d", DL_N);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (int got = 0; got < DL_N; got++) {
        char delim[8];
        if (!wait_readable(d, TIMEOUT_MS))
            fail_msg("%d replies of %d", got, DL_N);
        assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
        recv_unpack(d, &u);
        const msgpack_object *id = get(&u.data, "id"), *dec = get(&u.data, "decision");
        assert_non_null(id);
        assert_non_null(dec);
        int i = atoi(id->via.str.ptr + 1);
        snprintf(dl_reply[i], sizeof dl_reply[i], "%.*s", (int)dec->via.str.size,
                 dec->via.str.ptr);
    }
    /* not decisions: an error and a ping */
    void *req = connect_socket(ZMQ_REQ, s.endpoint);
    assert_int_equal(zmq_send(req, "\xc1", 1, 0), 1);
    recv_unpack(req, &u);
    assert_non_null(get(&u.data, "error"));
    msgpack_sbuffer sb;
    pack_op(&sb, "ping");
    call(req, &sb, &u);
    close_socket(req);
    const msgpack_object *st = get(admin_op(&s, "stats", &u), "decision_log");
    assert_non_null(st);
    assert_int_equal(uint_at(st, "dropped", NULL), 0);
    assert_int_equal(uint_at(st, "errors", NULL), 0);
    msgpack_unpacked_destroy(&u);
    close_socket(d);

    assert_int_equal(stop_server(&s, SIGTERM), 0);
    char data[160];
    snprintf(data, sizeof data, "%s/data", s.dir);
    struct stat dst;
    char dir[200];
    snprintf(dir, sizeof dir, "%s/decisions", data);
    assert_int_equal(stat(dir, &dst), 0);
    assert_int_equal(dst.st_mode & 0777, 0700);
    assert_int_equal(dump_decisions(&s, data), 1);
    memset(dl_logged, 0, sizeof dl_logged);
    assert_int_equal(read_dump(&s, "d", check_logged), DL_N);
    for (int i = 0; i < DL_N; i++)
        assert_int_equal(dl_logged[i], 1);
    assert_non_null(strstr(read_file(s.log), "decision log: closed; 2000 records written, 0 dropped"));
    cleanup_server(&s);
}

/* kill -9 while decisions are being logged: whatever the log holds reads
 * back as whole, verified records (a record cut by the kill is a torn tail,
 * never returned); a restart writes a new file after it. */
static void test_decision_log_crash(void **state)
{
    server s;
    start_server(&s, RULES_V1);
    void *d = send_burst(&s, "k", DL_N);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (int got = 0; got < DL_N / 2; got++) { /* in the middle of the load */
        char delim[8];
        if (!wait_readable(d, TIMEOUT_MS))
            fail_msg("%d replies of %d", got, DL_N / 2);
        assert_int_equal(zmq_recv(d, delim, sizeof delim, 0), 0);
        recv_unpack(d, &u);
    }
    kill(s.pid, SIGKILL);
    assert_true(wait_exit(s.pid, TIMEOUT_MS) != -1);
    s.pid = 0;
    close_socket(d);

    char data[160];
    snprintf(data, sizeof data, "%s/data", s.dir);
    int files = dump_decisions(&s, data);
    int before = read_dump(&s, "k", NULL); /* every line checked whole */
    assert_true(before <= DL_N);

    /* a restart on the same data directory starts a new file */
    start_server_data(&s, RULES_V1, NULL, data);
    void *req = connect_socket(ZMQ_REQ, s.endpoint);
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer sb;
        char id[32];
        snprintf(id, sizeof id, "k%d", DL_N + i);
        pack_score(&sb, id, 5);
        call(req, &sb, &u);
        assert_non_null(get(&u.data, "decision"));
    }
    close_socket(req);
    msgpack_unpacked_destroy(&u);
    assert_int_equal(stop_server(&s, SIGTERM), 0);
    assert_int_equal(dump_decisions(&s, data), files + 1);
    assert_int_equal(read_dump(&s, "k", NULL), before + 3);
    cleanup_server(&s);
}

static int setup(void **state)
{
    zctx = zmq_ctx_new();
    signal(SIGPIPE, SIG_IGN);
    return zctx ? 0 : -1;
}

static int teardown(void **state)
{
    for (int i = 0; i < nspawned; i++)
        if (waitpid(spawned[i], NULL, WNOHANG) == 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
        }
    for (int i = 0; i < 64; i++)
        if (sockets[i])
            zmq_close(sockets[i]);
    return zmq_ctx_term(zctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_and_dealer),
        cmocka_unit_test(test_reloads),
        cmocka_unit_test(test_sigterm_answers_in_flight),
        cmocka_unit_test(test_overloaded),
        cmocka_unit_test(test_startup_failures),
        cmocka_unit_test(test_doc_examples),
        cmocka_unit_test(test_state_backup_restore),
        cmocka_unit_test(test_decision_log_live),
        cmocka_unit_test(test_decision_log_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
