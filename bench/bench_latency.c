/* bench_latency: REQ lockstep latency over TCP loopback, riskd against a bare
 * ZeroMQ echo of the same messages, measured in the same run.
 *
 * The echo is a ROUTER socket in a child process that returns every message as
 * it came (so its reply is the request's size, and it pays the same process
 * and socket hops riskd does, minus riskd's work). riskd runs as a child
 * process on the shipped rule set. Rounds alternate echo and riskd so that
 * machine noise lands on both; each request is timed from its intended send
 * time at the stated rate, so a slow reply also charges the requests it
 * delayed (no coordinated omission). Every request riskd sees has a new id
 * (a repeated one would be answered from the store as a retry), so each
 * decision updates the shipped rule set's velocity counters in LMDB, in the
 * default periodic durability. Reports p50/p90/p99/p99.9/max per target and
 * the median over rounds of the p50 and p99 ratios riskd/echo, the figures the
 * budget in DESIGN.md section 8 is written in. */
#include <getopt.h>
#include <sched.h>
#include "bench_util.h"
#include "lib/clock.h"

typedef struct opts {
    const char *riskd;  /* riskd binary */
    const char *rules;  /* rule file riskd scores with */
    double rate;        /* requests per second, per round */
    int n;              /* requests per round per target */
    int rounds;         /* alternating echo/riskd rounds */
    int json;           /* print one JSON object */
    const char *config; /* riskd.yaml for riskd (-c), or NULL */
    const char *pin;    /* --pin: the CPU the echo and riskd run on, or NULL */
} opts;


typedef struct target {
    const char *name;   /* "echo" or "riskd" */
    char endpoint[64];  /* tcp://127.0.0.1:PORT */
    void *sock;         /* REQ */
    int64_t *all;       /* latencies of every round, ns */
    size_t nall;
    double p50[64], p99[64]; /* per round, us */
    int next;           /* next message: each target sends each message once */
} target;

static void run_round(target *t, msgpack_sbuffer *msgs, const opts *o, int record, int round)
{
    /* rate 0: back-to-back lockstep, each request sent as its reply arrives. */
    int64_t period = o->rate > 0 ? (int64_t)(1e9 / o->rate) : 0;
    int64_t start = rk_clock_ns() + 1000000;
    int64_t *lat = t->all + t->nall;
    char buf[65536];
    for (int i = 0; i < o->n; i++) {
        int64_t intended = period ? start + (int64_t)i * period : rk_clock_ns();
        if (rk_clock_ns() < intended)
            bench_sleep_until(intended);
        msgpack_sbuffer *m = &msgs[t->next++];
        if (zmq_send(t->sock, m->data, m->size, 0) < 0 || zmq_recv(t->sock, buf, sizeof buf, 0) < 0) {
            fprintf(stderr, "%s: %s\n", t->name, zmq_strerror(zmq_errno()));
            exit(1);
        }
        if (record)
            lat[i] = rk_clock_ns() - intended;
    }
    if (!record)
        return;
    int64_t *copy = malloc(sizeof *copy * (size_t)o->n);
    memcpy(copy, lat, sizeof *copy * (size_t)o->n);
    bench_pct p = bench_percentiles(copy, (size_t)o->n);
    free(copy);
    t->p50[round] = p.p50;
    t->p99[round] = p.p99;
    t->nall += (size_t)o->n;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_latency [--riskd PATH] [--rules FILE] [--config YAML] [--rate R] "
               "[--n N] [--rounds K] [--pin CPU] [--json]\n"
               "--rate 0 sends back-to-back (each request as the previous reply arrives).\n"
               "--config starts riskd with -c YAML (flags still set rules, endpoints, data).\n"
               "--pin runs the echo and riskd (--cpus) on that CPU; the client runs anywhere.\n"
               "REQ lockstep latency over TCP loopback: riskd vs a bare ZeroMQ echo.\n");
}

int main(int argc, char **argv)
{
    opts o = {"build/riskd", "rules/default.yaml", 2000, 5000, 5, 0, NULL, NULL};
    static const struct option lo[] = {
        {"riskd", 1, 0, 'd'}, {"rules", 1, 0, 'r'}, {"rate", 1, 0, 'R'}, {"n", 1, 0, 'n'},
        {"rounds", 1, 0, 'k'}, {"json", 0, 0, 'j'}, {"config", 1, 0, 'c'},
        {"pin", 1, 0, 'p'},    {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'd': o.riskd = optarg; break;
        case 'r': o.rules = optarg; break;
        case 'R': o.rate = atof(optarg); break;
        case 'n': o.n = atoi(optarg); break;
        case 'k': o.rounds = atoi(optarg); break;
        case 'j': o.json = 1; break;
        case 'c': o.config = optarg; break;
        case 'p':
            if (!optarg[0] || optarg[strspn(optarg, "0123456789")] || strlen(optarg) > 4) {
                fprintf(stderr, "bench_latency: --pin wants a CPU number, got '%s'\n", optarg);
                return 2;
            }
            o.pin = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.rate < 0 || o.n <= 0 || o.rounds <= 0 || o.rounds > 64) {
        usage(stderr);
        return 2;
    }

    target echo = {.name = "echo"}, riskd = {.name = "riskd"};
    snprintf(echo.endpoint, sizeof echo.endpoint, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(riskd.endpoint, sizeof riskd.endpoint, "tcp://127.0.0.1:%d", bench_free_port());
    pid_t echo_pid = fork();
    if (echo_pid == 0) {
        if (o.pin) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(atoi(o.pin), &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0) {
                perror("bench_latency: echo: --pin");
                _exit(1);
            }
        }
        bench_echo_serve("bench_latency", echo.endpoint);
    }

    char tmpdir[] = "/tmp/rk-bench-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char admin[128];
    snprintf(admin, sizeof admin, "ipc://%s/admin.sock", tmpdir);
    char *rargv[16] = {(char *)o.riskd, "--rules", (char *)o.rules, "--endpoint", riskd.endpoint,
                       "--admin-endpoint", admin, "--data-dir", tmpdir, "--log-level", "warn"};
    int ra = 11;
    if (o.pin) {
        rargv[ra++] = "--cpus";
        rargv[ra++] = (char *)o.pin;
    }
    if (o.config) {
        rargv[ra++] = "-c";
        rargv[ra++] = (char *)o.config;
    }
    rargv[ra] = NULL;
    void *ctx = zmq_ctx_new();
    pid_t riskd_pid = bench_start_riskd(rargv, ctx, riskd.endpoint);

    /* one message per request a target sends: the warm-up round and the rest */
    int nmsg = o.n * (o.rounds + 1);
    msgpack_sbuffer *msgs = calloc((size_t)nmsg, sizeof *msgs);
    for (int i = 0; i < nmsg; i++) {
        msgpack_sbuffer_init(&msgs[i]);
        bench_make_request(&msgs[i], i);
    }
    target *ts[2] = {&echo, &riskd};
    for (int k = 0; k < 2; k++) {
        ts[k]->sock = zmq_socket(ctx, ZMQ_REQ);
        int linger = 0;
        zmq_setsockopt(ts[k]->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(ts[k]->sock, ts[k]->endpoint);
        ts[k]->all = malloc(sizeof(int64_t) * (size_t)o.n * (size_t)o.rounds);
        run_round(ts[k], msgs, &o, 0, 0); /* warm-up: connections, caches, page faults */
    }
    for (int r = 0; r < o.rounds; r++)
        for (int k = 0; k < 2; k++)
            run_round(ts[(k + r) % 2], msgs, &o, 1, r);

    double r50[64], r99[64];
    for (int r = 0; r < o.rounds; r++) {
        r50[r] = riskd.p50[r] / echo.p50[r];
        r99[r] = riskd.p99[r] / echo.p99[r];
    }
    double m50 = bench_median(r50, (size_t)o.rounds), m99 = bench_median(r99, (size_t)o.rounds);
    bench_pct pe = bench_percentiles(echo.all, echo.nall);
    bench_pct pr = bench_percentiles(riskd.all, riskd.nall);
    if (o.json) {
        printf("{\"rate\": %.0f, \"n\": %d, \"rounds\": %d, \"msg_bytes\": %zu, "
               "\"echo\": {\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}, "
               "\"riskd\": {\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f}, "
               "\"p50_ratio\": %.3f, \"p99_ratio\": %.3f, \"pin\": %s}\n",
               o.rate, o.n, o.rounds, msgs[0].size, pe.p50, pe.p90, pe.p99, pe.p999, pe.max, pr.p50,
               pr.p90, pr.p99, pr.p999, pr.max, m50, m99, o.pin ? o.pin : "null");
    } else {
        char rate[64];
        snprintf(rate, sizeof rate, o.rate > 0 ? "%.0f req/s" : "back-to-back", o.rate);
        printf("REQ lockstep over TCP loopback, %s, %d rounds x %d requests, %zu-byte requests\n",
               rate, o.rounds, o.n, msgs[0].size);
        printf("%-6s %9s %9s %9s %9s %9s   (us, all rounds pooled)\n", "", "p50", "p90", "p99",
               "p99.9", "max");
        printf("%-6s %9.1f %9.1f %9.1f %9.1f %9.1f\n", "echo", pe.p50, pe.p90, pe.p99, pe.p999, pe.max);
        printf("%-6s %9.1f %9.1f %9.1f %9.1f %9.1f\n", "riskd", pr.p50, pr.p90, pr.p99, pr.p999, pr.max);
        printf("riskd/echo, median over rounds: p50 %.2fx (budget 1.25x), p99 %.2fx (budget 1.5x)\n",
               m50, m99);
    }

    for (int k = 0; k < 2; k++) {
        zmq_close(ts[k]->sock);
        free(ts[k]->all);
    }
    zmq_ctx_term(ctx);
    bench_stop(riskd_pid);
    kill(echo_pid, SIGKILL);
    waitpid(echo_pid, NULL, 0);
    for (int i = 0; i < nmsg; i++)
        msgpack_sbuffer_destroy(&msgs[i]);
    free(msgs);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : 1;
}
