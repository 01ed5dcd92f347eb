/* riskbench: replays a traffic log against a riskd endpoint open-loop, at a set
 * rate, and reports what came back and how long it took (DESIGN.md sections 7
 * and 8; bench/README.md explains how to read the report).
 *
 * Open loop, no coordinated omission: request i has an intended send time
 * t0 + i/rate fixed before the run starts, and its latency is measured from
 * that time to its reply, so a slow reply, a stalled riskd or a late sender
 * all show up as latency instead of silently lowering the load. The sender's
 * own lateness (actual minus intended send time) is reported too, so a
 * client that could not keep up is visible as such.
 *
 * One thread does everything: it sends every request whose time has come,
 * drains replies from all sockets, and sleeps in ppoll(2) on the sockets'
 * ZMQ_FDs until the next send is due (timer slack set to 1 ns for pacing).
 * ZeroMQ sockets are not thread-safe, so a separate receiver thread would need
 * its own sockets, and replies come back on the socket that sent; a single
 * thread also keeps the client cheap on a machine it shares with riskd.
 *
 * Matching: each request goes out on a DEALER as [tag][empty][body], tag =
 * (step, index) in 8 bytes. riskd's envelope is every frame up to the first
 * empty one and comes back unchanged, so the reply names its request; a reply
 * from an earlier find-max step is recognised and ignored.
 *
 * Ids: the log is replayed in file order, looping when it holds fewer
 * requests than rate x duration. Loop k > 0 appends "~k" to each `id` (and
 * --tag T appends "~T" to every id) so riskd does not answer repeats from its
 * retry de-duplication. All bodies are prepared up front in one buffer; the
 * send/receive loop only copies frames into ZeroMQ and allocates nothing.
 *
 * --echo forks a bare ZeroMQ ROUTER echo (its own process and context, the
 * same socket buffers as riskd) and replays against it: the transport floor
 * measured with the same tool, log and rate. --find-max runs short steps,
 * doubling the rate while a step passes (nothing lost, p99 within the bound,
 * the rate achieved), then bisects between the last pass and the first fail. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/prctl.h>

#include "bench_util.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "proto/mp.h"
#include "proto/proto.h"
#include "proto/rlog.h"

#define EXIT_USAGE 2
#define MAX_CONNECTIONS 64
#define MAX_DURATION_S 3600.0
#define MAX_RATE 10000000.0
#define MAX_STEPS 16          /* find-max: steps at most */
#define BISECT_PRECISION 0.05 /* find-max: stop when the bracket is this tight */
#define RECV_BATCH 32         /* replies read per socket before checking the send schedule */
#define REPLY_MAX 65536       /* reply bytes looked at; longer replies are classified as none */
#define PING_WAIT_MS 5000     /* how long the target gets to answer a first ping */
#define SETTLE_NS 20000000LL  /* t0 is this far after the sockets connect */
#define SETTLE_RTT_NS 5000000 /* find-max: a step starts once a ping comes back this fast */
#define SETTLE_WAIT_MS 10000  /* or after this long */

typedef struct opts {
    const char *endpoint; /* target; with --echo and none given, a free loopback port */
    const char *log;      /* the traffic log replayed */
    const char *tag;      /* appended as "~TAG" to every id when set */
    double rate;          /* requests per second (find-max: the first rate tried) */
    double duration;      /* seconds measured per run (find-max: per step) */
    double warmup;        /* seconds sent at the same rate before measuring */
    double p99_bound_us;  /* find-max: the p99 a passing step stays within */
    double p99_vs_echo;   /* find-max: or within this many times an echo's p99 at the step's rate */
    int connections;      /* DEALER sockets, used round-robin */
    int timeout_ms;       /* how long replies may trail the last send */
    bool rate_set;        /* --rate was given */
    bool json;            /* print one JSON object */
    bool echo;            /* replay against a bare echo started here */
    bool find_max;        /* search for the highest passing rate */
    bool progress;        /* a progress line every second, even on short runs */
} opts;

/* The log's requests, borrowed from the reader's mapping. */
typedef struct reqs {
    rk_rlog *log;         /* keeps the mapping alive */
    const uint8_t **body; /* each request's bytes */
    uint32_t *len;        /* their lengths */
    uint32_t *id_at;      /* offset of the `id` value in the body; UINT32_MAX when absent */
    uint32_t *id_size;    /* bytes of that value, header included */
    size_t n;             /* requests */
} reqs;

/* The bodies one run sends, rewritten and laid out back to back. */
typedef struct batch {
    uint8_t *bytes; /* all bodies */
    size_t *off;    /* body i is bytes[off[i], off[i + 1]) */
    size_t n;       /* bodies */
} batch;

enum { D_ALLOW, D_REVIEW, D_BLOCK, D_NONE, D__COUNT };
static const char *const decision_names[D__COUNT] = {"allow", "review", "block", "none"};

/* What one run measured. */
typedef struct result {
    double rate;           /* asked */
    double achieved;       /* requests sent per second */
    double answered_rate;  /* replies per second, to the last reply */
    uint64_t sent;         /* measured requests sent */
    uint64_t answered;     /* of them, answered (error replies included) */
    uint64_t timeouts;     /* not answered within the timeout */
    uint64_t stale;        /* replies to an earlier step or to nothing sent */
    uint64_t degraded;     /* answers with "degraded": true */
    uint64_t dec[D__COUNT];          /* answers by decision */
    uint64_t err[RK_WERR__COUNT];    /* error replies by code; [0]: a code riskd does not define */
    bench_pct lat;         /* latency from intended send time, us */
    bench_pct lag;         /* sender lateness, us */
} result;

/* State of the run in progress, shared by the loop's helpers. */
typedef struct run {
    const opts *o;        /* the command line */
    void **socks;         /* the DEALERs */
    struct pollfd *pfd;   /* their ZMQ_FDs */
    const batch *b;       /* bodies to send, warm-up first */
    size_t nwarm;         /* warm-up requests at the front of b */
    uint32_t step;        /* tag of this run */
    int64_t t0;           /* intended send time of request 0 */
    double period_ns;     /* between intended send times */
    int64_t *lat;         /* per measured request: latency ns, -1 until answered */
    int64_t *lag;         /* per measured request: sender lateness ns */
    int64_t last_reply;   /* clock of the last measured reply */
    int64_t last_send;    /* clock of the last measured send */
    uint8_t reply[REPLY_MAX]; /* the body of the reply being read */
    result *res;          /* what the run measured, filled as it goes */
    int64_t win_max;      /* progress: the largest latency in the current second */
} run;

static const char *prog = "riskbench";

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("Usage: riskbench --endpoint EP --log LOG --rate R --duration S [OPTIONS]\n"
          "       riskbench --echo --log LOG --rate R --duration S [OPTIONS]\n"
          "       riskbench --find-max --p99-bound-us B --endpoint EP --log LOG [OPTIONS]\n"
          "       riskbench --find-max --p99-vs-echo K --endpoint EP --log LOG [OPTIONS]\n"
          "\n"
          "Replays the requests of a traffic log (.rlog; a decision log works too) against\n"
          "a riskd endpoint open-loop at a fixed rate, and reports the achieved rate,\n"
          "answers, errors, the decision mix and latency percentiles measured from each\n"
          "request's intended send time. See bench/README.md.\n"
          "\n"
          "Options:\n"
          "  --endpoint EP        riskd's request endpoint (tcp://127.0.0.1:7700)\n"
          "  --log LOG            traffic log to replay, in file order, looping as needed\n"
          "  --rate R             requests per second (find-max: first rate tried; 1000)\n"
          "  --duration S         seconds measured (find-max: per step); default 10\n"
          "  --connections N      DEALER sockets, used round-robin; default 2\n"
          "  --warmup S           seconds sent at the rate before measuring; default 0\n"
          "  --timeout MS         how long replies may trail the last send; default 2000\n"
          "  --tag T              append \"~T\" to every id (fresh ids for a repeated run)\n"
          "  --json               print one JSON object instead of the text report\n"
          "  --echo               start a bare ZeroMQ echo on EP (or a free port) and\n"
          "                       replay against it: the transport floor\n"
          "  --find-max           search for the highest rate with nothing lost and\n"
          "  --p99-bound-us B     p99 within B microseconds\n"
          "  --p99-vs-echo K      or p99 within K times a bare echo's, measured just\n"
          "                       before each step at the same rate\n"
          "  --progress           a progress line every second on stderr (default on\n"
          "                       runs longer than 5 s)\n"
          "  -h, --help           this text\n"
          "\n"
          "Exit status: 0 the run completed (losses are reported, not failures);\n"
          "1 the log or the endpoint could not be used; 2 bad usage.\n",
          f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nTry 'riskbench --help'.\n", prog, line);
    return EXIT_USAGE;
}

__attribute__((format(printf, 1, 2))) static int failure(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", prog, line);
    return 1;
}

/* A finite number in [lo, hi] (lo excluded when open_lo). */
static int parse_num(const char *name, const char *text, double lo, bool open_lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v) || v < lo || (open_lo && v == lo) ||
        v > hi)
        return usage_error("option '--%s' takes a number %s %g and at most %g, not '%s'", name,
                           open_lo ? "above" : "from", lo, hi, text);
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    enum { O_ENDPOINT = 1, O_LOG, O_RATE, O_DURATION, O_CONN, O_WARMUP, O_TIMEOUT, O_TAG,
           O_JSON, O_ECHO, O_FINDMAX, O_BOUND, O_VSECHO, O_PROGRESS, O_HELP };
    static const struct option lo[] = {
        {"endpoint", 1, 0, O_ENDPOINT}, {"log", 1, 0, O_LOG},         {"rate", 1, 0, O_RATE},
        {"duration", 1, 0, O_DURATION}, {"connections", 1, 0, O_CONN}, {"warmup", 1, 0, O_WARMUP},
        {"timeout", 1, 0, O_TIMEOUT},   {"tag", 1, 0, O_TAG},          {"json", 0, 0, O_JSON},
        {"echo", 0, 0, O_ECHO},         {"find-max", 0, 0, O_FINDMAX},
        {"p99-bound-us", 1, 0, O_BOUND}, {"p99-vs-echo", 1, 0, O_VSECHO},
        {"progress", 0, 0, O_PROGRESS}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    *o = (opts){.rate = 1000, .duration = 10, .connections = 2, .timeout_ms = 2000};
    opterr = 0;
    double v;
    int rc = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1 && rc == 0;) {
        switch (c) {
        case O_ENDPOINT: o->endpoint = optarg; break;
        case O_LOG: o->log = optarg; break;
        case O_TAG: o->tag = optarg; break;
        case O_RATE:
            rc = parse_num("rate", optarg, 0, true, MAX_RATE, &o->rate);
            o->rate_set = true;
            break;
        case O_DURATION: rc = parse_num("duration", optarg, 0, true, MAX_DURATION_S, &o->duration); break;
        case O_WARMUP: rc = parse_num("warmup", optarg, 0, false, MAX_DURATION_S, &o->warmup); break;
        case O_BOUND: rc = parse_num("p99-bound-us", optarg, 0, true, 1e9, &o->p99_bound_us); break;
        case O_VSECHO: rc = parse_num("p99-vs-echo", optarg, 0, true, 1e6, &o->p99_vs_echo); break;
        case O_CONN:
            if ((rc = parse_num("connections", optarg, 1, false, MAX_CONNECTIONS, &v)) == 0) {
                if (v != floor(v))
                    rc = usage_error("option '--connections' takes a whole number, not '%s'", optarg);
                o->connections = (int)v;
            }
            break;
        case O_TIMEOUT:
            if ((rc = parse_num("timeout", optarg, 0, true, 600000, &v)) == 0)
                o->timeout_ms = (int)ceil(v);
            break;
        case O_JSON: o->json = true; break;
        case O_ECHO: o->echo = true; break;
        case O_FINDMAX: o->find_max = true; break;
        case O_PROGRESS: o->progress = true; break;
        case 'h':
        case O_HELP: usage(stdout); return -1;
        case ':': rc = usage_error("option '%s' needs a value", argv[optind - 1]); break;
        default: rc = usage_error("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (rc)
        return rc;
    if (optind < argc)
        return usage_error("unexpected argument '%s' (options only)", argv[optind]);
    if (!o->log)
        return usage_error("--log LOG is required (the traffic log to replay)");
    if (!o->endpoint && !o->echo)
        return usage_error("--endpoint EP is required (or --echo for a bare echo)");
    if (!o->rate_set && !o->find_max)
        return usage_error("--rate R is required");
    if (o->find_max && (o->p99_bound_us > 0) == (o->p99_vs_echo > 0))
        return usage_error("--find-max needs one of --p99-bound-us B and --p99-vs-echo K");
    if (!o->find_max && (o->p99_bound_us > 0 || o->p99_vs_echo > 0))
        return usage_error("--p99-bound-us and --p99-vs-echo only apply with --find-max");
    if (o->tag && (strlen(o->tag) == 0 || strlen(o->tag) > 32))
        return usage_error("--tag takes 1 to 32 characters");
    if (o->rate * (o->duration + o->warmup) > 1e9)
        return usage_error("rate x duration asks for more than 10^9 requests");
    if (o->rate * (o->duration + o->warmup) < 1)
        return usage_error("rate x duration is less than one request");
    return 0;
}

/* ---- the log and the prepared bodies -------------------------------------------- */

/* Finds the `id` string of a request map: its value's offset and size. */
static void find_id(const uint8_t *p, uint32_t len, uint32_t *at, uint32_t *size)
{
    *at = UINT32_MAX;
    *size = 0;
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, p, len);
    if (rk_mp_read(&m, &it) < 0 || it.type != RK_MP_MAP)
        return;
    for (uint32_t i = 0; i < it.n; i++) {
        rk_mp_item k, v;
        rk_mp peek = m;
        if (rk_mp_read(&peek, &k) < 0 || rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
            return;
        size_t vat = m.pos;
        peek = m;
        if (rk_mp_read(&peek, &v) < 0 || rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
            return;
        if (rk_mp_str_eq(&k, "id") && v.type == RK_MP_STR) {
            *at = (uint32_t)vat;
            *size = (uint32_t)(m.pos - vat);
            return;
        }
    }
}

static void reqs_free(reqs *q)
{
    free(q->body);
    free(q->len);
    free(q->id_at);
    free(q->id_size);
    rk_rlog_close(q->log);
}

/* Reads every request of the log. Returns 0, or 1 after reporting why not. */
static int reqs_load(const char *path, reqs *q)
{
    memset(q, 0, sizeof *q);
    int rc = rk_rlog_open(path, &q->log);
    if (rc == RK_ENOTFOUND)
        return failure("%s: no such file", path);
    if (rc < 0)
        return failure("%s: cannot read: %s", path, rc == RK_EIO ? strerror(errno) : rk_strerror(rc));
    size_t cap = 0;
    rk_rlog_rec rec;
    while ((rc = rk_rlog_next(q->log, &rec)) == 1) {
        if (rec.req_len > RK_RLOG_REC_MAX)
            continue;
        if (q->n == cap) {
            cap = cap ? cap * 2 : 4096;
            const uint8_t **b = realloc(q->body, cap * sizeof *b);
            if (b)
                q->body = b;
            uint32_t *l = realloc(q->len, cap * sizeof *l);
            if (l)
                q->len = l;
            uint32_t *a = realloc(q->id_at, cap * sizeof *a);
            if (a)
                q->id_at = a;
            uint32_t *s = realloc(q->id_size, cap * sizeof *s);
            if (s)
                q->id_size = s;
            if (!b || !l || !a || !s) {
                reqs_free(q);
                return failure("out of memory reading %s", path);
            }
        }
        q->body[q->n] = rec.req;
        q->len[q->n] = (uint32_t)rec.req_len;
        find_id(rec.req, (uint32_t)rec.req_len, &q->id_at[q->n], &q->id_size[q->n]);
        q->n++;
    }
    if (rc < 0) {
        failure("%s: %s", path, rk_rlog_error(q->log));
        reqs_free(q);
        return 1;
    }
    uint64_t torn_at;
    if (rk_rlog_torn(q->log, &torn_at))
        fprintf(stderr, "%s: %s: torn record at byte %llu (ignored)\n", prog, path,
                (unsigned long long)torn_at);
    if (q->n == 0) {
        reqs_free(q);
        return failure("%s holds no requests", path);
    }
    return 0;
}

static void batch_free(batch *b)
{
    free(b->bytes);
    free(b->off);
    memset(b, 0, sizeof *b);
}

/* Prepares the bodies of global requests [first, first + n): log request
 * i % nlog, its id suffixed for the loop it is in. Returns 0 or RK_ENOMEM. */
static int batch_make(batch *b, const reqs *q, const opts *o, uint64_t first, size_t n)
{
    size_t suffix_max = 2 + 20 + (o->tag ? strlen(o->tag) + 1 : 0);
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += q->len[(first + k) % q->n] + suffix_max + 5;
    b->bytes = malloc(total ? total : 1);
    b->off = malloc((n + 1) * sizeof *b->off);
    b->n = n;
    if (!b->bytes || !b->off) {
        batch_free(b);
        return RK_ENOMEM;
    }
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (size_t)((first + k) % q->n);
        uint64_t loop = (first + k) / q->n;
        const uint8_t *src = q->body[i];
        b->off[k] = at;
        if (q->id_at[i] == UINT32_MAX || (loop == 0 && !o->tag)) {
            memcpy(b->bytes + at, src, q->len[i]);
            at += q->len[i];
            continue;
        }
        /* The id value's payload: skip its str header (fixstr, str8/16/32). */
        rk_mp m;
        rk_mp_item id;
        rk_mp_init(&m, src + q->id_at[i], q->id_size[i]);
        rk_mp_read(&m, &id); /* read once by find_id already: cannot fail */
        char suffix[80];
        int ns = 0;
        if (o->tag)
            ns += snprintf(suffix + ns, sizeof suffix - (size_t)ns, "~%s", o->tag);
        if (loop)
            ns += snprintf(suffix + ns, sizeof suffix - (size_t)ns, "~%llu",
                           (unsigned long long)loop);
        memcpy(b->bytes + at, src, q->id_at[i]);
        at += q->id_at[i];
        rk_outbuf hdr;
        rk_outbuf_init(&hdr, b->bytes + at, 5);
        msgpack_pack_str(&hdr.pk, id.raw.len + (size_t)ns);
        at += hdr.len;
        memcpy(b->bytes + at, id.raw.p, id.raw.len);
        at += id.raw.len;
        memcpy(b->bytes + at, suffix, (size_t)ns);
        at += (size_t)ns;
        size_t rest = q->id_at[i] + q->id_size[i];
        memcpy(b->bytes + at, src + rest, q->len[i] - rest);
        at += q->len[i] - rest;
    }
    b->off[n] = at;
    return 0;
}

/* ---- the echo ------------------------------------------------------------------- */

/* Pings endpoint until a ping comes back within max_rtt_ns, for at most
 * wait_ms. Returns 0 when one did; RK_ETIMEOUT; RK_EINVAL when endpoint is
 * not a ZeroMQ endpoint; RK_EIO when the echo child died. Each ping carries
 * its number in an envelope frame, so a late answer to an earlier ping is
 * never taken for the current one. */
static int ping_until(void *ctx, const char *endpoint, pid_t child, int64_t max_rtt_ns,
                      int wait_ms)
{
    static const uint8_t ping[] = {0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    int64_t deadline = rk_clock_ns() + (int64_t)wait_ms * 1000000;
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 100;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(s, endpoint) != 0) {
        zmq_close(s);
        return RK_EINVAL;
    }
    int rc = RK_ETIMEOUT;
    for (uint32_t n = 0; rc == RK_ETIMEOUT && rk_clock_ns() < deadline; n++) {
        int64_t sent = rk_clock_ns();
        zmq_send(s, &n, sizeof n, ZMQ_SNDMORE);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, ping, sizeof ping, 0);
        uint32_t got;
        int more = 1;
        size_t ml = sizeof more;
        while (zmq_recv(s, &got, sizeof got, 0) >= 0) { /* answers up to this ping's */
            bool mine = got == n;
            char buf[256];
            for (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml); more;
                 zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml))
                zmq_recv(s, buf, sizeof buf, 0);
            if (mine) {
                if (rk_clock_ns() - sent <= max_rtt_ns)
                    rc = 0;
                break;
            }
        }
        int status;
        if (child > 0 && waitpid(child, &status, WNOHANG) == child)
            rc = RK_EIO;
    }
    zmq_close(s);
    return rc;
}

/* Waits until endpoint answers a first ping (riskd: {"ok": true}; the echo:
 * the ping itself). Returns 0, or 1 after reporting. */
static int wait_ready(void *ctx, const char *endpoint, pid_t child)
{
    int rc = ping_until(ctx, endpoint, child, INT64_MAX, PING_WAIT_MS);
    if (rc == RK_EINVAL)
        return failure("cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
    if (rc == RK_EIO)
        return failure("the echo server on %s exited before answering", endpoint);
    if (rc < 0)
        return failure("no reply from %s to a ping within %d ms (is riskd running?)", endpoint,
                       PING_WAIT_MS);
    return 0;
}

/* ---- one run ----------------------------------------------------------------------- */

static int64_t intended(const run *r, size_t i) { return r->t0 + (int64_t)((double)i * r->period_ns); }

/* Sorts out one reply body: its decision, or its error code. */
static void classify(run *r, const uint8_t *p, size_t n)
{
    result *res = r->res;
    rk_mp m;
    rk_mp_item it;
    rk_mp_init(&m, p, n);
    int dec = D_NONE;
    if (rk_mp_read(&m, &it) == 0 && it.type == RK_MP_MAP) {
        for (uint32_t i = 0; i < it.n; i++) {
            rk_mp_item k, v;
            if (rk_mp_read(&m, &k) < 0)
                break;
            rk_mp val = m;
            if (rk_mp_read(&val, &v) < 0)
                break;
            if (rk_mp_str_eq(&k, "decision") && v.type == RK_MP_STR) {
                for (int d = 0; d < D_NONE; d++)
                    if (rk_mp_str_eq(&v, decision_names[d]))
                        dec = d;
            } else if (rk_mp_str_eq(&k, "degraded") && v.type == RK_MP_BOOL && v.b) {
                res->degraded++;
            } else if (rk_mp_str_eq(&k, "error") && v.type == RK_MP_MAP) {
                rk_mp_item code;
                int e = 0;
                if (rk_mp_map_find(m.buf + m.pos, m.len - m.pos, "code", &code, NULL) == 0)
                    for (int w = 1; w < RK_WERR__COUNT; w++)
                        if (rk_mp_str_eq(&code, rk_wire_err_name((rk_wire_err)w)))
                            e = w;
                res->err[e]++;
                return;
            }
            if (rk_mp_skip(&m, RK_MP_DEPTH_MAX) < 0)
                break;
        }
    }
    res->dec[dec]++;
}

/* Reads up to RECV_BATCH replies from socket s. Returns whether it stopped
 * because the socket had no more. */
static bool drain(run *r, void *s)
{
    for (int k = 0; k < RECV_BATCH; k++) {
        uint8_t tag[8];
        int n = zmq_recv(s, tag, sizeof tag, ZMQ_DONTWAIT);
        if (n < 0)
            return true;
        int64_t now = rk_clock_ns();
        int more = 0, body = -1;
        size_t ml = sizeof more;
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
        while (more) { /* the delimiter, then the body (the last frame) */
            body = zmq_recv(s, r->reply, sizeof r->reply, 0);
            zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
        }
        uint32_t step, idx;
        memcpy(&step, tag, 4);
        memcpy(&idx, tag + 4, 4);
        if (n != 8 || step != r->step || idx >= r->b->n || body < 0) {
            r->res->stale++;
            continue;
        }
        if (idx < r->nwarm)
            continue;
        size_t m = idx - r->nwarm;
        if (r->lat[m] >= 0) { /* answered twice: cannot happen with riskd */
            r->res->stale++;
            continue;
        }
        r->lat[m] = now - intended(r, idx);
        if (r->lat[m] > r->win_max)
            r->win_max = r->lat[m];
        r->res->answered++;
        r->last_reply = now;
        classify(r, r->reply, (size_t)body < sizeof r->reply ? (size_t)body : 0);
    }
    return false;
}

static void progress_line(const run *r, double elapsed_s, uint64_t sent_total,
                          uint64_t sent_last)
{
    fprintf(stderr, "%s: %5.1f s: sent %llu (%.0f/s), answered %llu, in flight %llu, max latency "
                    "this second %.1f ms\n",
            prog, elapsed_s, (unsigned long long)sent_total, (double)sent_last,
            (unsigned long long)r->res->answered,
            (unsigned long long)(r->res->sent - r->res->answered), (double)r->win_max / 1e6);
}

/* Sends the batch on schedule and collects the replies. Fills r->res. */
static void run_loop(run *r)
{
    const opts *o = r->o;
    size_t total = r->b->n, next = 0;
    int nsock = o->connections;
    int64_t end = intended(r, total - 1) + (int64_t)o->timeout_ms * 1000000;
    bool show = o->progress || o->duration + o->warmup > 5;
    int64_t next_progress = r->t0 + 1000000000;
    uint64_t sent_at_progress = 0;
    for (;;) {
        int64_t now = rk_clock_ns();
        while (next < total && intended(r, next) <= now) {
            void *s = r->socks[next % (size_t)nsock];
            uint8_t tag[8];
            uint32_t idx = (uint32_t)next;
            memcpy(tag, &r->step, 4);
            memcpy(tag + 4, &idx, 4);
            const uint8_t *body = r->b->bytes + r->b->off[next];
            size_t len = r->b->off[next + 1] - r->b->off[next];
            int64_t at = rk_clock_ns();
            if (zmq_send(s, tag, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
                break; /* unbounded HWM: only a dying context; retried next turn */
            zmq_send(s, "", 0, ZMQ_SNDMORE);
            zmq_send(s, body, len, 0);
            if (next >= r->nwarm) {
                r->lag[next - r->nwarm] = at - intended(r, next);
                r->res->sent++;
                r->last_send = at;
            }
            next++;
        }
        bool idle = true;
        for (int k = 0; k < nsock; k++)
            idle &= drain(r, r->socks[k]);
        now = rk_clock_ns();
        if (show && now >= next_progress) {
            uint64_t sent_total = next > r->nwarm ? next - r->nwarm : 0;
            progress_line(r, (double)(now - r->t0) / 1e9, sent_total, sent_total - sent_at_progress);
            sent_at_progress = sent_total;
            r->win_max = 0;
            next_progress += 1000000000;
        }
        if (next >= total && (r->res->answered == r->res->sent || now >= end))
            break;
        if (!idle)
            continue;
        int64_t wake = next < total ? intended(r, next) : end;
        if (show && wake > next_progress)
            wake = next_progress;
        if (wake > now) {
            struct timespec ts = {.tv_sec = (wake - now) / 1000000000,
                                  .tv_nsec = (wake - now) % 1000000000};
            ppoll(r->pfd, (nfds_t)nsock, &ts, NULL);
        }
    }
}

/* Fills res from the run's arrays. */
static void summarise(run *r, size_t n)
{
    result *res = r->res;
    res->timeouts = res->sent - res->answered;
    int64_t *ok = malloc((n ? n : 1) * sizeof *ok);
    size_t k = 0;
    for (size_t i = 0; i < n && ok; i++)
        if (r->lat[i] >= 0)
            ok[k++] = r->lat[i];
    if (ok)
        res->lat = bench_percentiles(ok, k);
    free(ok);
    res->lag = bench_percentiles(r->lag, (size_t)res->sent);
    double start = (double)intended(r, r->nwarm);
    double send_s = ((double)r->last_send - start) / 1e9 + r->period_ns / 1e9;
    if (send_s < r->o->duration)
        send_s = r->o->duration;
    res->achieved = res->sent ? (double)res->sent / send_s : 0;
    double reply_s = ((double)r->last_reply - start) / 1e9;
    res->answered_rate = res->answered && reply_s > 0 ? (double)res->answered / reply_s : 0;
}

/* One measured run at rate, continuing the global request sequence at *seq.
 * Returns 0, or 1 after reporting (out of memory). */
static int measure(const opts *o, const reqs *q, void **socks, struct pollfd *pfd, double rate,
                   uint32_t step, uint64_t *seq, result *res)
{
    size_t nwarm = (size_t)llround(rate * o->warmup);
    size_t n = (size_t)ceil(rate * o->duration);
    if (n == 0)
        n = 1;
    batch b = {0};
    if (batch_make(&b, q, o, *seq, nwarm + n) < 0)
        return failure("out of memory preparing %zu requests", nwarm + n);
    *seq += nwarm + n;
    run *r = calloc(1, sizeof *r);
    int64_t *lat = malloc(n * sizeof *lat), *lag = calloc(n, sizeof *lag);
    if (!r || !lat || !lag) {
        free(r);
        free(lat);
        free(lag);
        batch_free(&b);
        return failure("out of memory preparing %zu requests", nwarm + n);
    }
    for (size_t i = 0; i < n; i++)
        lat[i] = -1;
    *res = (result){.rate = rate};
    *r = (run){.o = o, .socks = socks, .pfd = pfd, .b = &b, .nwarm = nwarm, .step = step,
               .period_ns = 1e9 / rate, .lat = lat, .lag = lag, .res = res};
    r->t0 = rk_clock_ns() + SETTLE_NS;
    r->last_reply = r->last_send = r->t0;
    run_loop(r);
    summarise(r, n);
    free(lat);
    free(lag);
    free(r);
    batch_free(&b);
    return 0;
}

/* ---- reports ----------------------------------------------------------------------- */

static uint64_t errors_of(const result *s)
{
    uint64_t e = s->timeouts;
    for (int w = 0; w < RK_WERR__COUNT; w++)
        e += s->err[w];
    return e;
}

/* Lost: never answered, or refused as overloaded. */
static uint64_t lost_of(const result *s) { return s->timeouts + s->err[RK_WERR_OVERLOADED]; }

static void print_json_result(const result *s)
{
    printf("\"rate\": %.1f, \"achieved\": %.1f, \"answered_rate\": %.1f, \"sent\": %llu, "
           "\"answered\": %llu, \"errors\": %llu, \"lost\": %llu, \"error_codes\": {",
           s->rate, s->achieved, s->answered_rate, (unsigned long long)s->sent,
           (unsigned long long)s->answered, (unsigned long long)errors_of(s),
           (unsigned long long)lost_of(s));
    for (int w = 1; w < RK_WERR__COUNT; w++)
        printf("\"%s\": %llu, ", rk_wire_err_name((rk_wire_err)w), (unsigned long long)s->err[w]);
    printf("\"other\": %llu, \"timeout\": %llu}, \"decisions\": {",
           (unsigned long long)s->err[0], (unsigned long long)s->timeouts);
    for (int d = 0; d < D__COUNT; d++)
        printf("%s\"%s\": %llu", d ? ", " : "", decision_names[d], (unsigned long long)s->dec[d]);
    printf("}, \"degraded\": %llu, \"stale\": %llu, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, \"send_lag_p99_us\": %.1f, "
           "\"send_lag_max_us\": %.1f",
           (unsigned long long)s->degraded, (unsigned long long)s->stale, s->lat.p50, s->lat.p90,
           s->lat.p99, s->lat.p999, s->lat.max, s->lag.p99, s->lag.max);
}

static void print_text_result(const result *s, double duration)
{
    printf("rate %.0f/s for %.1f s: sent %llu, achieved %.1f/s, answered %llu (%.1f/s)\n",
           s->rate, duration, (unsigned long long)s->sent, s->achieved,
           (unsigned long long)s->answered, s->answered_rate);
    printf("errors %llu (lost %llu):", (unsigned long long)errors_of(s),
           (unsigned long long)lost_of(s));
    for (int w = 1; w < RK_WERR__COUNT; w++)
        if (s->err[w])
            printf(" %s %llu", rk_wire_err_name((rk_wire_err)w), (unsigned long long)s->err[w]);
    if (s->err[0])
        printf(" other %llu", (unsigned long long)s->err[0]);
    printf(" timeout %llu\n", (unsigned long long)s->timeouts);
    printf("decisions:");
    for (int d = 0; d < D__COUNT; d++)
        printf(" %s %llu", decision_names[d], (unsigned long long)s->dec[d]);
    if (s->degraded)
        printf(" (degraded %llu)", (unsigned long long)s->degraded);
    printf("\nlatency us from intended send time: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
           "max %.1f\n",
           s->lat.p50, s->lat.p90, s->lat.p99, s->lat.p999, s->lat.max);
    printf("sender lateness us: p99 %.1f  max %.1f\n", s->lag.p99, s->lag.max);
}

/* s as a JSON string. */
static void put_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_header(const opts *o, const char *endpoint, const reqs *q)
{
    if (o->json) {
        printf("{\"endpoint\": ");
        put_json_str(endpoint);
        printf(", \"echo\": %s, \"log\": ", o->echo ? "true" : "false");
        put_json_str(o->log);
        printf(", \"log_requests\": %zu, \"connections\": %d, \"duration_s\": %.3f, "
               "\"warmup_s\": %.3f, ",
               q->n, o->connections, o->duration, o->warmup);
    } else {
        printf("riskbench: %s%s, log %s (%zu requests), %d connection%s\n", endpoint,
               o->echo ? " (bare ZeroMQ echo)" : "", o->log, q->n, o->connections,
               o->connections == 1 ? "" : "s");
    }
}

/* ---- find-max ---------------------------------------------------------------------- */

static bool step_passes(const result *s, double bound_us)
{
    return lost_of(s) == 0 && s->lat.p99 <= bound_us && s->achieved >= 0.95 * s->rate;
}

/* The DEALER sockets of one endpoint and their ZMQ_FDs. */
typedef struct conns {
    void *socks[MAX_CONNECTIONS];
    struct pollfd pfd[MAX_CONNECTIONS];
    int n;
} conns;

/* find-max with --p99-vs-echo: each step's echo tags its requests apart. */
#define ECHO_STEP 0x10000u

static int find_max(const opts *o, const reqs *q, void *ctx, const char *endpoint, conns *c,
                    conns *echo, uint64_t *seq)
{
    double lo = 0, hi = 0, rate = o->rate, best_bound = o->p99_bound_us;
    result best = {0}, s, e;
    for (uint32_t step = 1; step <= MAX_STEPS; step++) {
        /* A failed step can leave riskd a backlog: let it drain first, so
         * that each step starts from an idle server. */
        if (step > 1 && ping_until(ctx, endpoint, 0, SETTLE_RTT_NS, SETTLE_WAIT_MS) < 0 && !o->json)
            printf("(riskd still slow to answer a ping after %d ms; going on)\n", SETTLE_WAIT_MS);
        /* the transport floor at this rate, measured just before */
        double bound = o->p99_bound_us;
        if (echo) {
            if (measure(o, q, echo->socks, echo->pfd, rate, ECHO_STEP | step, seq, &e))
                return 1;
            bound = o->p99_vs_echo * e.lat.p99;
        }
        if (measure(o, q, c->socks, c->pfd, rate, step, seq, &s))
            return 1;
        bool ok = step_passes(&s, bound);
        if (o->json) {
            printf("%s{", step > 1 ? ", " : "");
            print_json_result(&s);
            if (echo)
                printf(", \"echo_p99_us\": %.1f, \"echo_lost\": %llu", e.lat.p99,
                       (unsigned long long)lost_of(&e));
            printf(", \"p99_bound_us\": %.1f, \"pass\": %s}", bound, ok ? "true" : "false");
        } else {
            printf("step %u: rate %.0f/s: achieved %.0f/s, lost %llu, p50 %.1f us, p99 %.1f us "
                   "(bound %.1f us) -> %s\n",
                   step, rate, s.achieved, (unsigned long long)lost_of(&s), s.lat.p50, s.lat.p99,
                   bound, ok ? "pass" : "fail");
        }
        fflush(stdout);
        if (ok) {
            lo = rate;
            best = s;
            best_bound = bound;
        } else {
            hi = rate;
        }
        if (hi == 0)
            rate *= 2;
        else if (lo == 0 && rate / 2 >= 1)
            rate /= 2;
        else if (lo == 0 || (hi - lo) / lo <= BISECT_PRECISION)
            break;
        else
            rate = (lo + hi) / 2;
        if (rate > MAX_RATE)
            break;
    }
    if (o->json) {
        printf("], \"p99_bound_us\": %.1f, \"p99_vs_echo\": %g, \"max_rate\": %.1f",
               best_bound, o->p99_vs_echo, lo);
        if (lo > 0) {
            printf(", \"at_max\": {");
            print_json_result(&best);
            printf("}");
        }
        printf("}\n");
    } else if (lo > 0) {
        printf("max rate: %.0f/s with nothing lost and p99 %.1f us (bound %.1f us)\n", lo,
               best.lat.p99, best_bound);
    } else {
        printf("max rate: none found (every step lost requests or exceeded its p99 bound)\n");
    }
    return 0;
}

/* Connects o->connections DEALERs to endpoint. 0, or 1 after reporting. */
static int connect_all(void *ctx, const opts *o, const char *endpoint, conns *c)
{
    c->n = 0;
    for (int i = 0; i < o->connections; i++) {
        void *s = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero); /* never refuse a send: lateness is measured */
        zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
        if (zmq_connect(s, endpoint) != 0) {
            int rc = failure("cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
            zmq_close(s);
            return rc;
        }
        c->socks[c->n] = s;
        size_t fl = sizeof c->pfd[c->n].fd;
        zmq_getsockopt(s, ZMQ_FD, &c->pfd[c->n].fd, &fl);
        c->pfd[c->n].events = POLLIN;
        c->n++;
    }
    return 0;
}

static void close_all(conns *c)
{
    for (int i = 0; i < c->n; i++)
        zmq_close(c->socks[i]);
    c->n = 0;
}

/* Forks a bare echo server on endpoint (before any ZeroMQ context exists in
 * this process). Its pid, or -1 after reporting. */
static pid_t start_echo(const char *endpoint)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        failure("cannot fork the echo server: %s", strerror(errno));
    else if (pid == 0)
        bench_echo_serve(prog, endpoint);
    return pid;
}

static void stop_echo(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    reqs q;
    if (reqs_load(o.log, &q))
        return 1;

    char endpoint[128], echo_ep[128] = "";
    snprintf(endpoint, sizeof endpoint, "%s", o.endpoint ? o.endpoint : "");
    if (!o.endpoint)
        snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", bench_free_port());
    pid_t echo = 0, side_echo = 0; /* the target itself (--echo), or beside it (--p99-vs-echo) */
    if (o.echo && (echo = start_echo(endpoint)) < 0) {
        reqs_free(&q);
        return 1;
    }
    if (o.p99_vs_echo > 0) {
        snprintf(echo_ep, sizeof echo_ep, "tcp://127.0.0.1:%d", bench_free_port());
        if ((side_echo = start_echo(echo_ep)) < 0) {
            reqs_free(&q);
            return 1;
        }
    }
    prctl(PR_SET_TIMERSLACK, 1UL); /* ppoll wakes on time, not up to 50 us late */

    void *ctx = zmq_ctx_new();
    conns c = {.n = 0}, ec = {.n = 0};
    rc = wait_ready(ctx, endpoint, echo);
    if (rc == 0)
        rc = connect_all(ctx, &o, endpoint, &c);
    if (rc == 0 && side_echo > 0 && (rc = wait_ready(ctx, echo_ep, side_echo)) == 0)
        rc = connect_all(ctx, &o, echo_ep, &ec);
    uint64_t seq = 0;
    if (rc == 0) {
        print_header(&o, endpoint, &q);
        fflush(stdout);
        if (o.find_max) {
            if (o.json)
                printf("\"find_max\": true, \"steps\": [");
            rc = find_max(&o, &q, ctx, endpoint, &c, side_echo > 0 ? &ec : NULL, &seq);
        } else {
            result s;
            rc = measure(&o, &q, c.socks, c.pfd, o.rate, 1, &seq, &s);
            if (rc == 0 && o.json) {
                print_json_result(&s);
                printf("}\n");
            } else if (rc == 0) {
                print_text_result(&s, o.duration);
            }
        }
    }
    close_all(&c);
    close_all(&ec);
    zmq_ctx_term(ctx);
    stop_echo(echo);
    stop_echo(side_echo);
    reqs_free(&q);
    return rc;
}
