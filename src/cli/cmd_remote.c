/* riskctl's conversation with a running riskd: score, ping (request endpoint)
 * and reload, stats, list, feedback, backup (admin endpoint), all over one
 * request helper.
 *
 * rk_cli_request is the only code in riskctl that touches ZeroMQ: a fresh REQ
 * socket per command, ZMQ_LINGER 0 so that an unanswered request never keeps
 * the process alive, and a receive timeout so that "riskd is not running"
 * becomes a one-line message instead of a hang. The admin subcommands build
 * their msgpack body with ask() and call it the same way; riskd checks their
 * arguments again and its error replies (which name the field) are printed as
 * `riskctl: WHAT failed: MESSAGE`.
 *
 * Where to talk: --endpoint / --admin, else $RISKD_ENDPOINT / $RISKD_ADMIN,
 * else the defaults riskd binds (DESIGN.md section 2). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "cli/cli.h"
#include "lib/clock.h"
#include "lib/diag.h"
#include "lib/duration.h"
#include "lib/err.h"
#include "proto/json.h"

/* Whom a command talks to, resolved from its options and the environment. */
typedef struct target {
    const char *endpoint; /* ZeroMQ endpoint */
    int timeout_ms;       /* how long to wait for the reply */
} target;

/* ---- The request helper (cli.h) ---- */

static void close_socket(void *zctx, void *sock)
{
    if (sock)
        zmq_close(sock);
    zmq_ctx_term(zctx);
}

static int no_reply(const char *endpoint, int timeout_ms)
{
    rk_cli_fail("no reply from %s within %d ms (is riskd running?)", endpoint, timeout_ms);
    return RK_ETIMEOUT;
}

int rk_cli_request(const char *endpoint, int timeout_ms, const void *body, size_t len,
                   rk_cli_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    void *zctx = zmq_ctx_new();
    if (!zctx) {
        rk_cli_fail("cannot start ZeroMQ: %s", zmq_strerror(errno));
        return RK_EZMQ;
    }
    void *sock = zmq_socket(zctx, ZMQ_REQ);
    if (!sock) {
        rk_cli_fail("cannot open a socket: %s", zmq_strerror(errno));
        close_socket(zctx, NULL);
        return RK_EZMQ;
    }
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    if (zmq_connect(sock, endpoint) != 0) {
        /* Connecting is asynchronous: this fails only for a malformed endpoint
         * or an unknown transport, never because nobody is listening. */
        rk_cli_fail("cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
        close_socket(zctx, sock);
        return RK_EINVAL;
    }
    int rc;
    while ((rc = zmq_send(sock, body, len, 0)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        int e = errno;
        close_socket(zctx, sock);
        if (e == EAGAIN)
            return no_reply(endpoint, timeout_ms);
        rk_cli_fail("cannot send to %s: %s", endpoint, zmq_strerror(e));
        return RK_EZMQ;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while ((rc = zmq_msg_recv(&msg, sock, 0)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        close_socket(zctx, sock);
        if (e == EAGAIN)
            return no_reply(endpoint, timeout_ms);
        rk_cli_fail("no reply from %s: %s", endpoint, zmq_strerror(e));
        return RK_EZMQ;
    }
    /* The body is one frame (DESIGN.md section 2); anything after it is not
     * ours to read and goes away with the socket. */
    reply->len = zmq_msg_size(&msg);
    reply->buf = malloc(reply->len ? reply->len : 1);
    if (reply->buf)
        memcpy(reply->buf, zmq_msg_data(&msg), reply->len);
    zmq_msg_close(&msg);
    close_socket(zctx, sock);
    if (!reply->buf) {
        rk_cli_fail("out of memory");
        return RK_ENOMEM;
    }
    msgpack_unpacked_init(&reply->msg);
    reply->unpacked = true;
    size_t off = 0;
    if (msgpack_unpack_next(&reply->msg, (const char *)reply->buf, reply->len, &off) !=
        MSGPACK_UNPACK_SUCCESS) {
        rk_cli_fail("malformed reply from %s (not msgpack)", endpoint);
        rk_cli_reply_free(reply);
        return RK_ECORRUPT;
    }
    return 0;
}

void rk_cli_reply_free(rk_cli_reply *reply)
{
    if (reply->unpacked)
        msgpack_unpacked_destroy(&reply->msg);
    free(reply->buf);
    memset(reply, 0, sizeof *reply);
}

/* ---- Reading replies ---- */

/* The value under key in a msgpack map, or NULL. */
static const msgpack_object *map_get(const msgpack_object *o, const char *key)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            memcmp(k->via.str.ptr, key, len) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

/* A string value as printf's "%.*s" arguments; "" for anything else. */
static int str_len(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_STR ? (int)o->via.str.size : 0;
}

static const char *str_ptr(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : "";
}

/* riskd's error replies are {"error": {"code": ..., "message": ...}}. Returns
 * the error map, or NULL for a reply that is not an error. */
static const msgpack_object *reply_error(const rk_cli_reply *reply)
{
    const msgpack_object *e = map_get(&reply->msg.data, "error");
    return e && e->type != MSGPACK_OBJECT_NIL ? e : NULL;
}

/* Reports an error reply as `riskctl: WHAT: message` (the message is written
 * for people; the code only when there is no message). Returns RK_CLI_FAIL. */
static int report_error(const char *what, const msgpack_object *e)
{
    const msgpack_object *code = map_get(e, "code"), *msg = map_get(e, "message");
    if (str_len(msg))
        return rk_cli_fail("%s: %.*s", what, str_len(msg), str_ptr(msg));
    if (str_len(code))
        return rk_cli_fail("%s: %.*s", what, str_len(code), str_ptr(code));
    if (e->type == MSGPACK_OBJECT_STR)
        return rk_cli_fail("%s: %.*s", what, str_len(e), str_ptr(e));
    return rk_cli_fail("%s: riskd reported an error", what);
}

/* Prints the reply as JSON on stdout: one line (indent 0) or pretty. */
static int print_json(const rk_cli_reply *reply, int indent, const char *endpoint)
{
    char *json = NULL;
    if (rk_msgpack_to_json(reply->buf, reply->len, indent, &json) < 0)
        return rk_cli_fail("malformed reply from %s", endpoint);
    puts(json);
    free(json);
    return RK_CLI_OK;
}

/* ---- Shared by the subcommands ---- */

/* What sets one remote subcommand apart; the rest of its prologue is
 * remote_start(). */
typedef struct remote_cmd {
    bool admin;              /* --admin, $RISKD_ADMIN; else --endpoint, $RISKD_ENDPOINT */
    int timeout_ms;          /* --timeout's default */
    const rk_cli_opt *extra; /* the command's own options (after those two), or NULL */
    /* Checks the positional arguments before the target is resolved (ctx is
     * the command's own); NULL: the command takes none. Returns 0 or
     * RK_CLI_USAGE. */
    int (*check)(const rk_cli_cmd *cmd, char **pos, int npos, void *ctx);
    void *ctx;
} remote_cmd;

#define MAX_EXTRA_OPTS 4

static int no_args(const rk_cli_cmd *cmd, char **pos, int npos)
{
    if (npos > 0)
        return rk_cli_usage(cmd, "unexpected argument '%s'", pos[0]);
    return 0;
}

/* Parses a remote subcommand's options, checks its positional arguments
 * (left in argv[1..], see rk_cli_parse) and resolves where to talk and how
 * long to wait: the option, else the environment variable, else the default.
 * Returns 0; RK_CLI_HELP after printing the help (exit 0); or RK_CLI_USAGE. */
static int remote_start(const rk_cli_cmd *cmd, const remote_cmd *rc, int argc, char **argv,
                        target *t)
{
    const char *endpoint = NULL, *timeout = NULL;
    rk_cli_opt opts[3 + MAX_EXTRA_OPTS] = {
        {rc->admin ? "--admin" : "--endpoint", "EP", &endpoint, NULL},
        {"--timeout", "MS", &timeout, NULL},
    };
    for (int i = 0; rc->extra && rc->extra[i].name; i++) {
        assert(i < MAX_EXTRA_OPTS);
        opts[2 + i] = rc->extra[i];
    }
    int npos;
    int status = rk_cli_parse(cmd, argc, argv, opts, &npos);
    if (status)
        return status;
    status = rc->check ? rc->check(cmd, argv + 1, npos, rc->ctx) : no_args(cmd, argv + 1, npos);
    if (status)
        return status;
    const char *from_env = getenv(rc->admin ? "RISKD_ADMIN" : "RISKD_ENDPOINT");
    const char *def = rc->admin ? RK_CLI_ADMIN : RK_CLI_ENDPOINT;
    t->endpoint = endpoint ? endpoint : from_env && *from_env ? from_env : def;
    t->timeout_ms = rc->timeout_ms;
    if (timeout)
        return rk_cli_parse_ms(cmd, "--timeout", timeout, &t->timeout_ms);
    return 0;
}

/* The exit status for remote_start's non-zero return. */
static int start_status(int rc)
{
    return rc == RK_CLI_HELP ? RK_CLI_OK : rc;
}

/* Exit status for a failed rk_cli_request: a malformed endpoint is the user's
 * input, anything else is the request failing. */
static int request_status(int rc)
{
    return rc == RK_EINVAL ? RK_CLI_USAGE : RK_CLI_FAIL;
}

/* One argument of an admin op: a string, or an integer when str is NULL. */
typedef struct op_arg {
    const char *key; /* argument name */
    const char *str; /* string value, or NULL */
    int64_t num;     /* integer value when str is NULL */
} op_arg;

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Sends {"op": OP, args...} and waits for the reply. Returns 0 or an RK_E*
 * code (already reported). */
static int ask(const target *t, const char *op, const op_arg *args, int nargs,
               rk_cli_reply *reply)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* The sbuffer's writer only fails when out of memory; then sb.data is
     * NULL and nothing is sent. */
    msgpack_pack_map(&pk, 1 + (size_t)nargs);
    pack_cstr(&pk, "op");
    pack_cstr(&pk, op);
    for (int i = 0; i < nargs; i++) {
        pack_cstr(&pk, args[i].key);
        if (args[i].str)
            pack_cstr(&pk, args[i].str);
        else
            msgpack_pack_int64(&pk, args[i].num);
    }
    if (!sb.data) {
        rk_cli_fail("out of memory");
        return RK_ENOMEM;
    }
    int rc = rk_cli_request(t->endpoint, t->timeout_ms, sb.data, sb.size, reply);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int ask_op(const target *t, const char *op, rk_cli_reply *reply)
{
    return ask(t, op, NULL, 0, reply);
}

/* ---- score ---- */

static int read_request(const char *arg, char **text, size_t *len)
{
    if (strcmp(arg, "-") != 0) {
        *text = strdup(arg);
        *len = strlen(arg);
        return *text ? 0 : rk_cli_fail("out of memory");
    }
    int rc = rk_cli_read_stream(stdin, text, len);
    if (rc < 0)
        return rk_cli_fail("cannot read the request from stdin: %s", rk_strerror(rc));
    return 0;
}

/* Takes the request: one argument. */
static int check_score(const rk_cli_cmd *cmd, char **pos, int npos, void *ctx)
{
    (void)pos;
    (void)ctx;
    if (npos == 0)
        return rk_cli_usage(cmd, "%s needs a request as JSON (or - to read it from stdin)",
                            cmd->name);
    if (npos > 1)
        return rk_cli_usage(cmd, "%s takes one argument, got %d (quote the JSON)", cmd->name, npos);
    return 0;
}

static int run_score(const rk_cli_cmd *cmd, int argc, char **argv)
{
    bool pretty = false;
    const rk_cli_opt extra[] = {
        {"--pretty", NULL, NULL, &pretty},
        {NULL, NULL, NULL, NULL},
    };
    const remote_cmd rcmd = {false, RK_CLI_TIMEOUT_MS, extra, check_score, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);

    char *text = NULL;
    size_t len = 0;
    if ((rc = read_request(argv[1], &text, &len)))
        return rc;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    char err[256];
    rc = rk_json_to_msgpack(text, len, &body, err, sizeof err);
    free(text);
    if (rc < 0) {
        msgpack_sbuffer_destroy(&body);
        if (rc == RK_EPARSE) {
            rk_cli_fail("invalid JSON: %s", err);
            return RK_CLI_USAGE;
        }
        return rk_cli_fail("cannot encode the request: %s", rk_strerror(rc));
    }
    rk_cli_reply reply;
    rc = rk_cli_request(t.endpoint, t.timeout_ms, body.data, body.size, &reply);
    msgpack_sbuffer_destroy(&body);
    if (rc < 0)
        return request_status(rc);
    /* An error reply is still the answer the user asked to see: printed as
     * is, with a failing exit status for scripts. */
    int status = print_json(&reply, pretty ? 2 : 0, t.endpoint);
    if (status == RK_CLI_OK && reply_error(&reply))
        status = RK_CLI_FAIL;
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_score = {
    .name = "score",
    .args = "[--endpoint EP] [--timeout MS] [--pretty] JSON|-",
    .summary = "send one score request to riskd and print the reply",
    .help = "Sends one score request, given as a JSON object (or read from stdin with -), to\n"
            "riskd as a gateway would (msgpack over a ZeroMQ REQ socket), and prints the reply\n"
            "as JSON on one line. JSON numbers without a fraction are sent as integers.\n"
            "\n"
            "  riskctl score '{\"id\": \"t1\", \"account\": \"a1\", \"amount\": 1999}'\n"
            "\n"
            "Options:\n"
            "  --endpoint EP   riskd's request endpoint (default $RISKD_ENDPOINT, else\n"
            "                  " RK_CLI_ENDPOINT ")\n"
            "  --timeout MS    how long to wait for the reply (default 2000)\n"
            "  --pretty        print the reply indented over several lines\n"
            "\n"
            "Exit status: 0 for a decision, 1 for an error reply or no reply, 2 for invalid\n"
            "JSON or bad usage.\n",
    .run = run_score,
};

/* ---- ping ---- */

static int run_ping(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const remote_cmd rcmd = {false, RK_CLI_TIMEOUT_MS, NULL, NULL, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    rk_cli_reply reply;
    int64_t start = rk_clock_ns();
    if ((rc = ask_op(&t, "ping", &reply)) < 0)
        return request_status(rc);
    int64_t took_us = (rk_clock_ns() - start) / 1000;
    const msgpack_object *err = reply_error(&reply), *ok = map_get(&reply.msg.data, "ok");
    int status = RK_CLI_OK;
    if (err)
        status = report_error("ping failed", err);
    else if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean)
        status = rk_cli_fail("unexpected reply to ping from %s", t.endpoint);
    else
        printf("ok: %s answered in %lld us\n", t.endpoint, (long long)took_us);
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_ping = {
    .name = "ping",
    .args = "[--endpoint EP] [--timeout MS]",
    .summary = "check that riskd answers on its request endpoint",
    .help = "Sends a ping to riskd's request endpoint and prints\n"
            "\n"
            "  ok: ENDPOINT answered in N us\n"
            "\n"
            "(the round trip, connection set-up included).\n"
            "\n"
            "Options:\n"
            "  --endpoint EP   riskd's request endpoint (default $RISKD_ENDPOINT, else\n"
            "                  " RK_CLI_ENDPOINT ")\n"
            "  --timeout MS    how long to wait for the reply (default 2000)\n"
            "\n"
            "Exit status: 0 when riskd answered, 1 when it did not.\n",
    .run = run_ping,
};

/* ---- reload ---- */

/* Loading a big rule set and model takes longer than a score: allow for it. */
#define RELOAD_TIMEOUT_MS 30000

static int run_reload(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const remote_cmd rcmd = {true, RELOAD_TIMEOUT_MS, NULL, NULL, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    rk_cli_reply reply;
    if ((rc = ask_op(&t, "reload", &reply)) < 0)
        return request_status(rc);
    const msgpack_object *err = reply_error(&reply), *rs = map_get(&reply.msg.data, "ruleset");
    int status = RK_CLI_OK;
    if (err)
        status = report_error("reload failed", err);
    else if (str_len(rs))
        printf("reloaded: %.*s\n", str_len(rs), str_ptr(rs));
    else
        status = print_json(&reply, 0, t.endpoint);
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_reload = {
    .name = "reload",
    .args = "[--admin EP] [--timeout MS]",
    .summary = "make riskd reload its rule set (and model)",
    .help = "Asks riskd, on its admin endpoint, to load and compile its rule file again and\n"
            "swap it in. Prints\n"
            "\n"
            "  reloaded: NAME@VERSION\n"
            "\n"
            "or, when the new rule set does not load, the reason (riskd keeps serving the\n"
            "old one).\n"
            "\n"
            "Options:\n"
            "  --admin EP      riskd's admin endpoint (default $RISKD_ADMIN, else\n"
            "                  " RK_CLI_ADMIN ")\n"
            "  --timeout MS    how long to wait for the reply (default 30000)\n"
            "\n"
            "Exit status: 0 when the new rule set serves, 1 otherwise.\n",
    .run = run_reload,
};

/* ---- stats ---- */

static int run_stats(const rk_cli_cmd *cmd, int argc, char **argv)
{
    bool one_line = false;
    const rk_cli_opt extra[] = {
        {"--json", NULL, NULL, &one_line},
        {NULL, NULL, NULL, NULL},
    };
    const remote_cmd rcmd = {true, RK_CLI_TIMEOUT_MS, extra, NULL, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    rk_cli_reply reply;
    if ((rc = ask_op(&t, "stats", &reply)) < 0)
        return request_status(rc);
    const msgpack_object *err = reply_error(&reply);
    int status = err ? report_error("stats failed", err)
                     : print_json(&reply, one_line ? 0 : 2, t.endpoint);
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_stats = {
    .name = "stats",
    .args = "[--admin EP] [--timeout MS] [--json]",
    .summary = "print riskd's counters (requests, decisions, errors, reloads, the store)",
    .help = "Asks riskd, on its admin endpoint, for its statistics and prints them as\n"
            "indented JSON.\n"
            "\n"
            "Options:\n"
            "  --admin EP      riskd's admin endpoint (default $RISKD_ADMIN, else\n"
            "                  " RK_CLI_ADMIN ")\n"
            "  --timeout MS    how long to wait for the reply (default 2000)\n"
            "  --json          print them as JSON on one line, for scripts\n"
            "\n"
            "Exit status: 0 when riskd answered, 1 when it did not.\n",
    .run = run_stats,
};

/* ---- list, feedback, backup: the state store's admin ops ---- */

/* Wall ms as "2026-11-22T17:40:01Z" (UTC). */
static const char *format_ms(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "%lld ms", (long long)ms);
    return buf;
}

/* An integer reply value (ms), or 0 for nil or anything else. */
static int64_t int_of(const msgpack_object *o)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)o->via.u64;
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return o->via.i64;
    return 0;
}

static bool true_at(const rk_cli_reply *reply, const char *key)
{
    const msgpack_object *o = map_get(&reply->msg.data, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

/* " (expires ...)" or " (never expires)" for an expires_ms value. */
static const char *expiry(int64_t ms, char *buf, size_t size)
{
    char when[64];
    if (ms)
        snprintf(buf, size, "expires %s", format_ms(ms, when, sizeof when));
    else
        snprintf(buf, size, "never expires");
    return buf;
}

/* A list command's arguments: --ttl in, the rest out of check_list. */
typedef struct list_args {
    const char *ttl_text; /* --ttl, or NULL */
    const char *action;   /* add, rm or get */
    const char *op;       /* the admin op for it */
    int64_t ttl;          /* parsed --ttl; 0 for none */
} list_args;

static int check_list(const rk_cli_cmd *cmd, char **pos, int npos, void *ctx)
{
    list_args *la = ctx;
    if (npos == 0)
        return rk_cli_usage(cmd, "list needs an action: add, rm or get");
    const char *action = la->action = pos[0];
    la->op = !strcmp(action, "add")   ? "list_add"
             : !strcmp(action, "rm")  ? "list_rm"
             : !strcmp(action, "get") ? "list_get"
                                      : NULL;
    if (!la->op) {
        static const char *const actions[] = {"add", "rm", "get"};
        const char *near = rk_suggest(action, actions, 3);
        if (near)
            return rk_cli_usage(cmd, "unknown list action '%s' (did you mean '%s'?)", action,
                                near);
        return rk_cli_usage(cmd, "unknown list action '%s' (use add, rm or get)", action);
    }
    if (npos != 3)
        return rk_cli_usage(cmd, "list %s needs LIST and VALUE, got %d argument%s", action,
                            npos - 1, npos == 2 ? "" : "s");
    const char *ttl_text = la->ttl_text;
    if (ttl_text && strcmp(action, "add") != 0)
        return rk_cli_usage(cmd, "option '--ttl' applies to 'list add' only");
    if (ttl_text && rk_duration_parse(ttl_text, strlen(ttl_text), &la->ttl) < 0)
        return rk_cli_usage(cmd,
                            "option '--ttl' takes a duration such as 30d (units ms, s, m, h, d), "
                            "not '%s'",
                            ttl_text);
    return 0;
}

static int run_list(const rk_cli_cmd *cmd, int argc, char **argv)
{
    list_args la = {NULL, NULL, NULL, 0};
    /* --ttl used to come before --admin and --timeout; no misspelling is
     * near enough to two of them for the order to pick a suggestion. */
    const rk_cli_opt extra[] = {
        {"--ttl", "DURATION", &la.ttl_text, NULL},
        {NULL, NULL, NULL, NULL},
    };
    const remote_cmd rcmd = {true, RK_CLI_TIMEOUT_MS, extra, check_list, &la};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    const char *action = la.action, *list = argv[2], *value = argv[3];
    int64_t ttl = la.ttl;
    op_arg args[3] = {{"list", list, 0}, {"value", value, 0}, {"ttl", NULL, ttl}};
    rk_cli_reply reply;
    if ((rc = ask(&t, la.op, args, ttl ? 3 : 2, &reply)) < 0)
        return request_status(rc);
    const msgpack_object *err = reply_error(&reply), *root = &reply.msg.data;
    int status = RK_CLI_OK;
    char what[32], when[64], exp[96];
    snprintf(what, sizeof what, "list %s", action);
    if (err) {
        status = report_error(what, err);
    } else if (!strcmp(action, "add")) {
        printf("added '%s' to %s (%s)\n", value, list,
               expiry(int_of(map_get(root, "expires_ms")), exp, sizeof exp));
    } else if (!strcmp(action, "rm")) {
        if (true_at(&reply, "removed"))
            printf("removed '%s' from %s\n", value, list);
        else
            status = rk_cli_fail("'%s' was not on %s", value, list);
    } else if (true_at(&reply, "present")) {
        printf("'%s' is on %s (added %s, %s)\n", value, list,
               format_ms(int_of(map_get(root, "added_ms")), when, sizeof when),
               expiry(int_of(map_get(root, "expires_ms")), exp, sizeof exp));
    } else {
        printf("'%s' is not on %s\n", value, list);
        status = RK_CLI_FAIL;
    }
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_list = {
    .name = "list",
    .args = "add|rm|get LIST VALUE [--ttl DURATION] [--admin EP] [--timeout MS]",
    .summary = "add to, remove from or look up a dynamic list in riskd",
    .help = "Maintains the dynamic lists of the rule set riskd is serving (lists declared\n"
            "with {dynamic: true}), on its admin endpoint. A change applies to the very next\n"
            "request.\n"
            "\n"
            "  riskctl list add blocked_cards tok_4242 --ttl 30d\n"
            "  riskctl list get blocked_cards tok_4242\n"
            "  riskctl list rm blocked_cards tok_4242\n"
            "\n"
            "add puts VALUE on LIST (again: with a new expiry); rm takes it off; get says\n"
            "whether it is on it, since when and until when. Values are stored only as keyed\n"
            "hashes: riskd cannot list a list's members.\n"
            "\n"
            "Options:\n"
            "  --ttl DURATION  add only: the entry expires after this (30d, 12h, 90m, 45s,\n"
            "                  500ms); default: never\n"
            "  --admin EP      riskd's admin endpoint (default $RISKD_ADMIN, else\n"
            "                  " RK_CLI_ADMIN ")\n"
            "  --timeout MS    how long to wait for the reply (default 2000)\n"
            "\n"
            "Exit status: 0 done (get: VALUE is on LIST); 1 riskd refused or did not answer,\n"
            "rm: VALUE was not on LIST, get: VALUE is not on LIST; 2 bad usage.\n",
    .run = run_list,
};

static int check_feedback(const rk_cli_cmd *cmd, char **pos, int npos, void *ctx)
{
    (void)ctx;
    if (npos != 2)
        return rk_cli_usage(cmd, "feedback needs a transaction ID and a label (fraud or legit)");
    if (strcmp(pos[1], "fraud") != 0 && strcmp(pos[1], "legit") != 0)
        return rk_cli_usage(cmd, "the label must be fraud or legit, not '%s'", pos[1]);
    return 0;
}

static int run_feedback(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const remote_cmd rcmd = {true, RK_CLI_TIMEOUT_MS, NULL, check_feedback, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    const char *id = argv[1], *label = argv[2];
    op_arg args[2] = {{"id", id, 0}, {"label", label, 0}};
    rk_cli_reply reply;
    if ((rc = ask(&t, "feedback", args, 2, &reply)) < 0)
        return request_status(rc);
    const msgpack_object *err = reply_error(&reply), *root = &reply.msg.data;
    int status = RK_CLI_OK;
    if (err) {
        status = report_error("feedback failed", err);
    } else {
        int64_t nc = int_of(map_get(root, "counters_updated"));
        int64_t nl = int_of(map_get(root, "lists_updated"));
        printf("recorded %s for %s: %lld counter update%s, %lld list entr%s added\n", label, id,
               (long long)nc, nc == 1 ? "" : "s", (long long)nl, nl == 1 ? "y" : "ies");
    }
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_feedback = {
    .name = "feedback",
    .args = "ID fraud|legit [--admin EP] [--timeout MS]",
    .summary = "record a confirmed fraud or legit label for a decided transaction",
    .help = "Tells riskd, on its admin endpoint, that transaction ID (the id it was scored\n"
            "with) turned out to be fraud (a chargeback, an analyst's finding) or legit.\n"
            "Counters that count confirmed labels (feedback: fraud) are updated at the\n"
            "transaction's original time, and dynamic lists with add_on_fraud receive its\n"
            "value (its card, say) on a fraud label. Labelling it again with the other label\n"
            "takes the first one back.\n"
            "\n"
            "  riskctl feedback txn-000123 fraud\n"
            "\n"
            "riskd keeps decisions for keep_decisions (default 24h); an id it does not know\n"
            "is an error.\n"
            "\n"
            "Options:\n"
            "  --admin EP      riskd's admin endpoint (default $RISKD_ADMIN, else\n"
            "                  " RK_CLI_ADMIN ")\n"
            "  --timeout MS    how long to wait for the reply (default 2000)\n"
            "\n"
            "Exit status: 0 recorded, 1 riskd refused (unknown id) or did not answer, 2 bad\n"
            "usage.\n",
    .run = run_feedback,
};

/* Copying a large store takes a while; riskd answers when the copy is safe. */
#define BACKUP_TIMEOUT_MS (10 * 60 * 1000)

static int check_backup(const rk_cli_cmd *cmd, char **pos, int npos, void *ctx)
{
    (void)pos;
    (void)ctx;
    if (npos != 1)
        return rk_cli_usage(cmd, "backup needs one directory, got %d arguments", npos);
    return 0;
}

static int run_backup(const rk_cli_cmd *cmd, int argc, char **argv)
{
    const remote_cmd rcmd = {true, BACKUP_TIMEOUT_MS, NULL, check_backup, NULL};
    target t;
    int rc = remote_start(cmd, &rcmd, argc, argv, &t);
    if (rc)
        return start_status(rc);
    /* riskd resolves nothing against its own working directory: send the
     * path as this shell user means it. */
    const char *arg = argv[1];
    char dir[4096];
    if (arg[0] == '/') {
        snprintf(dir, sizeof dir, "%s", arg);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd))
            return rk_cli_fail("cannot tell the current directory: %s", strerror(errno));
        snprintf(dir, sizeof dir, "%s/%s", cwd, arg);
    }
    op_arg args[1] = {{"dir", dir, 0}};
    rk_cli_reply reply;
    if ((rc = ask(&t, "backup", args, 1, &reply)) < 0)
        return request_status(rc);
    const msgpack_object *err = reply_error(&reply);
    int status = RK_CLI_OK;
    if (err)
        status = report_error("backup failed", err);
    else
        printf("backup written to %s (restore: riskd --data-dir %s)\n", dir, dir);
    rk_cli_reply_free(&reply);
    return status;
}

const rk_cli_cmd rk_cli_backup = {
    .name = "backup",
    .args = "DIR [--admin EP] [--timeout MS]",
    .summary = "write a consistent copy of riskd's state store into a new directory",
    .help = "Asks riskd, on its admin endpoint, to copy its state store (velocity counters,\n"
            "dynamic lists, recent decisions and the secret their keys are hashed with) into\n"
            "DIR, while it keeps serving. DIR is created (mode 0700) and must not already\n"
            "hold a store. It is on riskd's machine; a relative DIR is taken from the\n"
            "current directory. To restore, start riskd with --data-dir DIR (see\n"
            "docs/operations.md).\n"
            "\n"
            "  riskctl backup /var/backups/riskd/$(date +%F)\n"
            "\n"
            "Options:\n"
            "  --admin EP      riskd's admin endpoint (default $RISKD_ADMIN, else\n"
            "                  " RK_CLI_ADMIN ")\n"
            "  --timeout MS    how long to wait for the copy (default 600000)\n"
            "\n"
            "Exit status: 0 written, 1 riskd refused (DIR holds a store) or failed, 2 bad\n"
            "usage.\n",
    .run = run_backup,
};
