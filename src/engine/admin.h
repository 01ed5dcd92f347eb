/* Admin ops (accepted on the admin endpoint only): `reload` and `stats`.
 * Their replies are documented in docs/config.md ("Admin ops", "Metrics"). */
#ifndef RK_ADMIN_H
#define RK_ADMIN_H

#include "engine/engine.h"
#include "proto/proto.h"

/* Reloads the rule set and packs {"ok": true, "ruleset": label}, or
 * {"ok": false, "error": {"code": "bad_request", "message": "file:line:col: ..."}}.
 * Slow (it compiles the rule set); the caller is the admin thread. */
void rk_admin_reload(rk_engine *e, rk_outbuf *out);

/* Packs the stats map, with rule hits from snap (the caller's current snapshot). */
void rk_admin_stats(rk_engine *e, const rk_snapshot *snap, rk_outbuf *out);

#endif
