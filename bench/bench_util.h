/* Helpers shared by the benchmarks: percentiles, free ports, starting riskd.
 * Header-only (static functions) because each benchmark source is its own program. */
#ifndef RK_BENCH_UTIL_H
#define RK_BENCH_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

static inline int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Latency summary in microseconds over n samples in nanoseconds (sorted in place). */
typedef struct bench_pct {
    double p50, p90, p99, p999, max; /* microseconds */
} bench_pct;

static inline bench_pct bench_percentiles(int64_t *ns, size_t n)
{
    bench_pct p = {0};
    if (n == 0)
        return p;
    qsort(ns, n, sizeof *ns, cmp_i64);
#define AT(q) ((double)ns[(size_t)((q) * (double)(n - 1) + 0.5)] / 1000.0)
    p.p50 = AT(0.50);
    p.p90 = AT(0.90);
    p.p99 = AT(0.99);
    p.p999 = AT(0.999);
    p.max = (double)ns[n - 1] / 1000.0;
#undef AT
    return p;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n doubles (sorted in place). */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void bench_sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000, .tv_nsec = t_ns % 1000000000};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Starts riskd (argv[0] = path) and waits until it answers a ping on endpoint.
 * Returns its pid, or exits the benchmark when it does not come up in 10 s. */
static inline pid_t bench_start_riskd(char *const argv[], void *zctx, const char *endpoint)
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        perror("exec riskd");
        _exit(127);
    }
    const unsigned char ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    for (int attempt = 0; attempt < 100; attempt++) {
        void *s = zmq_socket(zctx, ZMQ_REQ);
        int linger = 0, tmo = 100;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
        zmq_connect(s, endpoint);
        char buf[64];
        int ok = zmq_send(s, ping, sizeof ping, 0) >= 0 && zmq_recv(s, buf, sizeof buf, 0) > 0;
        zmq_close(s);
        if (ok)
            return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "riskd exited during start-up\n");
            exit(1);
        }
    }
    fprintf(stderr, "riskd did not answer a ping on %s within 10 s\n", endpoint);
    kill(pid, SIGKILL);
    exit(1);
}

/* A bare ZeroMQ echo: a ROUTER on endpoint that sends every message back as
 * it came, in the calling (child) process, until it is killed; it dies with
 * its parent. The socket buffers are riskd's own (ROUTER_SNDHWM/RCVHWM), so
 * the echo and riskd queue alike under load. Never returns; exits 3 when it
 * cannot bind. The transport floor both benchmarks compare riskd against. */
#define BENCH_ECHO_SNDHWM 100000
#define BENCH_ECHO_RCVHWM 10000
static inline void bench_echo_serve(const char *prog, const char *endpoint)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    int snd = BENCH_ECHO_SNDHWM, rcv = BENCH_ECHO_RCVHWM;
    zmq_setsockopt(s, ZMQ_SNDHWM, &snd, sizeof snd);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcv, sizeof rcv);
    if (zmq_bind(s, endpoint) != 0) {
        fprintf(stderr, "%s: echo: cannot bind %s: %s\n", prog, endpoint,
                zmq_strerror(zmq_errno()));
        _exit(3);
    }
    for (;;) {
        zmq_msg_t m;
        int more;
        do {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) < 0)
                _exit(0);
            more = zmq_msg_more(&m);
            zmq_msg_send(&m, s, more ? ZMQ_SNDMORE : 0);
        } while (more);
    }
}

static inline void bench_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* A realistic score request; the id varies so that no two are retries. */
static inline void bench_make_request(msgpack_sbuffer *sb, int i)
{
    static const char *const countries[] = {"US", "GB", "DE", "FR", "BR", "NG", "IN", "JP"};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    char id[32], acct[32], card[32], dev[32], ip[32];
    snprintf(id, sizeof id, "bench-%010d", i);
    snprintf(acct, sizeof acct, "acct-%06d", i % 5000);
    snprintf(card, sizeof card, "card-%06d", (i * 7) % 9000);
    snprintf(dev, sizeof dev, "dev-%06d", (i * 13) % 7000);
    snprintf(ip, sizeof ip, "10.%d.%d.%d", i % 200, (i / 200) % 250, i % 250);
    const char *c1 = countries[i % 8], *c2 = countries[(i / 8) % 8];
    struct { const char *k; const char *s; int64_t n; } kv[] = {
        {"id", id, 0}, {"account", acct, 0}, {"amount", NULL, 500 + (i * 7919) % 300000},
        {"ts", NULL, 1795000000000LL + (int64_t)i * 250}, {"currency", "USD", 0},
        {"type", "purchase", 0}, {"channel", i % 3 ? "web" : "app", 0}, {"method", "card", 0},
        {"card", card, 0}, {"device", dev, 0}, {"ip", ip, 0},
        {"email", "someone@example.com", 0}, {"merchant", "m-000042", 0},
        {"country", c1, 0}, {"ip_country", i % 5 ? c1 : c2, 0}, {"card_country", c1, 0},
        {"mcc", NULL, i % 11 ? 5411 : 7995},
    };
    size_t n = sizeof kv / sizeof kv[0];
    msgpack_pack_map(&pk, n);
    for (size_t k = 0; k < n; k++) {
        msgpack_pack_str_with_body(&pk, kv[k].k, strlen(kv[k].k));
        if (kv[k].s)
            msgpack_pack_str_with_body(&pk, kv[k].s, strlen(kv[k].s));
        else
            msgpack_pack_int64(&pk, kv[k].n);
    }
}

#endif
