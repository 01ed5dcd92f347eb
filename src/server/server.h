/* The ZeroMQ server: the gateway ROUTER, the admin ROUTER, the scoring threads
 * and signal handling. Threading model and its latency rationale: server.c and
 * docs/config.md ("Threading"). */
#ifndef RK_SERVER_H
#define RK_SERVER_H

#include "engine/engine.h"
#include "lib/diag.h"
#include "server/config.h"

typedef struct rk_server rk_server;

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and so in every
 * thread it starts afterwards (the state store's sync and sweeper threads,
 * ZeroMQ's I/O thread), so that only the server's signalfd ever sees them.
 * Call it first in main, before the engine opens its store. */
void rk_server_block_signals(void);

/* Blocks the signals as above (if main has not), binds both endpoints and
 * allocates every worker. Nothing is served until rk_server_run.
 * Returns 0, or RK_EZMQ (bind failed: diag names the endpoint and why) or
 * RK_ENOMEM. */
int rk_server_new(rk_engine *e, const rk_config *cfg, rk_server **out, rk_diag *diag);

/* Serves until SIGINT or SIGTERM; SIGHUP reloads the rule set. The calling
 * thread serves the admin endpoint and handles signals; the gateway endpoint
 * is served by the scoring threads. On a stop signal: stops reading new
 * requests once the gateway socket has gone quiet, answers every request
 * already read, logs "shutdown: N in-flight answered", and returns 0. */
int rk_server_run(rk_server *s);

/* Closes sockets and frees workers; s may be NULL. */
void rk_server_free(rk_server *s);

#endif
