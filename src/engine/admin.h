/* Admin ops (accepted on the admin endpoint only): `reload`, `stats`, and the
 * state ops `list_add`, `list_rm`, `list_get`, `feedback` and `backup`.
 * Their arguments and replies are documented in docs/protocol.md
 * ("Operations") and docs/config.md ("Admin ops", "Metrics"). */
#ifndef RK_ADMIN_H
#define RK_ADMIN_H

#include <stdint.h>

#include "engine/engine.h"
#include "proto/proto.h"
#include "rules/ruleset.h"
#include "state/store.h"

/* Reloads the rule set and packs {"ok": true, "ruleset": label}, or
 * {"ok": false, "error": {"code": "bad_request", "message": "file:line:col: ..."}}.
 * Slow (it compiles the rule set); the caller is the admin thread. */
void rk_admin_reload(rk_engine *e, rk_outbuf *out);

/* Packs the stats map, with rule hits from snap (the caller's current
 * snapshot) and the store's figures. */
void rk_admin_stats(rk_engine *e, const rk_snapshot *snap, rk_outbuf *out);

/* Runs one of the state ops (list_add, list_rm, list_get, feedback, backup)
 * in its own write transaction on sw, against the dynamic lists and counters
 * of rs (the current rule set), reading its arguments from req->body. Packs
 * the reply into out and returns 0; or returns RK_EINVAL (a missing or bad
 * argument, an unknown list or transaction id: code bad_request) or
 * RK_ESTORE / RK_EIO (code internal, detail logged) with err filled, the
 * message naming the field. Nothing is changed on failure. */
int rk_admin_state_op(rk_engine *e, rk_store_worker *sw, const rk_ruleset *rs,
                      const rk_request *req, rk_outbuf *out, rk_proto_err *err);

/* The tag under which a scored transaction remembers the value a dynamic
 * list adds on confirmed fraud (`add_on_fraud:`), so that feedback can find
 * it: a hash of the list name, distinct from every counter identity. */
uint64_t rk_admin_list_tag(const char *list);

#endif
