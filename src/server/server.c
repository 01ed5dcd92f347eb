/* The ZeroMQ server: who reads which socket, and who scores.
 *
 * Threads (`workers` = W scoring threads):
 *   front     owns the gateway ROUTER. It reads every request itself and,
 *             when no further request is waiting behind it, scores it inline
 *             and replies: a lone request crosses no thread boundary beyond
 *             ZeroMQ's own I/O thread, exactly like a bare ROUTER echo, so
 *             riskd's added latency is the pipeline and nothing else. When
 *             requests queue up (the front reads one ahead: a second request
 *             is already there), it hands each but the last to the
 *             least-loaded helper over an inproc PAIR, moving the frames
 *             without copying.
 *   helpers   W-1 threads, each with its own rk_worker, scoring what the front
 *             hands them and pushing [helper index, envelope..., reply] back
 *             to the front's inproc PULL; the front forwards it (only it may
 *             touch the ROUTER).
 *   main      the caller of rk_server_run: serves the admin ROUTER (reload is
 *             slow and must not stall scoring) and reads the signalfd. SIGHUP
 *             reloads here, off the hot path; SIGINT/SIGTERM set the front
 *             draining through an eventfd.
 * Why not a classic broker (front forwards everything to workers)? It adds two
 * thread hand-offs per request — measured on the 2-core VM at about +50% p50
 * over a bare echo in REQ lockstep, far outside the budget of DESIGN.md
 * section 8 (see docs/config.md, "Threading").
 *
 * Admission: `max_inflight` bounds the requests handed to helpers and not yet
 * answered; beyond it the front answers `overloaded` at once. A request scored
 * inline is answered before the next is read, so it never queues.
 *
 * Strict durability: a scoring thread waits for the fsync that makes its
 * commit durable before it replies, and commits of threads waiting at the
 * same time share one fsync (group commit). So with two helpers or more the
 * front hands out every request (it must not sit in an fsync while requests
 * queue behind it), and the number of helpers bounds how many requests can
 * share an fsync: strict mode wants many workers, most of them asleep on a
 * condition variable (32 unless configured; docs/config.md, "Threading").
 *
 * Envelopes: the envelope is every frame up to and including the first empty
 * one (REQ, or a DEALER that sends the delimiter); without an empty frame it is
 * the identity frame alone. Exactly one body frame must follow. Envelope
 * frames are sent back by moving the received zmq_msg_t, so they are never
 * copied; the reply body is copied once out of the worker's buffer (the buffer
 * is reused by the next request before ZeroMQ's I/O thread would send it).
 *
 * Shutdown: the front keeps reading until the gateway socket has been quiet
 * for QUIET_MS (what clients sent before the signal arrives within that), at
 * most DRAIN_MAX_MS, waits for every request handed to helpers, then closes
 * the ROUTER with a linger so the replies are flushed before exit. */
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <zmq.h>

#include "engine/pipeline.h"
#include "engine/stats.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"

#define MAX_FRAMES 16          /* envelope frames kept; more make the request bad */
#define BATCH 64               /* requests read before the front looks at helper replies */
#define QUIET_MS 20            /* drain: the socket is done when quiet this long */
#define DRAIN_MAX_MS 5000      /* drain: stop reading new requests after this */
#define FLUSH_LINGER_MS 5000   /* close: time ZeroMQ gets to deliver the last replies */
#define ROUTER_RCVHWM 10000    /* per client connection: requests queued before TCP backpressure */
#define ROUTER_SNDHWM 100000   /* per client: replies queued; beyond, ROUTER would drop */

/* One received multipart message, split into envelope and body. */
typedef struct frames {
    zmq_msg_t f[MAX_FRAMES]; /* the first n frames received */
    zmq_msg_t spill;         /* receives (and discards) frames beyond MAX_FRAMES */
    int n;                   /* frames held in f */
    int dropped;             /* frames discarded beyond MAX_FRAMES */
    int env;                 /* envelope frames at the front of f */
    int nbody;               /* body frames after the envelope, dropped ones included */
} frames;

typedef struct helper {
    int index;             /* sent back with each reply so the front can count its queue */
    void *work;            /* PAIR, connected to the front's inproc://riskd-work-<index> */
    void *done;            /* PUSH, connected to the front's inproc://riskd-done */
    rk_worker *w;          /* scratch */
    frames m;              /* the request being served */
    pthread_t thread;      /* running helper_main */
    bool started;          /* thread was created */
} helper;

struct rk_server {
    rk_engine *engine;            /* not owned */
    rk_stats *stats;              /* the engine's */
    void *ctx;                    /* ZeroMQ context, owned */
    char endpoint[RK_CONFIG_PATH_MAX];       /* gateway endpoint, for logs */
    char admin_endpoint[RK_CONFIG_PATH_MAX]; /* admin endpoint, for logs */
    int workers;                  /* scoring threads: the front and the helpers */
    int max_inflight;             /* bound on requests queued at helpers */
    bool hand_out_all;            /* strict durability: the front never scores inline */
    sigset_t sigs;                /* INT, TERM, HUP: blocked, read via sigfd */
    sigset_t oldmask;             /* the caller's mask, restored by rk_server_free */
    int sigfd;                    /* signalfd for sigs */
    int stopfd;                   /* eventfd: main -> front, "drain and stop" */

    /* front thread */
    void *router;                 /* gateway ROUTER */
    void *pull;                   /* inproc PULL: helper replies */
    void **work;                  /* inproc PAIR per helper */
    int *queued;                  /* requests handed to each helper, not yet back */
    int64_t inflight;             /* sum of queued */
    rk_worker *front_w;           /* inline scoring scratch */
    frames req[2];                /* request being served, and the one read ahead */
    frames rep;                   /* helper reply being forwarded */
    bool draining;                /* a stop signal arrived */
    uint64_t drained;             /* replies sent since the stop signal */
    pthread_t front_thread;       /* running front_main */
    bool front_started;           /* thread was created */

    int nhelpers;                 /* helper threads running (workers - 1 unless one failed to start) */
    int nhelpers_alloc;           /* helper entries set up: workers - 1 */
    helper *helpers;              /* nhelpers_alloc entries */

    /* admin (main thread) */
    void *admin;                  /* admin ROUTER */
    rk_worker *admin_w;           /* admin scratch */
    frames adm;                   /* admin request being served */
};

/* ---- frames ---------------------------------------------------------------- */

static void frames_close(frames *m)
{
    for (int i = 0; i < m->n; i++)
        zmq_msg_close(&m->f[i]);
    m->n = 0;
}

/* The envelope ends at the first empty frame; with none, it is the identity. */
static void frames_split(frames *m)
{
    m->env = 1;
    for (int i = 0; i < m->n; i++)
        if (zmq_msg_size(&m->f[i]) == 0) {
            m->env = i + 1;
            break;
        }
    if (m->env > m->n)
        m->env = m->n;
    m->nbody = m->n - m->env + m->dropped;
}

/* Receives one whole multipart message. Returns 0, or -1 with errno (EAGAIN
 * under ZMQ_DONTWAIT, ETERM at shutdown) and nothing held. */
static int frames_recv(void *sock, frames *m, int flags)
{
    m->n = m->dropped = 0;
    for (;;) {
        zmq_msg_t *f = m->n < MAX_FRAMES ? &m->f[m->n] : &m->spill;
        zmq_msg_init(f);
        /* Only the first frame may be missing: the rest of a multipart message
         * arrives atomically with it. */
        if (zmq_msg_recv(f, sock, m->n + m->dropped == 0 ? flags : 0) < 0) {
            int err = errno;
            zmq_msg_close(f);
            frames_close(m);
            errno = err;
            return -1;
        }
        bool more = zmq_msg_more(f);
        if (f == &m->spill) {
            m->dropped++;
            zmq_msg_close(f);
        } else {
            m->n++;
        }
        if (!more)
            break;
    }
    frames_split(m);
    return 0;
}

/* Sends frames [from, to) of m, the last with `last_flags`, moving them.
 * Closes every frame of m afterwards. */
static void frames_send(void *sock, frames *m, int from, int to, int last_flags)
{
    for (int i = from; i < to; i++)
        if (zmq_msg_send(&m->f[i], sock, i + 1 < to ? ZMQ_SNDMORE : last_flags) < 0)
            break; /* the peer is gone; ROUTER drops silently, nothing to do */
    frames_close(m);
}

/* Envelope of m, then the reply body (copied); closes m. */
static void send_reply(void *sock, frames *m, const uint8_t *reply, size_t len)
{
    bool ok = true;
    for (int i = 0; i < m->env && ok; i++)
        ok = zmq_msg_send(&m->f[i], sock, ZMQ_SNDMORE) >= 0;
    if (ok)
        zmq_send(sock, reply, len, 0);
    frames_close(m);
}

/* Runs the request in m through w (or refuses a malformed envelope) and
 * replies on sock. */
static void serve(rk_worker *w, void *sock, frames *m, bool admin)
{
    const uint8_t *reply;
    size_t n;
    if (m->nbody == 1) {
        zmq_msg_t *body = &m->f[m->env];
        n = rk_pipeline_run(w, zmq_msg_data(body), zmq_msg_size(body), admin, &reply);
    } else {
        char text[96];
        if (m->nbody == 0)
            snprintf(text, sizeof text, "empty message: expected one msgpack body frame");
        else
            snprintf(text, sizeof text, "a request is one body frame, got %d", m->nbody);
        zmq_msg_t *first = m->env < m->n ? &m->f[m->env] : NULL;
        n = rk_pipeline_reject(w, first ? zmq_msg_data(first) : NULL,
                               first ? zmq_msg_size(first) : 0, RK_WERR_BAD_REQUEST, text, &reply);
    }
    send_reply(sock, m, reply, n);
}

/* ---- helpers ----------------------------------------------------------------- */

static void *helper_main(void *arg)
{
    helper *h = arg;
    uint8_t idx = (uint8_t)h->index;
    for (;;) {
        if (frames_recv(h->work, &h->m, 0) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM */
        }
        if (h->m.n == 1) { /* the front's stop message: one empty frame */
            frames_close(&h->m);
            break;
        }
        /* The front only hands over well-formed envelopes with one body. */
        const uint8_t *reply;
        zmq_msg_t *body = &h->m.f[h->m.n - 1];
        size_t n = rk_pipeline_run(h->w, zmq_msg_data(body), zmq_msg_size(body), false, &reply);
        zmq_send(h->done, &idx, 1, ZMQ_SNDMORE);
        for (int i = 0; i < h->m.n - 1; i++)
            zmq_msg_send(&h->m.f[i], h->done, ZMQ_SNDMORE);
        zmq_send(h->done, reply, n, 0);
        frames_close(&h->m);
    }
    return NULL;
}

/* One empty frame to each helper: it stops after the work queued before it. */
static void send_stops(rk_server *s)
{
    for (int i = 0; i < s->nhelpers; i++)
        zmq_send(s->work[i], "", 0, 0);
}

static void join_helpers(rk_server *s)
{
    for (int i = 0; i < s->nhelpers; i++)
        if (s->helpers[i].started) {
            pthread_join(s->helpers[i].thread, NULL);
            s->helpers[i].started = false;
        }
}

/* Only when the front thread cannot run: the main thread still owns the PAIRs. */
static void stop_helpers(rk_server *s)
{
    send_stops(s);
    join_helpers(s);
}

/* ---- front ------------------------------------------------------------------- */

static void count_answer(rk_server *s)
{
    rk_stats_add_inflight(s->stats, -1);
    if (s->draining)
        s->drained++;
}

static int least_loaded(const rk_server *s)
{
    int best = 0;
    for (int i = 1; i < s->nhelpers; i++)
        if (s->queued[i] < s->queued[best])
            best = i;
    return best;
}

/* Hands the request in m to the least-loaded helper, or answers overloaded
 * when max_inflight requests are already handed out. */
static void dispatch(rk_server *s, frames *m)
{
    if (s->inflight >= s->max_inflight) {
        const uint8_t *reply;
        zmq_msg_t *body = &m->f[m->env];
        size_t n = rk_pipeline_reject(s->front_w, zmq_msg_data(body), zmq_msg_size(body),
                                      RK_WERR_OVERLOADED, "too many requests in flight; retry later",
                                      &reply);
        send_reply(s->router, m, reply, n);
        count_answer(s);
        return;
    }
    int h = least_loaded(s);
    /* inproc with no HWM does not refuse a message; should it ever, the
     * request is scored here rather than lost (and shutdown never waits for a
     * reply that cannot come). A multipart message goes whole or not at all. */
    if (zmq_msg_send(&m->f[0], s->work[h], m->n > 1 ? ZMQ_SNDMORE | ZMQ_DONTWAIT : ZMQ_DONTWAIT) <
        0) {
        serve(s->front_w, s->router, m, false);
        count_answer(s);
        return;
    }
    s->queued[h]++;
    s->inflight++;
    frames_send(s->work[h], m, 1, m->n, 0);
}

/* Reads what the gateway socket holds, up to BATCH requests. Read-ahead: the
 * next request is read before the current one is scored; when there is none
 * (the lockstep case), the current one is scored inline, and when there is,
 * the current one goes to a helper. The probe is the non-blocking read that
 * would end the batch anyway, so a lone request pays nothing for it (a
 * ZMQ_EVENTS query per request measurably did). */
static void read_requests(rk_server *s)
{
    frames *cur = &s->req[0], *next = &s->req[1];
    if (frames_recv(s->router, cur, ZMQ_DONTWAIT) < 0)
        return;
    for (int i = 1;; i++) {
        rk_stats_add_inflight(s->stats, 1);
        bool more = i < BATCH && frames_recv(s->router, next, ZMQ_DONTWAIT) == 0;
        if ((more || s->hand_out_all) && s->nhelpers > 0 && cur->nbody == 1)
            dispatch(s, cur);
        else {
            serve(s->front_w, s->router, cur, false);
            count_answer(s);
        }
        if (!more)
            return;
        frames *t = cur;
        cur = next;
        next = t;
    }
}

static void forward_replies(rk_server *s)
{
    while (frames_recv(s->pull, &s->rep, ZMQ_DONTWAIT) == 0) {
        int h = *(const uint8_t *)zmq_msg_data(&s->rep.f[0]);
        if (h < s->nhelpers && s->queued[h] > 0) {
            s->queued[h]--;
            s->inflight--;
        }
        frames_send(s->router, &s->rep, 1, s->rep.n, 0);
        count_answer(s);
    }
}

static void *front_main(void *arg)
{
    rk_server *s = arg;
    int64_t drain_deadline = 0;
    for (;;) {
        bool reading = !s->draining || rk_clock_ns() < drain_deadline;
        zmq_pollitem_t items[3];
        int n = 0, i_router = -1, i_pull = -1, i_stop = -1;
        if (reading) {
            i_router = n;
            items[n++] = (zmq_pollitem_t){s->router, 0, ZMQ_POLLIN, 0};
        }
        if (s->inflight > 0) { /* polling PULL costs ~2us a request: only when useful */
            i_pull = n;
            items[n++] = (zmq_pollitem_t){s->pull, 0, ZMQ_POLLIN, 0};
        }
        if (!s->draining) {
            i_stop = n;
            items[n++] = (zmq_pollitem_t){NULL, s->stopfd, ZMQ_POLLIN, 0};
        }
        int rc = zmq_poll(items, n, s->draining ? QUIET_MS : -1);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM: the context is going away */
        }
        if (i_pull >= 0 && (items[i_pull].revents & ZMQ_POLLIN))
            forward_replies(s);
        if (i_router >= 0 && (items[i_router].revents & ZMQ_POLLIN))
            read_requests(s);
        if (i_stop >= 0 && (items[i_stop].revents & ZMQ_POLLIN)) {
            s->draining = true;
            drain_deadline = rk_clock_ns() + (int64_t)DRAIN_MAX_MS * 1000000;
        }
        if (s->draining && rc == 0 && s->inflight == 0)
            break; /* quiet, and everything read has been answered */
        if (s->draining && rk_clock_ns() > drain_deadline + (int64_t)DRAIN_MAX_MS * 1000000) {
            rk_log_warn("shutdown: gave up waiting for %lld handed-out requests",
                        (long long)s->inflight);
            break;
        }
    }
    send_stops(s);
    int linger = FLUSH_LINGER_MS;
    zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s->router);
    s->router = NULL;
    return NULL;
}

/* ---- admin and signals (main thread) ----------------------------------------- */

static void serve_admin(rk_server *s)
{
    while (frames_recv(s->admin, &s->adm, ZMQ_DONTWAIT) == 0)
        serve(s->admin_w, s->admin, &s->adm, true);
}

/* Returns true when the signal asks riskd to stop. */
static bool handle_signals(rk_server *s)
{
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            rk_log_info("SIGHUP: reloading the rule set");
            rk_engine_reload(s->engine, NULL); /* logs the outcome itself */
        } else {
            rk_log_info("%s: shutting down", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            stop = true;
        }
    }
    return stop;
}

int rk_server_run(rk_server *s)
{
    char label[256];
    rk_engine_label(s->engine, label, sizeof label);
    rk_log_info("riskd %s: endpoint %s, admin %s, workers %d, ruleset %s", "started",
                s->endpoint, s->admin_endpoint, s->workers, label);

    for (int i = 0; i < s->nhelpers; i++) {
        if (pthread_create(&s->helpers[i].thread, NULL, helper_main, &s->helpers[i]) != 0) {
            /* The front only hands work to helpers that run. */
            rk_log_error("cannot start scoring thread %d of %d; running with %d", i + 2,
                         s->workers, i + 1);
            s->nhelpers = i;
            break;
        }
        s->helpers[i].started = true;
    }
    rk_stats_set_workers(s->stats, s->nhelpers + 1);
    if (pthread_create(&s->front_thread, NULL, front_main, s) != 0) {
        rk_log_error("cannot start the front thread: %s", strerror(errno));
        stop_helpers(s);
        return RK_ENOMEM;
    }
    s->front_started = true;

    for (;;) {
        zmq_pollitem_t items[2] = {
            {s->admin, 0, ZMQ_POLLIN, 0},
            {NULL, s->sigfd, ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            serve_admin(s);
        if ((items[1].revents & ZMQ_POLLIN) && handle_signals(s))
            break;
    }

    uint64_t one = 1;
    if (write(s->stopfd, &one, sizeof one) != sizeof one)
        rk_log_error("cannot signal the front thread: %s", strerror(errno));
    pthread_join(s->front_thread, NULL); /* it has sent each helper its stop message */
    s->front_started = false;
    join_helpers(s);
    rk_log_info("shutdown: %llu in-flight answered", (unsigned long long)s->drained);
    return 0;
}

/* ---- set-up ----------------------------------------------------------------- */

static void server_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

void rk_server_block_signals(void)
{
    sigset_t set;
    server_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *socket_opts(void *ctx, int type, int sndhwm, int rcvhwm)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock)
        return NULL;
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    return sock;
}

static int bind_router(void *ctx, const char *ep, size_t max_body, void **out, rk_diag *diag)
{
    void *sock = socket_opts(ctx, ZMQ_ROUTER, ROUTER_SNDHWM, ROUTER_RCVHWM);
    if (!sock) {
        rk_diag_set(diag, NULL, 0, 0, "cannot create a socket: %s", zmq_strerror(errno));
        return RK_EZMQ;
    }
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &zero, sizeof zero);
    /* Bodies a little over max_body get a too_large reply; far bigger ones are
     * not worth receiving and ZeroMQ drops the connection that sent them. */
    int64_t maxmsg = (int64_t)(max_body * 4 > (1 << 20) ? max_body * 4 : (1 << 20));
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(sock, ep) < 0) {
        rk_diag_set(diag, NULL, 0, 0, "cannot bind %s: %s", ep, zmq_strerror(errno));
        zmq_close(sock);
        return RK_EZMQ;
    }
    *out = sock;
    return 0;
}

int rk_server_new(rk_engine *e, const rk_config *cfg, rk_server **out, rk_diag *diag)
{
    rk_server *s = calloc(1, sizeof *s);
    if (!s)
        return RK_ENOMEM;
    s->sigfd = s->stopfd = -1;
    s->engine = e;
    s->stats = rk_engine_stats(e);
    s->workers = cfg->workers < 1 ? 1 : cfg->workers;
    s->nhelpers = s->nhelpers_alloc = s->workers - 1;
    s->max_inflight = cfg->max_inflight;
    s->hand_out_all = cfg->durability == RK_DUR_STRICT && s->nhelpers >= 2;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", cfg->endpoint);
    snprintf(s->admin_endpoint, sizeof s->admin_endpoint, "%s", cfg->admin_endpoint);

    /* Block the signals before ZeroMQ starts its I/O thread, so that every
     * thread inherits the mask and only the signalfd ever sees them. */
    server_signals(&s->sigs);
    pthread_sigmask(SIG_BLOCK, &s->sigs, &s->oldmask);
    s->sigfd = signalfd(-1, &s->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    s->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->ctx = zmq_ctx_new();
    s->queued = calloc((size_t)s->nhelpers + 1, sizeof *s->queued);
    s->work = calloc((size_t)s->nhelpers + 1, sizeof *s->work);
    s->helpers = calloc((size_t)s->nhelpers + 1, sizeof *s->helpers);
    int rc = RK_ENOMEM;
    if (s->sigfd < 0 || s->stopfd < 0 || !s->ctx || !s->queued || !s->work || !s->helpers) {
        rk_diag_set(diag, NULL, 0, 0, "cannot set up the server: %s", strerror(errno));
        goto fail;
    }
    if ((rc = bind_router(s->ctx, s->endpoint, rk_engine_max_body(e), &s->router, diag)) < 0 ||
        (rc = bind_router(s->ctx, s->admin_endpoint, rk_engine_max_body(e), &s->admin, diag)) < 0)
        goto fail;
    if ((rc = rk_worker_new(e, &s->front_w)) < 0 || (rc = rk_worker_new(e, &s->admin_w)) < 0) {
        rk_diag_set(diag, NULL, 0, 0, "out of memory");
        goto fail;
    }

    /* inproc plumbing: HWM 0 (unbounded) because max_inflight is the bound,
     * and an inproc send must never block the front. */
    rc = RK_EZMQ;
    s->pull = socket_opts(s->ctx, ZMQ_PULL, 0, 0);
    if (!s->pull || zmq_bind(s->pull, "inproc://riskd-done") < 0)
        goto zfail;
    for (int i = 0; i < s->nhelpers; i++) {
        helper *h = &s->helpers[i];
        char ep[64];
        snprintf(ep, sizeof ep, "inproc://riskd-work-%d", i);
        h->index = i;
        s->work[i] = socket_opts(s->ctx, ZMQ_PAIR, 0, 0);
        h->work = socket_opts(s->ctx, ZMQ_PAIR, 0, 0);
        h->done = socket_opts(s->ctx, ZMQ_PUSH, 0, 0);
        if (!s->work[i] || !h->work || !h->done || zmq_bind(s->work[i], ep) < 0 ||
            zmq_connect(h->work, ep) < 0 || zmq_connect(h->done, "inproc://riskd-done") < 0)
            goto zfail;
        if (rk_worker_new(e, &h->w) < 0) {
            rc = RK_ENOMEM;
            rk_diag_set(diag, NULL, 0, 0, "out of memory");
            goto fail;
        }
    }
    *out = s;
    return 0;
zfail:
    rk_diag_set(diag, NULL, 0, 0, "cannot set up inproc sockets: %s", zmq_strerror(errno));
fail:
    rk_server_free(s);
    return rc;
}

void rk_server_free(rk_server *s)
{
    if (!s)
        return;
    /* rk_server_run has joined every thread; a server that never ran has none. */
    if (s->router)
        zmq_close(s->router);
    if (s->admin)
        zmq_close(s->admin);
    if (s->pull)
        zmq_close(s->pull);
    for (int i = 0; s->helpers && i < s->nhelpers_alloc; i++) {
        helper *h = &s->helpers[i];
        if (s->work && s->work[i])
            zmq_close(s->work[i]);
        if (h->work)
            zmq_close(h->work);
        if (h->done)
            zmq_close(h->done);
        rk_worker_free(h->w);
    }
    if (s->ctx)
        zmq_ctx_term(s->ctx); /* waits for the ROUTER's last replies (its linger) */
    rk_worker_free(s->front_w);
    rk_worker_free(s->admin_w);
    free(s->helpers);
    free(s->work);
    free(s->queued);
    if (s->sigfd >= 0)
        close(s->sigfd);
    if (s->stopfd >= 0)
        close(s->stopfd);
    pthread_sigmask(SIG_SETMASK, &s->oldmask, NULL);
    free(s);
}
