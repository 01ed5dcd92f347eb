/* Snapshots: what one decision is made with, immutable and reference-counted.
 *
 * A snapshot bundles the compiled rule set (later also the model) with its
 * per-rule hit counters. A reload builds a new snapshot off the hot path and
 * publishes it in an rk_snapshot_cell; workers hold a reference to the one
 * they use and notice a newer one by comparing generation numbers, which is a
 * single atomic load per request: the hot path takes no lock. A request in
 * flight finishes on the snapshot it started with; a snapshot is freed when
 * its last holder releases it. */
#ifndef RK_SNAPSHOT_H
#define RK_SNAPSHOT_H

#include <stdint.h>

#include "rules/decision.h"
#include "rules/ruleset.h"

typedef struct rk_snapshot rk_snapshot;
typedef struct rk_snapshot_cell rk_snapshot_cell;

/* Wraps rs (ownership passes to the snapshot, also on failure) in a snapshot
 * with one reference, held by the caller. Returns 0 or RK_ENOMEM. */
int rk_snapshot_new(rk_ruleset *rs, rk_snapshot **out);
/* Adds a reference. Any thread. */
void rk_snapshot_retain(rk_snapshot *s);
/* Drops a reference; the last one frees the snapshot. s may be NULL. */
void rk_snapshot_release(rk_snapshot *s);

const rk_ruleset *rk_snapshot_ruleset(const rk_snapshot *s);
/* "name@version" of the rule set; valid while the snapshot is held. */
const char *rk_snapshot_label(const rk_snapshot *s);
/* The generation the cell gave it when published (0 before). */
uint64_t rk_snapshot_generation(const rk_snapshot *s);

/* Counts one decision's matched rules (live and shadow) in the per-rule hit
 * counters. Relaxed atomics: any number of workers at once. */
void rk_snapshot_count_hits(rk_snapshot *s, const rk_decision *d);
/* Times rule i has matched since this snapshot was built. */
uint64_t rk_snapshot_hits(const rk_snapshot *s, int i);

/* The published snapshot. Returns 0 or RK_ENOMEM. The cell takes over the
 * caller's reference to first. */
int rk_snapshot_cell_new(rk_snapshot *first, rk_snapshot_cell **out);
/* Releases the cell's reference to the current snapshot. c may be NULL. */
void rk_snapshot_cell_free(rk_snapshot_cell *c);
/* Makes s current (taking over the caller's reference) with the next
 * generation number. Holders of the previous snapshot keep it until they
 * refresh. Never blocks the hot path for longer than a pointer swap. */
void rk_snapshot_cell_publish(rk_snapshot_cell *c, rk_snapshot *s);
/* A new reference to the current snapshot. */
rk_snapshot *rk_snapshot_cell_acquire(rk_snapshot_cell *c);
/* The hot-path check: returns held when it is still current (one atomic load,
 * no lock); otherwise releases held and returns a reference to the current
 * snapshot. held may be NULL. */
rk_snapshot *rk_snapshot_cell_refresh(rk_snapshot_cell *c, rk_snapshot *held);

#endif
