/* Send one score request to riskd and print the reply as JSON.
 *
 *   cc client.c -lzmq -lmsgpackc -o client
 *   ./client [ENDPOINT]              (default tcp://127.0.0.1:7700)
 *
 * The C twin of client.py: a REQ socket, one msgpack request, at most 2
 * seconds' wait for the reply. Exit status: 0 when riskd answered with a
 * decision, 1 when it answered with an error or did not answer in time, 2 on
 * a usage error. Needs libzmq and msgpack-c (Debian: libzmq3-dev
 * libmsgpack-dev). See docs/protocol.md for every key. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid under -std=c11 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7700"
#define TIMEOUT_MS 2000

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pack_str(pk, k);
    pack_str(pk, v);
}

static void kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

/* The request: the three required keys and the usual optional ones. */
static void build_request(msgpack_sbuffer *sb)
{
    struct timespec now;
    char id[64];
    msgpack_packer pk;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    /* unique: a repeated id is treated as a retry of the same transaction */
    snprintf(id, sizeof id, "example-%ld-%" PRId64, (long)getpid(), now_ms);

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 14);
    kv_str(&pk, "id", id);
    kv_str(&pk, "account", "acct-1042");
    kv_int(&pk, "amount", 1999); /* minor units: 19.99 */
    kv_str(&pk, "currency", "EUR");
    kv_int(&pk, "ts", now_ms); /* event time, ms since the Unix epoch */
    kv_str(&pk, "type", "purchase");
    kv_str(&pk, "channel", "web");
    kv_str(&pk, "card", "tok_4f9a1c"); /* a token or fingerprint, never a card number */
    kv_str(&pk, "device", "dev-7c2e");
    kv_str(&pk, "ip", "203.0.113.7");
    kv_str(&pk, "ip_country", "NL");
    kv_str(&pk, "card_country", "DE");
    kv_str(&pk, "merchant", "m-31337");
    kv_int(&pk, "mcc", 5411);
}

/* ---- printing the reply as JSON ------------------------------------------ */

static void print_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* The fewest digits that give the same double back, written as Python's
 * json module would (60.0, 0.25, 1e-05): a float keeps its '.' or exponent
 * so that it reads back as a float. */
static void print_double(double v)
{
    char b[64];
    int digits;
    if (!isfinite(v)) {
        fputs("null", stdout);
        return;
    }
    for (digits = 1; digits < 17; digits++) {
        snprintf(b, sizeof b, "%.*e", digits - 1, v);
        if (strtod(b, NULL) == v)
            break;
    }
    snprintf(b, sizeof b, "%.*e", digits - 1, v);
    int exp = atoi(strchr(b, 'e') + 1);
    if (exp >= -4 && exp < 16)
        snprintf(b, sizeof b, "%.*f", digits - 1 - exp > 0 ? digits - 1 - exp : 0, v);
    fputs(b, stdout);
    if (!strpbrk(b, ".e"))
        fputs(".0", stdout);
}

static void indent(int depth)
{
    putchar('\n');
    for (int i = 0; i < depth; i++)
        fputs("  ", stdout);
}

static void print_json(const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", stdout);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", stdout);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        printf("%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        printf("%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        print_double(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        print_string(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                putchar(',');
            indent(depth + 1);
            print_json(&o->via.array.ptr[i], depth + 1);
        }
        if (o->via.array.size)
            indent(depth);
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i)
                putchar(',');
            indent(depth + 1);
            if (kv->key.type == MSGPACK_OBJECT_STR)
                print_string(kv->key.via.str.ptr, kv->key.via.str.size);
            else
                fputs("\"?\"", stdout); /* riskd's replies have string keys only */
            fputs(": ", stdout);
            print_json(&kv->val, depth + 1);
        }
        if (o->via.map.size)
            indent(depth);
        putchar('}');
        break;
    default: /* bin, ext: riskd's replies have none */
        fputs("null", stdout);
        break;
    }
}

/* Whether the reply map has an "error" key. */
static int is_error(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return 1;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 5 &&
            memcmp(k->via.str.ptr, "error", 5) == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: %s [ENDPOINT]        (default %s)\n", argv[0], DEFAULT_ENDPOINT);
        return 0;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [ENDPOINT]        (default %s)\n", argv[0],
                DEFAULT_ENDPOINT);
        return 2;
    }
    const char *endpoint = argc == 2 ? argv[1] : DEFAULT_ENDPOINT;
    int rc = 1;
    int linger = 0, timeout = TIMEOUT_MS;

    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_REQ);
    /* LINGER 0: do not hang at exit when riskd is away */
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "client: %s: %s\n", endpoint, zmq_strerror(errno));
        goto out;
    }

    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    build_request(&req);
    int sent = zmq_send(sock, req.data, req.size, 0);
    msgpack_sbuffer_destroy(&req);
    if (sent < 0) {
        fprintf(stderr, "client: cannot send to %s: %s\n", endpoint, zmq_strerror(errno));
        goto out;
    }

    zmq_msg_t reply;
    zmq_msg_init(&reply);
    if (zmq_msg_recv(&reply, sock, 0) < 0) {
        if (errno == EAGAIN)
            fprintf(stderr, "client: no reply from %s within %d ms\n", endpoint, TIMEOUT_MS);
        else
            fprintf(stderr, "client: %s: %s\n", endpoint, zmq_strerror(errno));
        zmq_msg_close(&reply);
        goto out;
    }

    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, zmq_msg_data(&reply), zmq_msg_size(&reply), &off) ==
        MSGPACK_UNPACK_SUCCESS) {
        print_json(&up.data, 0);
        putchar('\n');
        rc = is_error(&up.data);
    } else {
        fprintf(stderr, "client: the reply is not msgpack\n");
    }
    msgpack_unpacked_destroy(&up);
    zmq_msg_close(&reply);
out:
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}
