/* bench_strict: riskd's throughput and latency in strict durability (no reply
 * before an fsync covers its update) with many concurrent clients.
 *
 * 64 DEALER clients (--clients), each with one request outstanding: a client
 * sends its next request the moment its reply arrives (closed loop, so the
 * figure is the throughput riskd sustains, and latency is what each client
 * waits). All clients run in this one thread over zmq_poll; requests are
 * realistic score requests (bench_make_request) with unique ids against the
 * shipped rule set and its counters. riskd runs as a child process on a fresh
 * data directory, first in strict mode and then, in the same run for
 * comparison, in periodic mode. Reports requests/s, p50/p90/p99/p99.9/max and
 * the store's commits per fsync (the group-commit factor). */
#include <getopt.h>

#include "bench_util.h"
#include "lib/clock.h"

typedef struct opts {
    const char *riskd;  /* riskd binary */
    const char *rules;  /* rule file */
    int clients;        /* concurrent DEALER clients */
    double duration;    /* seconds measured per mode */
    const char *workers;/* riskd --workers, or NULL for its default */
    int json;           /* one JSON object per mode */
} opts;

typedef struct result {
    double rps;          /* replies per second */
    bench_pct lat;       /* per request, us */
    uint64_t n;          /* requests measured */
    double per_sync;     /* commits per fsync */
} result;

/* One stats round trip to riskd's admin endpoint: commits and syncs. */
static void store_counts(void *ctx, const char *admin, uint64_t *commits, uint64_t *syncs)
{
    *commits = *syncs = 0;
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, tmo = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, admin);
    static const unsigned char stats[] = {0x81, 0xa2, 'o', 'p', 0xa5, 's', 't', 'a', 't', 's'};
    static char buf[1 << 17];
    int n;
    if (zmq_send(s, stats, sizeof stats, 0) >= 0 && (n = zmq_recv(s, buf, sizeof buf, 0)) > 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, buf, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < u.data.via.map.size; i++) {
                msgpack_object_kv *kv = &u.data.via.map.ptr[i];
                if (kv->key.via.str.size != 5 || memcmp(kv->key.via.str.ptr, "store", 5) ||
                    kv->val.type != MSGPACK_OBJECT_MAP)
                    continue;
                for (uint32_t j = 0; j < kv->val.via.map.size; j++) {
                    msgpack_object_kv *e = &kv->val.via.map.ptr[j];
                    if (e->key.via.str.size == 15 &&
                        !memcmp(e->key.via.str.ptr, "durable_commits", 15))
                        *commits = e->val.via.u64;
                    if (e->key.via.str.size == 5 && !memcmp(e->key.via.str.ptr, "syncs", 5))
                        *syncs = e->val.via.u64;
                }
            }
        }
        msgpack_unpacked_destroy(&u);
    }
    zmq_close(s);
}

static result run_mode(const opts *o, const char *mode, void *ctx)
{
    char tmpdir[] = "/tmp/rk-bench-strict-XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    char endpoint[64], admin[128];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", bench_free_port());
    snprintf(admin, sizeof admin, "ipc://%s/admin.sock", tmpdir);
    char *argv[16];
    int a = 0;
    argv[a++] = (char *)o->riskd;
    argv[a++] = "--rules";
    argv[a++] = (char *)o->rules;
    argv[a++] = "--endpoint";
    argv[a++] = endpoint;
    argv[a++] = "--admin-endpoint";
    argv[a++] = admin;
    argv[a++] = "--data-dir";
    argv[a++] = tmpdir;
    argv[a++] = "--durability";
    argv[a++] = (char *)mode;
    argv[a++] = "--log-level";
    argv[a++] = "warn";
    if (o->workers) {
        argv[a++] = "--workers";
        argv[a++] = (char *)o->workers;
    }
    argv[a] = NULL;
    pid_t pid = bench_start_riskd(argv, ctx, endpoint);

    int nc = o->clients;
    void **socks = calloc((size_t)nc, sizeof *socks);
    int64_t *sent_at = calloc((size_t)nc, sizeof *sent_at);
    zmq_pollitem_t *items = calloc((size_t)nc, sizeof *items);
    size_t cap = 1 << 22, nlat = 0;
    int64_t *lat = malloc(sizeof *lat * cap);
    for (int c = 0; c < nc; c++) {
        socks[c] = zmq_socket(ctx, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt(socks[c], ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(socks[c], endpoint);
        items[c] = (zmq_pollitem_t){socks[c], 0, ZMQ_POLLIN, 0};
    }
    int seq = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* warm-up second, then the measured duration */
    int64_t start = rk_clock_ns(), warm_end = start + 1000000000LL,
            end = warm_end + (int64_t)(o->duration * 1e9);
    uint64_t c0 = 0, s0 = 0, c1, s1;
    bool measuring = false;
    for (int c = 0; c < nc; c++) {
        msgpack_sbuffer_clear(&sb);
        bench_make_request(&sb, seq++);
        zmq_send(socks[c], "", 0, ZMQ_SNDMORE);
        zmq_send(socks[c], sb.data, sb.size, 0);
        sent_at[c] = rk_clock_ns();
    }
    int64_t t_measure = 0;
    char buf[65536];
    for (;;) {
        int64_t now = rk_clock_ns();
        if (!measuring && now >= warm_end) {
            store_counts(ctx, admin, &c0, &s0);
            measuring = true;
            t_measure = rk_clock_ns();
        }
        if (now >= end)
            break;
        if (zmq_poll(items, nc, 1000) < 0)
            break;
        for (int c = 0; c < nc; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            while (zmq_recv(socks[c], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
                int more = 0;
                size_t sz = sizeof more;
                zmq_getsockopt(socks[c], ZMQ_RCVMORE, &more, &sz);
                if (more)
                    continue; /* the empty delimiter; the body follows */
                int64_t t = rk_clock_ns();
                if (measuring && nlat < cap)
                    lat[nlat++] = t - sent_at[c];
                msgpack_sbuffer_clear(&sb);
                bench_make_request(&sb, seq++);
                zmq_send(socks[c], "", 0, ZMQ_SNDMORE);
                zmq_send(socks[c], sb.data, sb.size, 0);
                sent_at[c] = t;
            }
        }
    }
    double secs = (double)(rk_clock_ns() - t_measure) / 1e9;
    store_counts(ctx, admin, &c1, &s1);
    result r = {.rps = (double)nlat / secs, .lat = bench_percentiles(lat, nlat), .n = nlat};
    r.per_sync = s1 > s0 ? (double)(c1 - c0) / (double)(s1 - s0) : 0;
    for (int c = 0; c < nc; c++)
        zmq_close(socks[c]);
    msgpack_sbuffer_destroy(&sb);
    free(socks);
    free(sent_at);
    free(items);
    free(lat);
    bench_stop(pid);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return r;
}

int main(int argc, char **argv)
{
    opts o = {"build/riskd", "rules/default.yaml", 64, 5.0, NULL, 0};
    static const struct option lo[] = {
        {"riskd", 1, 0, 'd'},    {"rules", 1, 0, 'r'}, {"clients", 1, 0, 'c'},
        {"duration", 1, 0, 's'}, {"workers", 1, 0, 'w'}, {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'd': o.riskd = optarg; break;
        case 'r': o.rules = optarg; break;
        case 'c': o.clients = atoi(optarg); break;
        case 's': o.duration = atof(optarg); break;
        case 'w': o.workers = optarg; break;
        case 'j': o.json = 1; break;
        case 'h':
            printf("usage: bench_strict [--riskd PATH] [--rules FILE] [--clients N] "
                   "[--duration S] [--workers N] [--json]\n"
                   "Closed-loop throughput and latency of N concurrent DEALER clients against\n"
                   "riskd in strict durability, then in periodic durability.\n");
            return 0;
        default:
            return 2;
        }
    }
    if (o.clients <= 0 || o.clients > 4096 || o.duration <= 0)
        return 2;
    void *ctx = zmq_ctx_new();
    static const char *const modes[] = {"strict", "periodic"};
    result r[2];
    for (int m = 0; m < 2; m++)
        r[m] = run_mode(&o, modes[m], ctx);
    zmq_ctx_term(ctx);
    for (int m = 0; m < 2; m++) {
        if (o.json) {
            printf("{\"mode\": \"%s\", \"clients\": %d, \"rps\": %.0f, \"p50_us\": %.1f, "
                   "\"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
                   "\"commits_per_fsync\": %.2f}\n",
                   modes[m], o.clients, r[m].rps, r[m].lat.p50, r[m].lat.p90, r[m].lat.p99,
                   r[m].lat.p999, r[m].lat.max, r[m].per_sync);
            continue;
        }
        if (m == 0)
            printf("%d DEALER clients, one request outstanding each, %.0f s per mode, riskd "
                   "workers %s\n%-9s %9s %9s %9s %9s %9s %9s %10s\n",
                   o.clients, o.duration, o.workers ? o.workers : "default", "", "req/s", "p50",
                   "p90", "p99", "p99.9", "max", "commits/fsync");
        printf("%-9s %9.0f %9.1f %9.1f %9.1f %9.1f %9.1f %10.1f\n", modes[m], r[m].rps,
               r[m].lat.p50, r[m].lat.p90, r[m].lat.p99, r[m].lat.p999, r[m].lat.max,
               r[m].per_sync);
    }
    if (!o.json)
        printf("(latency in us, from send to reply; commits/fsync is 0 in periodic mode between "
               "flushes)\n");
    return 0;
}
