/* Helpers shared by the tests that speak msgpack to the engine or to a riskd
 * they start: packing a string, reading a key or a string out of a reply map,
 * a monotonic clock for bounded polls, and a free loopback TCP port. Each
 * test is its own executable built from one .c, so the helpers are static
 * inline functions here rather than a library; a test uses the ones it needs.
 * Included as "support/rk_test.h" from the test sources beside support/.
 * Failures go through cmocka's assertions, so they fail the calling test. */
#ifndef RK_TEST_H
#define RK_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

/* Packs s as a msgpack string. */
static inline void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* The value of key in map, or NULL when absent or when map is not a map. */
static inline const msgpack_object *get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static inline bool str_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Fails the test unless o is the string s, printing what o was. */
static inline void assert_str(const msgpack_object *o, const char *s)
{
    if (!str_is(o, s)) {
        char buf[512] = "(absent)";
        if (o)
            msgpack_object_print_buffer(buf, sizeof buf, *o);
        fail_msg("expected \"%s\", got %s", s, buf);
    }
}

/* Milliseconds on the monotonic clock, for deadlines of bounded polls. */
static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

#endif
